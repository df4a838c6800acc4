//! A small in-process HTTP/1.1 server (hyper) on its own runtime thread, shared by the token
//! server and the fault proxy. Its own runtime keeps it answering while the test thread
//! blocks (e.g. on `skopeo`), and lets sync and async tests use it alike.
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A response body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// What a handler can do to the connection it is answering on.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    fd: RawFd,
}

impl Conn {
    /// Makes the coming close of this connection a TCP RST (SO_LINGER 0) instead of a FIN.
    /// Return `Err` from the handler (or fail the body) afterwards to close it.
    pub fn arm_reset(&self) {
        // SAFETY: handlers and response bodies run only while hyper still owns the
        // connection's TcpStream, so the descriptor is open and still this socket.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = socket2::SockRef::from(&fd).set_linger(Some(Duration::ZERO));
    }
}

/// A running server; stops (dropping every connection) on drop.
pub struct Server {
    runtime: Option<tokio::runtime::Runtime>,
    pub addr: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

impl Server {
    /// Serves `handler` on a free 127.0.0.1 port. A handler error closes the connection
    /// without a response (after [`Conn::arm_reset`], with an RST).
    pub fn start<H, F>(name: &str, handler: H) -> Server
    where
        H: Fn(Request<Incoming>, Conn) -> F + Send + Sync + 'static,
        F: Future<Output = Result<Response<Body>, BoxError>> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("test-{name}"))
            .enable_all()
            .build()
            .expect("build server runtime");
        // Bound here (not with `block_on`, which panics inside an async test), served there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind server on 127.0.0.1");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("server address");
        let handler = Arc::new(handler);
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("register listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // e.g. out of file descriptors: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let conn = Conn { fd: stream.as_raw_fd() };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handler(req, conn));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server {
            runtime: Some(runtime),
            addr,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A JSON response.
pub fn json(status: u16, value: &serde_json::Value) -> Result<Response<Body>, BoxError> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full(value.to_string()))?)
}
