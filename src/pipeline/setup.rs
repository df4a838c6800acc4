//! Phase 1, Setup: load the policy, open the registry client set, build the signer of
//! a run that will sign (so that a bad policy, a key that does not load or a missing
//! signer fails before any write), and arm Ctrl-C.
use tracing::{error, info, warn};

use crate::registry::Registries;
use crate::registry::remote::build_client;
use crate::sync::Cancel;
use crate::trust::{Error as TrustError, Signer};

use super::state::RunState;
use super::{Error, Flow};

pub(super) async fn run(state: &mut RunState) -> Result<Flow, Error> {
    if let Some(path) = &state.options.policy {
        let policy = crate::policy::load(path).map_err(|e| {
            // One log line per problem, as for manifests.
            for problem in &e.problems {
                error!("{problem}");
            }
            Error::Policy(e)
        })?;
        info!(
            "policy {}: {} rules, {} roles; acting for {} (roles: {})",
            path.display(),
            policy.rules.len(),
            policy.roles.len(),
            state.options.actor,
            policy.roles_of(&state.options.actor).join(", ")
        );
        state.policy = Some(policy);
    }
    let registries = Registries::new(state.options.registry.clone()).map_err(|e| Error::Setup(Box::new(e)))?;
    state.registries = Some(registries);
    if state.options.confirm && state.options.sign {
        let config = state.options.trust.signer.as_ref().ok_or(Error::NoSigner(Vec::new()))?;
        let http = build_client(&state.options.registry).map_err(|e| Error::Setup(Box::new(e)))?;
        state.signer = Some(Signer::new(config, http).await.map_err(|e| match e {
            // Go's default (Google credentials) with no credentials: nothing configured.
            TrustError::NoGoogleCredentials { looked, .. } => Error::NoSigner(looked),
            other => Error::Signer(other),
        })?);
    }
    arm_interrupt(state.cancel.clone());
    Ok(Flow::Continue)
}

/// The first Ctrl-C asks the pipeline to stop between units of work; a second one
/// exits at once for a user who really means it.
fn arm_interrupt(cancel: Cancel) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        warn!("interrupt received: finishing the work in flight, then stopping (Ctrl-C again to abort now)");
        cancel.cancel();
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
}
