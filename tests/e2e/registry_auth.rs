//! Credentials come from a docker config file (`$DOCKER_CONFIG/config.json`), as after
//! `docker login`, for Basic-auth and token-auth registries; and no password, token or
//! Authorization value ever reaches a log line or an error message. Every log event of
//! the client (TRACE and up) is captured by a test subscriber (`support::logs`) and
//! scanned.
use base64::Engine;
use kpromo::registry::{Error, ManifestRef, Registry};

use crate::support;
use crate::support::client::{DockerConfig, digest, login_options, open, options_for, read_blob, stream_of};
use crate::support::images::{Blob, Format, Image};
use crate::support::logs::captured_logs;
use crate::support::registry::{PASSWORD, USER};
use crate::support::{RegistryOptions, TestRegistry, within};

const WRONG_PASSWORD: &str = "wrong-pw-must-not-leak";

/// The secrets a run must never print, for one registry.
fn secrets(registry: &TestRegistry) -> Vec<String> {
    let encode = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    let mut secrets = vec![
        PASSWORD.to_string(),
        WRONG_PASSWORD.to_string(),
        encode(format!("{USER}:{PASSWORD}")),
        encode(format!("{USER}:{WRONG_PASSWORD}")),
    ];
    if let Some(server) = registry.token_server() {
        // JWTs and refresh tokens; their signature part alone is just as secret.
        for token in server.tokens() {
            secrets.push(token.rsplit('.').next().unwrap_or(&token).to_string());
            secrets.push(token);
        }
    }
    secrets
}

fn assert_no_secret(registry: &TestRegistry, texts: &[String]) {
    let logs = String::from_utf8_lossy(&captured_logs().lock().expect("log buffer")).to_string();
    assert!(
        !logs.is_empty(),
        "the client logged nothing at TRACE: the scan would prove nothing"
    );
    for secret in secrets(registry) {
        for line in logs.lines() {
            assert!(!line.contains(&secret), "a secret reached the logs: {line}");
        }
        for text in texts {
            assert!(!text.contains(&secret), "a secret reached an error message: {text}");
        }
    }
}

/// Reads and writes with credentials found only in the docker config file.
async fn works_with_docker_config_credentials(registry: &TestRegistry, options: kpromo::registry::ClientOptions) {
    works_after_seeding(registry, options, || ()).await;
}

/// [`works_with_docker_config_credentials`], calling `then` between seeding and the client.
async fn works_after_seeding(registry: &TestRegistry, options: kpromo::registry::ClientOptions, then: impl FnOnce()) {
    let image = Image::simple(Format::Docker, 81);
    registry.pusher().push_image("private/app", &image, &["v1"]).await;
    then();
    let (_registries, root) = open(&registry.host(), options);
    let reg: &dyn Registry = root.registry.as_ref();
    within(60, "authenticated operations", async {
        let tags = reg
            .list_tags("private/app")
            .await
            .expect("tags with credentials")
            .expect("exists");
        assert_eq!(tags.tags, ["v1"]);
        let raw = reg
            .get_manifest("private/app", &ManifestRef::Tag("v1".into()))
            .await
            .expect("GET")
            .expect("exists");
        assert_eq!(raw.bytes, image.manifest);
        let layer = &image.layers[0];
        assert_eq!(
            read_blob(reg, "private/app", &digest(&layer.digest))
                .await
                .expect("blob"),
            layer.to_vec()
        );
        let fresh = Blob::random(82, 12_345);
        reg.put_blob(
            "private/copy",
            &digest(&fresh.digest),
            fresh.size,
            stream_of(fresh.bytes()),
        )
        .await
        .expect("push with credentials");
        for blob in image.blobs() {
            let stream = reg
                .get_blob("private/app", &digest(&blob.digest))
                .await
                .expect("GET blob");
            reg.put_blob("private/copy", &digest(&blob.digest), blob.size, stream)
                .await
                .expect("copy blob");
        }
        reg.put_manifest("private/copy", &ManifestRef::Tag("v1".into()), &raw)
            .await
            .expect("PUT manifest");
    })
    .await;
    assert_eq!(registry.skopeo_raw("private/copy:v1"), Some(image.manifest.to_vec()));
}

