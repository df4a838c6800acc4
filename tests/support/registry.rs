//! Private CNCF distribution (`docker-registry`, 2.8) instances on free 127.0.0.1 ports,
//! storage under /dev/shm, stopped by PID and wiped on drop.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::pki::{TlsFiles, make_tls, make_token_key};
use super::process::{ChildGuard, run};
use super::token_server::{ISSUER, SERVICE, TokenServer};

pub const USER: &str = "promoter";
pub const PASSWORD: &str = "promoter-secret-pw";

/// How clients must authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Auth {
    #[default]
    None,
    /// htpasswd (bcrypt) Basic auth with [`USER`]/[`PASSWORD`].
    Basic,
    /// Bearer tokens from an in-process token server; [`USER`]/[`PASSWORD`] may push,
    /// anonymous callers may pull.
    Token,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryOptions {
    pub auth: Auth,
    /// Serve HTTPS with a certificate from a throw-away CA ([`TestRegistry::ca_cert`]).
    pub tls: bool,
    /// Accept repository paths up to the spec's 255 characters. Distribution's in-memory
    /// blob-descriptor cache (on by default, as in Debian's packaged config) parses names
    /// as Docker Hub references, `docker.io/` prepended, and answers 500 ("repository name
    /// must not be more than 255 characters") for paths past 245; without it the full
    /// length works.
    pub long_names: bool,
}

impl RegistryOptions {
    pub fn plain() -> Self {
        Self::default()
    }
    pub fn basic() -> Self {
        Self {
            auth: Auth::Basic,
            ..Self::default()
        }
    }
    pub fn token() -> Self {
        Self {
            auth: Auth::Token,
            ..Self::default()
        }
    }
    pub fn tls() -> Self {
        Self {
            tls: true,
            ..Self::default()
        }
    }
}

/// One running registry. Field order matters: the process stops before its files go.
#[derive(Debug)]
pub struct TestRegistry {
    child: Option<ChildGuard>,
    token_server: Option<Arc<TokenServer>>,
    port: u16,
    options: RegistryOptions,
    tls: Option<TlsFiles>,
    dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts a registry and waits until `/v2/` answers (401 counts for auth variants).
    pub fn start(options: RegistryOptions) -> TestRegistry {
        super::require_tool("docker-registry");
        let dir = super::shm_tempdir("kpromo-registry-");
        let tls = options.tls.then(|| make_tls(dir.path()));
        let token_server = match options.auth {
            Auth::Token => {
                let key = make_token_key(dir.path());
                Some(Arc::new(TokenServer::start(&key, &[(USER, PASSWORD)], 300)))
            }
            _ => None,
        };
        if options.auth == Auth::Basic {
            super::require_tool("htpasswd");
            let line = run("htpasswd", &["-Bbn", USER, PASSWORD]).stdout;
            std::fs::write(dir.path().join("htpasswd"), line).expect("write htpasswd file");
        }
        let mut registry = TestRegistry {
            child: None,
            token_server,
            port: 0,
            options,
            tls,
            dir,
        };
        // A free port can be taken between probing and binding: try a few.
        let mut last_error = String::new();
        for _ in 0..5 {
            registry.port = super::free_port();
            match registry.launch() {
                Ok(()) => return registry,
                Err(e) => last_error = e,
            }
        }
        panic!("docker-registry did not start: {last_error}");
    }

    /// Stops the process, keeping its storage (for "registry dies mid-run" tests).
    pub fn stop(&mut self) {
        self.child = None;
    }

