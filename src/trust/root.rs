//! The sigstore trusted root (Fulcio CAs, Rekor and certificate-transparency log keys)
//! that keyless signatures are verified against.
use std::path::Path;
use std::time::Duration;

use sigstore_sign::trust_root::{SIGSTORE_PRODUCTION_TRUSTED_ROOT, TrustedRoot, TufConfig};

use super::Error;

/// How long a TUF refresh of the public-good root may take before the embedded copy is
/// used instead (an air-gapped machine must not wait minutes).
const TUF_TIMEOUT: Duration = Duration::from_secs(20);

/// `--trusted-root FILE` (a sigstore `trusted_root.json`, e.g. a private instance's or a
/// test's), else the public-good instance's root, refreshed through TUF when reachable
/// and embedded otherwise.
pub async fn load(file: Option<&Path>) -> Result<TrustedRoot, Error> {
    if let Some(path) = file {
        return TrustedRoot::from_file(path)
            .map_err(|e| Error::Signer(format!("trusted root {}: {e}", path.display())));
    }
    // TUF fetches through reqwest with rustls and no provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match tokio::time::timeout(TUF_TIMEOUT, TrustedRoot::from_tuf(TufConfig::production())).await {
        Ok(Ok(root)) => return Ok(root),
        Ok(Err(e)) => {
            tracing::warn!("refreshing the sigstore trusted root through TUF failed ({e}); using the embedded copy")
        }
        Err(_) => tracing::warn!(
            "refreshing the sigstore trusted root through TUF took over {TUF_TIMEOUT:?}; using the embedded copy"
        ),
    }
    TrustedRoot::from_json(SIGSTORE_PRODUCTION_TRUSTED_ROOT)
        .map_err(|e| Error::Signer(format!("the embedded sigstore trusted root: {e}")))
}
