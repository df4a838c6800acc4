//! What every mocked test shares: a client that never reads the developer's docker
//! config, opened on a wiremock server, and one small manifest to serve.
use std::sync::Arc;

use kpromo::digest::Digest;
use kpromo::registry::remote::RemoteRegistry;
use kpromo::registry::{ClientOptions, ManifestRef, Registries, media};
use wiremock::{MockServer, ResponseTemplate};

/// A minimal OCI image manifest (empty config, no layers), served and pushed as is.
pub const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

pub fn tag(t: &str) -> ManifestRef {
    ManifestRef::Tag(t.to_string())
}

/// Client options for a mock server.
pub fn options() -> ClientOptions {
    ClientOptions {
        // Tests must never read the developer's own docker config.
        docker_config: Some(std::env::temp_dir().join("kpromo-no-docker-config")),
        ..ClientOptions::default()
    }
}

/// Opens the mock server with kpromo's remote client; keep the `Registries` alive with it.
pub fn open(server: &MockServer, options: ClientOptions) -> (Registries, Arc<RemoteRegistry>) {
    let registries = Registries::new(options).unwrap();
    let remote = registries.remote(&server.address().to_string()).unwrap();
    (registries, remote)
}

/// A 200 answer carrying `bytes` as an OCI manifest, with the digest header a registry sends.
pub fn manifest_response(bytes: &[u8]) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_raw(bytes.to_vec(), media::OCI_MANIFEST)
        .insert_header("Docker-Content-Digest", Digest::of(bytes).to_string().as_str())
}