    /// Starts the stopped registry again on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.launch() {
            panic!("docker-registry did not restart on port {}: {e}", self.port);
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        let config = self.dir.path().join("config.yml");
        std::fs::write(&config, self.config_yaml()).map_err(|e| format!("write config: {e}"))?;
        let mut command = Command::new("docker-registry");
        command.arg("serve").arg(&config);
        let mut child = ChildGuard::spawn("docker-registry", command, &self.dir.path().join("registry.log"));
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(exit) = child.exited() {
                return Err(exit);
            }
            if self.probe_v2() {
                self.child = Some(child);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("no answer on /v2/ within 15 s: {}", child.log_tail()))
    }

    /// One `GET /v2/` over a plain socket (or TLS with the test CA): 200 or 401 means up.
    fn probe_v2(&self) -> bool {
        let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!(
            "GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        let mut answer = Vec::new();
        let ok = match &self.tls {
            None => tcp.write_all(request.as_bytes()).is_ok() && tcp.read_to_end(&mut answer).is_ok(),
            Some(files) => {
                let Some(mut tls) = tls_client(&files.ca_cert, tcp) else {
                    return false;
                };
                tls.write_all(request.as_bytes()).is_ok() && {
                    let _ = tls.read_to_end(&mut answer);
                    !answer.is_empty()
                }
            }
        };
        let head = String::from_utf8_lossy(&answer[..answer.len().min(16)]).to_string();
        ok && (head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.1 401"))
    }

    fn config_yaml(&self) -> String {
        let dir = self.dir.path().display();
        let port = self.port;
        let tls = match &self.tls {
            Some(files) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                files.server_cert.display(),
                files.server_key.display()
            ),
            None => String::new(),
        };
        let auth = match self.options.auth {
            Auth::None => String::new(),
            Auth::Basic => format!("auth:\n  htpasswd:\n    realm: kpromo-test\n    path: {dir}/htpasswd\n"),
            Auth::Token => format!(
                "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {dir}/token.crt\n",
                self.token_server.as_ref().expect("token server for token auth").realm()
            ),
        };
        let cache = if self.options.long_names {
            ""
        } else {
            "cache:\n    blobdescriptor: inmemory\n  "
        };
        format!(
            "version: 0.1\n\
             log:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {dir}/data\n  delete:\n    enabled: true\n  \
             {cache}maintenance:\n    uploadpurging:\n      enabled: false\n  \
             redirect:\n    disable: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: kpromo-test-secret\n{tls}\
             {auth}\
             health:\n  storagedriver:\n    enabled: false\n"
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The registry process id while it runs (for CPU and memory figures in benchmarks).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(ChildGuard::pid)
    }

    /// `127.0.0.1:PORT`: the registry name to hand to the client under test.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` or `https://…`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// The CA that signed the TLS certificate, for `--registry-ca-file`.
    pub fn ca_cert(&self) -> Option<&Path> {
        self.tls.as_ref().map(|files| files.ca_cert.as_path())
    }

    /// `(user, password)` when the registry requires authentication.
    pub fn credentials(&self) -> Option<(&'static str, &'static str)> {
        (self.options.auth != Auth::None).then_some((USER, PASSWORD))
    }

    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token_server.as_deref()
    }

    /// The registry's storage root (distribution's filesystem layout).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A scratch directory owned by this registry (removed with it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A pusher with this registry's credentials and CA: the harness's own client.
    pub fn pusher(&self) -> super::push::Pusher {
        super::push::Pusher::new(&self.url(), self.credentials(), self.ca_cert())
    }

    /// `skopeo inspect --raw` of `repo:tag` or `repo@digest` (an independent client):
    /// `None` when the manifest does not exist.
    pub fn skopeo_raw(&self, reference: &str) -> Option<Vec<u8>> {
        super::skopeo::inspect_raw(&format!("{}/{reference}", self.host()), self.credentials())
    }

    /// Digest of what `skopeo inspect --raw` reads at `repo:tag` or `repo@digest`: equal to
    /// the source digest iff the copy is byte-exact; `None` when the manifest does not exist.
    pub fn skopeo_digest(&self, reference: &str) -> Option<String> {
        super::skopeo::digest_of(&format!("{}/{reference}", self.host()), self.credentials())
    }

    /// Tags of `repo` as `skopeo list-tags` sees them.
    pub fn skopeo_tags(&self, repo: &str) -> Vec<String> {
        super::skopeo::list_tags(&format!("{}/{repo}", self.host()), self.credentials())
    }
}

fn tls_client(ca_cert: &Path, tcp: TcpStream) -> Option<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    super::install_crypto_provider();
    let pem = std::fs::read(ca_cert).ok()?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.ok()?).ok()?;
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").ok()?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name.to_owned()).ok()?;
    Some(rustls::StreamOwned::new(conn, tcp))
}