/// A wrong password: a clear authentication error naming the registry, never the secret.
async fn wrong_password_is_a_clear_error(options: RegistryOptions) -> (TestRegistry, String) {
    let registry = TestRegistry::start(options);
    let config = DockerConfig::at(&registry.dir().join("wrong-docker-config"));
    config.login(&registry.host(), USER, WRONG_PASSWORD);
    let (_registries, root) = open(&registry.host(), config.options(options_for(&registry)));
    let fresh = Blob::random(83, 100);
    let error = within(
        60,
        "push with a wrong password",
        root.registry
            .put_blob("x/y", &digest(&fresh.digest), fresh.size, stream_of(fresh.bytes())),
    )
    .await
    .expect_err("a wrong password must fail");
    assert!(
        matches!(error, Error::Unauthorized { .. }),
        "expected an authentication error, got: {error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&registry.host()),
        "the error names the registry: {message}"
    );
    (registry, format!("{message} / {error:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_credentials_from_docker_config() {
    captured_logs();
    let registry = TestRegistry::start(RegistryOptions::basic());
    works_with_docker_config_credentials(&registry, login_options(&registry)).await;
    let (bad, message) = wrong_password_is_a_clear_error(RegistryOptions::basic()).await;
    assert_no_secret(&registry, std::slice::from_ref(&message));
    assert_no_secret(&bad, &[message]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_credentials_from_docker_config() {
    captured_logs();
    let registry = TestRegistry::start(RegistryOptions::token());
    works_with_docker_config_credentials(&registry, login_options(&registry)).await;
    let issued = registry.token_server().expect("token server").issued();
    assert!(issued > 0, "the client fetched tokens");
    let (bad, message) = wrong_password_is_a_clear_error(RegistryOptions::token()).await;
    assert_no_secret(&registry, std::slice::from_ref(&message));
    assert_no_secret(&bad, &[message]);
}

/// `docker login` to some registries stores an OAuth2 refresh token (`identitytoken`)
/// instead of the password; the client exchanges it at the token realm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_token_from_docker_config() {
    captured_logs();
    let registry = TestRegistry::start(RegistryOptions::token());
    let server = registry.token_server().expect("token server");
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "password")
        .append_pair("username", USER)
        .append_pair("password", PASSWORD)
        .append_pair("service", support::token_server::SERVICE)
        .append_pair("client_id", "kpromo-test")
        .finish();
    let answer: serde_json::Value = support::http_client()
        .post(server.realm())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("OAuth2 password grant")
        .json()
        .await
        .expect("token JSON");
    let refresh = answer["refresh_token"].as_str().expect("refresh token").to_string();
    let config = DockerConfig::at(&registry.dir().join("identity-docker-config"));
    config.login_identity_token(&registry.host(), &refresh);
    works_with_docker_config_credentials(&registry, config.options(options_for(&registry))).await;
    assert_no_secret(&registry, &[]);
}

/// Without any credentials an auth registry refuses writes with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_push_is_refused_clearly() {
    captured_logs();
    let registry = TestRegistry::start(RegistryOptions::token());
    let (_registries, root) = open(&registry.host(), options_for(&registry));
    let fresh = Blob::random(84, 100);
    let error = within(
        60,
        "anonymous push",
        root.registry
            .put_blob("x/y", &digest(&fresh.digest), fresh.size, stream_of(fresh.bytes())),
    )
    .await
    .expect_err("anonymous push must fail");
    assert!(matches!(error, Error::Unauthorized { .. }), "got: {error}");
    assert!(!error.is_transient());
}

/// The same guarantee for the shipped binary: a `--snapshot` of an authenticated registry
/// at `--log-level=trace`, credentials from `$DOCKER_CONFIG`, and nothing secret on
/// stdout or stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_trace_logs_carry_no_secret() {
    for options in [RegistryOptions::basic(), RegistryOptions::token()] {
        let registry = TestRegistry::start(options);
        let image = Image::simple(Format::Oci, 85);
        registry.pusher().push_image("private/app", &image, &["v1"]).await;
        let config = DockerConfig::at(&registry.dir().join("binary-docker-config"));
        let (user, password) = registry.credentials().expect("auth registry");
        config.login(&registry.host(), user, password);
        let output = within(
            120,
            "kpromo cip --snapshot",
            tokio::process::Command::new(env!("CARGO_BIN_EXE_kpromo"))
                .args(["cip", "--snapshot", &registry.host(), "--log-level=trace"])
                .env("DOCKER_CONFIG", config.dir())
                .env("HOME", registry.dir())
                .output(),
        )
        .await
        .expect("run kpromo");
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(output.status.success(), "{options:?}: kpromo failed: {stderr}");
        assert!(
            stdout.contains(&image.digest),
            "{options:?}: the snapshot lists the image: {stdout}"
        );
        assert!(
            stderr.lines().count() > 10,
            "{options:?}: trace logging produced almost nothing"
        );
        for secret in secrets(&registry) {
            for line in stdout.lines().chain(stderr.lines()) {
                assert!(
                    !line.contains(&secret),
                    "{options:?}: a secret reached the output: {line}"
                );
            }
        }
        if let Some(server) = registry.token_server() {
            assert!(server.issued() > 0, "the binary authenticated with a token");
        }
    }
}

/// A token service that fails for a moment (503) is retried like any transient failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_token_service_is_retried() {
    captured_logs();
    let registry = TestRegistry::start(RegistryOptions::token());
    let server = registry.token_server().expect("token server");
    let seeded = server.issued();
    works_after_seeding(&registry, login_options(&registry), || server.fail_next(2)).await;
    assert!(
        server.issued() > seeded,
        "the client got its own tokens after the failures"
    );
}
