//! Registries that misbehave on purpose (issue 14), against kpromo's client and binary:
//! listings whose pages never end stop at their caps with an error naming registry and
//! cap, long listings say so in the log, referrers lists are capped, and a token realm that
//! would take credentials off TLS or to another machine is refused before anything is sent
//! there. Real distribution wherever a registry's own behaviour is involved (the TLS
//! registry whose token realm is plain HTTP); the harness's hostile registry
//! (`support::hostile`, a fake: no real registry misbehaves like this on demand) for the rest.
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kpromo::registry::{ClientOptions, Error, ReadLimits};

use crate::support::client::{DockerConfig, open, options_for};
use crate::support::hostile::{HostileRegistry, Trick};
use crate::support::registry::{Auth, PASSWORD, USER};
use crate::support::{RegistryOptions, TestRegistry, within};

/// Client options for a hostile registry: no docker config of the machine, the given caps,
/// and a rate that lets hundreds of pages through in a moment.
fn options(limits: ReadLimits) -> ClientOptions {
    ClientOptions {
        docker_config: Some(std::env::temp_dir().join("kpromo-no-docker-config")),
        rate_limit: 2_000,
        burst: 100,
        limits,
        ..ClientOptions::default()
    }
}

fn limit_of(error: &Error) -> (String, u64, Option<&'static str>) {
    match error {
        Error::Limit { what, cap, flag, .. } => (what.clone(), *cap, *flag),
        other => panic!("expected a cap error, got: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_tag_pages_stop_at_the_page_cap_and_never_read_past_it() {
    let hostile = HostileRegistry::start(Trick::EndlessTags { page: 10 });
    let limits = ReadLimits {
        tag_pages: 50,
        ..ReadLimits::default()
    };
    let (_registries, root) = open(&hostile.host(), options(limits));
    let error = within(60, "an endless tags list", root.registry.list_tags("proj/img"))
        .await
        .expect_err("an endless listing must fail");
    assert_eq!(
        limit_of(&error),
        ("tag-list pages".to_string(), 50, Some("registry-max-tag-pages"))
    );
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "{}: list tags of proj/img: more than 50 tag-list pages",
            hostile.host()
        )),
        "{message}"
    );
    assert!(message.contains("--registry-max-tag-pages"), "{message}");
    assert_eq!(hostile.served(), 50, "not one page past the cap");
    assert!(!error.rerun_helps(), "a rerun meets the same endless listing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_tag_pages_stop_at_the_entries_cap() {
    let hostile = HostileRegistry::start(Trick::EndlessTags { page: 1_000 });
    let limits = ReadLimits {
        tags: 5_000,
        ..ReadLimits::default()
    };
    let (_registries, root) = open(&hostile.host(), options(limits));
    let error = within(60, "a huge tags list", root.registry.list_tags("proj/img"))
        .await
        .expect_err("too many tags must fail");
    assert_eq!(
        limit_of(&error),
        (
            "entries in one tag-list listing".to_string(),
            5_000,
            Some("registry-max-tags")
        )
    );
    assert_eq!(hostile.served(), 6, "the sixth page crosses 5000 entries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_catalog_pages_stop_at_the_catalog_cap() {
    let hostile = HostileRegistry::start(Trick::EndlessCatalog { page: 100 });
    let limits = ReadLimits {
        catalog_pages: 5,
        ..ReadLimits::default()
    };
    let (_registries, root) = open(&hostile.host(), options(limits));
    let error = within(60, "an endless catalog", root.registry.catalog())
        .await
        .expect_err("an endless catalog must fail");
    assert_eq!(
        limit_of(&error),
        ("catalog pages".to_string(), 5, Some("registry-max-catalog-pages"))
    );
    assert_eq!(hostile.served(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_lists_are_read_up_to_their_cap() {
    let subject = kpromo::digest::Digest::of(b"subject");
    let small = HostileRegistry::start(Trick::Referrers { entries: 10 });
    let (_r, root) = open(&small.host(), options(ReadLimits::default()));
    let listed = within(
        60,
        "a small referrers list",
        root.registry.list_referrers("app", &subject, None),
    )
    .await
    .expect("10 referrers are within the cap");
    assert_eq!(listed.len(), 10);

    // About 9 MB of index: over the 4 MiB default.
    let huge = HostileRegistry::start(Trick::Referrers { entries: 50_000 });
    let (_r, root) = open(&huge.host(), options(ReadLimits::default()));
    let error = within(
        60,
        "a huge referrers list",
        root.registry.list_referrers("app", &subject, None),
    )
    .await
    .expect_err("a huge referrers list must fail");
    assert_eq!(
        limit_of(&error),
        (
            "bytes in one referrers list".to_string(),
            4 << 20,
            Some("registry-max-referrers-bytes")
        )
    );
    assert!(error.to_string().contains(&huge.host()), "{error}");
}

/// Log lines of the current thread, for a test on a current-thread runtime.
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A listing that runs for a while says so in the log, again and again, until its cap.
#[tokio::test]
async fn long_listings_log_their_progress() {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || Captured(sink.clone()))
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let hostile = HostileRegistry::start(Trick::EndlessTags { page: 10 });
    let limits = ReadLimits {
        tag_pages: 150,
        ..ReadLimits::default()
    };
    // The default rate (50 requests a second) makes 150 pages last about three seconds,
    // whatever the machine; progress is asked for every quarter of a second.
    let options = ClientOptions {
        docker_config: Some(std::env::temp_dir().join("kpromo-no-docker-config")),
        limits,
        listing_progress: Duration::from_millis(250),
        ..ClientOptions::default()
    };
    let (_registries, root) = open(&hostile.host(), options);
    let error = within(120, "a long listing", root.registry.list_tags("proj/img"))
        .await
        .expect_err("stopped at the cap");
    assert!(matches!(error, Error::Limit { .. }), "{error}");
    let text = String::from_utf8_lossy(&logs.lock().expect("log buffer")).to_string();
    let progress: Vec<&str> = text.lines().filter(|l| l.contains("still listing")).collect();
    assert!(!progress.is_empty(), "no progress line in:\n{text}");
    assert!(
        progress[0].contains(&hostile.host()) && progress[0].contains("list tags of proj/img"),
        "a progress line names the registry and the listing: {}",
        progress[0]
    );
}

/// A registry (plain HTTP on loopback) whose token realm is on another machine over plain
/// HTTP: its credentials would leave for that machine in the clear. Refused before any
/// request goes there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_realm_on_another_host_is_refused() {
    // 192.0.2.1 is TEST-NET-1: nothing answers there, and nothing is ever sent.
    let realm = "http://192.0.2.1/token";
    let hostile = HostileRegistry::start(Trick::Challenge(format!(
        r#"Bearer realm="{realm}",service="hostile",scope="repository:proj/img:pull""#
    )));
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = DockerConfig::at(dir.path());
    config.login(&hostile.host(), USER, PASSWORD);
    let (_registries, root) = open(&hostile.host(), config.options(options(ReadLimits::default())));
    let error = within(
        30,
        "a listing behind a foreign realm",
        root.registry.list_tags("proj/img"),
    )
    .await
    .expect_err("the realm must be refused");
    assert!(matches!(error, Error::InsecureRealm { .. }), "{error:?}");
    let message = error.to_string();
    assert_eq!(
        message,
        format!(
            "{}: list tags of proj/img: refused the token realm {realm}: a plain-HTTP token realm must be on a \
             loopback host or one given with --insecure-registry, and 192.0.2.1 is neither",
            hostile.host()
        )
    );
    assert!(!message.contains(PASSWORD), "{message}");
    assert_eq!(
        hostile.served(),
        1,
        "one anonymous request learnt the challenge, nothing more"
    );
}

/// A TLS registry (real distribution, token auth) whose token realm is plain HTTP on
/// loopback, another port: the credentials would leave TLS. The client refuses the realm
/// and the token server never hears from it; so does the binary, with exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_registry_with_a_plain_http_realm_gets_no_credentials() {
    let registry = TestRegistry::start(RegistryOptions {
        auth: Auth::Token,
        tls: true,
        ..RegistryOptions::default()
    });
    let server = registry.token_server().expect("token server");
    assert!(server.realm().starts_with("http://127.0.0.1:"), "{}", server.realm());
    let config = DockerConfig::at(&registry.dir().join("realm-docker-config"));
    config.login(&registry.host(), USER, PASSWORD);

    let (_registries, root) = open(&registry.host(), config.options(options_for(&registry)));
    let error = within(
        60,
        "a listing behind a plain realm",
        root.registry.list_tags("private/app"),
    )
    .await
    .expect_err("the realm must be refused");
    assert!(matches!(error, Error::InsecureRealm { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "{}: list tags of private/app: refused the token realm {}: the registry is reached over HTTPS but its \
             token realm is plain HTTP",
            registry.host(),
            server.realm()
        )),
        "{message}"
    );

    let output = within(
        120,
        "kpromo cip --snapshot",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kpromo"))
            .args(["cip", "--snapshot", &registry.host(), "--log-level=trace"])
            .arg("--registry-ca-file")
            .arg(registry.ca_cert().expect("TLS registry"))
            .env("DOCKER_CONFIG", config.dir())
            .env("HOME", registry.dir())
            .output(),
    )
    .await
    .expect("run kpromo");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "registry behaviour exits 1:\n{stderr}");
    assert!(
        stderr.contains(&format!("refused the token realm {}", server.realm())),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "the password reached the output");
    assert_eq!(server.requests(), 0, "no request reached the plain-HTTP realm");
}

