//! A promotion world for end-to-end runs of the built `kpromo` binary: a staging registry
//! and mirrors (each behind a recording fault proxy), a thin-manifest tree in a temp dir,
//! a bounded runner for the binary, and an integrity check that reads what a mirror holds
//! with the harness's own client (never kpromo's).
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{FaultProxy, RegistryOptions, TestRegistry};

/// (image name, [(digest, tags)]) as in an images.yaml.
pub type ImageSpec<'a> = (&'a str, Vec<(&'a str, Vec<&'a str>)>);

/// Staging plus mirrors, every one reached through its own proxy.
#[derive(Debug)]
pub struct World {
    pub staging: TestRegistry,
    pub staging_proxy: FaultProxy,
    pub mirrors: Vec<TestRegistry>,
    pub proxies: Vec<FaultProxy>,
    pub dir: tempfile::TempDir,
    /// The binary under test: `env!("CARGO_BIN_EXE_kpromo")`, which only test crates have
    /// (examples include this module too).
    kpromo: PathBuf,
}

impl World {
    pub fn start(kpromo: &str, mirrors: usize) -> World {
        let staging = TestRegistry::start(RegistryOptions::plain());
        let staging_proxy = FaultProxy::start(staging.port());
        let mirrors: Vec<TestRegistry> = (0..mirrors)
            .map(|_| TestRegistry::start(RegistryOptions::plain()))
            .collect();
        let proxies = mirrors.iter().map(|m| FaultProxy::start(m.port())).collect();
        World {
            staging,
            staging_proxy,
            mirrors,
            proxies,
            dir: super::shm_tempdir("kpromo-world-"),
            kpromo: PathBuf::from(kpromo),
        }
    }

    /// Staging as the manifests name it (through its proxy).
    pub fn src(&self) -> String {
        format!("{}/staging", self.staging_proxy.host())
    }

    /// The mirrors as the manifests name them (through their proxies).
    pub fn dsts(&self) -> Vec<String> {
        self.proxies.iter().map(|p| format!("{}/prod", p.host())).collect()
    }

    /// Writes `manifests/<project>/promoter-manifest.yaml` and `images/<project>/images.yaml`.
    pub fn write_project(&self, project: &str, src: &str, dsts: &[String], images: &[ImageSpec]) {
        let mut registries = format!("registries:\n- name: {src}\n  src: true\n");
        for d in dsts {
            registries.push_str(&format!("- name: {d}\n"));
        }
        let mut yaml = String::new();
        for (name, dmap) in images {
            yaml.push_str(&format!("- name: {name}\n  dmap:\n"));
            for (digest, tags) in dmap {
                let tags: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
                yaml.push_str(&format!("    \"{digest}\": [{}]\n", tags.join(", ")));
            }
        }
        for (sub, file, body) in [
            ("manifests", "promoter-manifest.yaml", &registries),
            ("images", "images.yaml", &yaml),
        ] {
            let dir = self.dir.path().join(sub).join(project);
            std::fs::create_dir_all(&dir).expect("create thin manifest dir");
            std::fs::write(dir.join(file), body).expect("write thin manifest");
        }
    }

    /// Write requests (PUT, POST, PATCH, DELETE) the mirrors' proxies have seen.
    pub fn mirror_writes(&self) -> usize {
        self.proxies
            .iter()
            .flat_map(|p| p.seen())
            .filter(|s| is_write(&s.method))
            .count()
    }

    pub fn clear_seen(&self) {
        self.staging_proxy.clear_seen();
        self.proxies.iter().for_each(FaultProxy::clear_seen);
    }

    /// Starts `kpromo cip --thin-manifest-dir DIR --summary-json …` plus `extra` (a dry
    /// run unless `extra` holds `--confirm`). Runs do not sign unless `extra` says how
    /// (`--signing-key`, `--identity-token`, `--sign=…`): the promotion tests count every
    /// write, and the signing tests (`sign_e2e`) check signatures on their own.
    pub fn spawn(&self, extra: &[&str]) -> Running {
        let signs = extra.iter().any(|a| {
            ["--signing-key", "--identity-token", "--sign="]
                .iter()
                .any(|f| a.starts_with(f))
        });
        let sign_flag: &[&str] = if signs { &[] } else { &["--sign=false"] };
        Running::spawn(
            &self.kpromo,
            self.dir.path(),
            self.dir.path(),
            &[],
            &[sign_flag, extra].concat(),
        )
    }

    /// Like [`World::spawn`] (no `--sign=false` added), for one of several processes on
    /// this world at once: output and `--summary-json` go to `out`, and `env` is set.
    pub fn spawn_process(&self, out: &Path, env: &[(&str, &str)], extra: &[&str]) -> Running {
        std::fs::create_dir_all(out).expect("create process output dir");
        Running::spawn(&self.kpromo, self.dir.path(), out, env, extra)
    }

    /// Starts `kpromo cip --thin-manifest-dir DIR --confirm --summary-json …` plus `extra`.
    pub fn spawn_confirm(&self, extra: &[&str]) -> Running {
        self.spawn(&[&["--confirm"], extra].concat())
    }

