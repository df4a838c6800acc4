//! A real rate limiter in front of a registry: nginx `limit_req` answering 429 with
//! `Retry-After`, as a CDN or a registry's own throttling would.
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::ChildGuard;

#[derive(Debug)]
pub struct RateLimitFront {
    child: Option<ChildGuard>,
    port: u16,
    dir: tempfile::TempDir,
}

impl RateLimitFront {
    /// Proxies 127.0.0.1:<new port> to `upstream_port`, admitting `rate_per_sec` requests
    /// per second with `burst` extra; the rest get 429 + `Retry-After: retry_after_secs`.
    pub fn start(upstream_port: u16, rate_per_sec: u32, burst: u32, retry_after_secs: u32) -> RateLimitFront {
        super::require_tool("nginx");
        let dir = super::shm_tempdir("kpromo-nginx-");
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = super::free_port();
            let conf = dir.path().join("nginx.conf");
            std::fs::write(
                &conf,
                config(port, upstream_port, rate_per_sec, burst, retry_after_secs),
            )
            .expect("write nginx.conf");
            let log = dir.path().join("nginx.log");
            let mut command = Command::new("nginx");
            command
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(dir.path().join("error.log"));
            let mut child = ChildGuard::spawn("nginx", command, &log);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Some(exit) = child.exited() {
                    last_error = format!("{exit}; error.log: {}", read(dir.path().join("error.log")));
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return RateLimitFront {
                        child: Some(child),
                        port,
                        dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("nginx did not start: {last_error}");
    }

    /// `127.0.0.1:PORT`: the registry name to hand to the client under test.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Requests nginx answered 429 so far (from its access log).
    pub fn rejected(&self) -> usize {
        read(self.dir.path().join("access.log"))
            .lines()
            .filter(|l| l.starts_with("429 "))
            .count()
    }

    /// Requests nginx passed to the registry so far.
    pub fn passed(&self) -> usize {
        read(self.dir.path().join("access.log"))
            .lines()
            .filter(|l| !l.starts_with("429 "))
            .count()
    }
}

impl Drop for RateLimitFront {
    fn drop(&mut self) {
        self.child = None;
    }
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn config(port: u16, upstream: u16, rate: u32, burst: u32, retry_after: u32) -> String {
    // Foreground, single process: the harness owns it by PID like the registries.
    // Host is passed through so the registry's Location URLs point back at nginx;
    // buffering is off so multi-GB uploads stream.
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid nginx.pid;
error_log error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format status '$status $request_method $uri';
    access_log access.log status;
    client_body_temp_path tmp-body;
    proxy_temp_path tmp-proxy;
    fastcgi_temp_path tmp-fastcgi;
    uwsgi_temp_path tmp-uwsgi;
    scgi_temp_path tmp-scgi;
    limit_req_zone $binary_remote_addr zone=registry:1m rate={rate}r/s;
    limit_req_status 429;
    limit_req_log_level info;
    upstream registry {{ server 127.0.0.1:{upstream}; keepalive 16; }}
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_request_buffering off;
    proxy_buffering off;
    proxy_read_timeout 300s;
    proxy_send_timeout 300s;
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:{port};
        error_page 429 = @throttled;
        location / {{
            limit_req zone=registry burst={burst} nodelay;
            proxy_pass http://registry;
        }}
        location @throttled {{
            default_type application/json;
            add_header Retry-After {retry_after} always;
            add_header Docker-Distribution-Api-Version registry/2.0 always;
            return 429 '{{"errors":[{{"code":"TOOMANYREQUESTS","message":"rate limited by nginx limit_req"}}]}}';
        }}
    }}
}}
"#
    )
}