/// The dry run of issue 14 (3,926 pages in 180 s, no log line): a staging registry whose
/// tag pages never end. The binary stops at the cap, exit 1, naming registry and cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_against_an_endless_staging_stops_at_the_cap() {
    let hostile = HostileRegistry::start(Trick::EndlessTags { page: 100 });
    let mirror = TestRegistry::start(RegistryOptions::plain());
    let dir = tempfile::tempdir().expect("temporary directory");
    let manifest = dir.path().join("manifest.yaml");
    std::fs::write(
        &manifest,
        format!(
            "registries:\n- name: {}/staging\n  src: true\n- name: {}/prod\nimages:\n- name: img\n  dmap:\n    \"sha256:{}\": [\"1.0\"]\n",
            hostile.host(),
            mirror.host(),
            "a".repeat(64)
        ),
    )
    .expect("write manifest");
    let output = within(
        120,
        "kpromo cip (dry run)",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kpromo"))
            .arg("cip")
            .arg("--manifest")
            .arg(&manifest)
            .args(["--registry-max-tag-pages=40", "--registry-rate-limit=1000"])
            .env("DOCKER_CONFIG", dir.path().join("no-docker-config"))
            .output(),
    )
    .await
    .expect("run kpromo");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let error = stderr.rfind("Error: ").map_or("", |at| &stderr[at..]);
    assert!(
        error.contains(&format!(
            "{}: list tags of staging/img: more than 40 tag-list pages",
            hostile.host()
        )) && error.contains("--registry-max-tag-pages"),
        "{error}"
    );
    assert_eq!(hostile.served(), 40);
}