    /// One confirmed run, bounded by `seconds`.
    pub fn confirm(&self, seconds: u64) -> Run {
        self.spawn_confirm(&[]).wait(seconds)
    }
}

pub fn is_write(method: &str) -> bool {
    matches!(method, "PUT" | "POST" | "PATCH" | "DELETE")
}

/// A running `kpromo` process, killed and reaped if the test drops it early.
#[derive(Debug)]
pub struct Running {
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
    summary: PathBuf,
}

impl Running {
    /// Output goes to files in `out` (no pipe can fill up and stall the child). The
    /// docker config is an empty directory: no credentials of the machine leak in.
    fn spawn(binary: &Path, dir: &Path, out: &Path, env: &[(&str, &str)], extra: &[&str]) -> Running {
        let docker_config = dir.join("empty-docker-config");
        std::fs::create_dir_all(&docker_config).expect("create empty docker config dir");
        let [stdout, stderr, summary] = ["kpromo.stdout", "kpromo.stderr", "summary.json"].map(|f| out.join(f));
        let _ = std::fs::remove_file(&summary);
        let open = |p: &Path| std::fs::File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        let child = Command::new(binary)
            .arg("cip")
            .arg("--thin-manifest-dir")
            .arg(dir)
            .arg("--summary-json")
            .arg(&summary)
            .args(extra)
            .env("DOCKER_CONFIG", &docker_config)
            // No Google credentials of the machine either: application-default credentials
            // are looked for in an empty gcloud directory and a metadata server that is not
            // there (a closed loopback port), never in the cloud.
            .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
            .env("CLOUDSDK_CONFIG", &docker_config)
            .env("GCE_METADATA_HOST", "127.0.0.1:9")
            .env_remove("RUST_LOG")
            .env_remove("JOB_COMPLETION_INDEX")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(open(&stdout))
            .stderr(open(&stderr))
            .spawn()
            .expect("start the kpromo binary");
        Running {
            child: Some(child),
            stdout,
            stderr,
            summary,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends SIGINT (what Ctrl-C sends) to this process only.
    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -INT {} failed", self.pid());
    }

    /// Waits at most `seconds` for the process to end; a hang fails the test (after
    /// killing the process) with its output so far.
    pub fn wait(mut self, seconds: u64) -> Run {
        let mut child = self.child.take().expect("process not yet waited for");
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "kpromo did not finish within {seconds} s\nstderr:\n{}",
                        std::fs::read_to_string(&self.stderr).unwrap_or_default()
                    );
                }
                Err(e) => panic!("wait for kpromo: {e}"),
            }
        };
        Run {
            code: status.code(),
            stdout: std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
            summary: std::fs::read(&self.summary)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(serde_json::Value::Null),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How one `kpromo` run ended.
#[derive(Debug)]
pub struct Run {
    /// `None` when a signal ended the process.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// `--summary-json`, or `Null` when it was not written.
    pub summary: serde_json::Value,
}

impl Run {
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// A number from the summary JSON.
    pub fn num(&self, path: &[&str]) -> u64 {
        let value = path.iter().fold(&self.summary, |v, p| &v[*p]);
        value
            .as_u64()
            .unwrap_or_else(|| panic!("summary {path:?} missing: {}\nstderr:\n{}", self.summary, self.stderr))
    }
}

/// Tags of `repo` on a plain, anonymous registry (empty when the repository does not exist).
pub async fn tags(registry: &TestRegistry, repo: &str) -> Vec<String> {
    let url = format!("{}/v2/{repo}/tags/list", registry.url());
    let response = super::http_client()
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Vec::new();
    }
    assert!(response.status().is_success(), "GET {url}: {}", response.status());
    let body: serde_json::Value = response.json().await.expect("tags list JSON");
    let mut tags: Vec<String> = body["tags"]
        .as_array()
        .map(|t| t.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    tags.sort();
    tags
}

/// Checks that every tag of `repo` resolves to a manifest whose whole graph (children,
/// config, layers) exists in `repo`: nothing half-written is visible to a puller.
/// Returns the tags checked.
pub async fn assert_complete(registry: &TestRegistry, repo: &str) -> Vec<String> {
    let pusher = registry.pusher();
    let tags = tags(registry, repo).await;
    for tag in &tags {
        let mut todo = vec![tag.clone()];
        while let Some(reference) = todo.pop() {
            let (status, _, bytes) = pusher.get_manifest(repo, &reference).await;
            assert_eq!(
                status,
                200,
                "{}/{repo}:{tag} points at {reference}, which is missing",
                registry.host()
            );
            let manifest: serde_json::Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{}/{repo}@{reference}: not JSON: {e}", registry.host()));
            let digest_of = |d: &serde_json::Value| d["digest"].as_str().map(str::to_string);
            todo.extend(
                manifest["manifests"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(digest_of),
            );
            let blobs = std::iter::once(&manifest["config"])
                .chain(manifest["layers"].as_array().into_iter().flatten())
                .filter_map(digest_of);
            for blob in blobs {
                assert!(
                    pusher.has_blob(repo, &blob).await,
                    "{}/{repo}:{tag}: blob {blob} of {reference} is missing",
                    registry.host()
                );
            }
        }
    }
    tags
}
