//! Flags and subcommands Go kpromo dropped in its 2026 rewrite.
//!
//! Old Prow job configs still pass some of them. A bare "unexpected argument" would
//! leave the job owner guessing, so each one is accepted by the parser (hidden) and then
//! refused with what replaced it, exit 2.
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

struct Removed {
    flag: &'static str,
    why: &'static str,
}

const REMOVED_FLAGS: &[Removed] = &[
    Removed {
        flag: "use-legacy-pipeline",
        why: "the legacy promoter is gone (promo-tools #1754); the phased pipeline is the only one. Drop the flag.",
    },
    Removed {
        flag: "require-provenance",
        why: "provenance is now verified whenever a staging attestation exists (promo-tools #1754; its predicate \
              type and signer: --provenance-predicate-type, --provenance-key or --certificate-identity). To \
              refuse images without verified provenance, require it in a promotion policy (its \
              `provenance.verified` fact) instead. Drop the flag.",
    },
    Removed {
        flag: "allowed-builders",
        why: "Go's builder allow-list was removed (promo-tools #1754). The signer identity is checked with \
              --certificate-identity / --certificate-identity-regexp and --certificate-oidc-issuer / \
              --certificate-oidc-issuer-regexp; which builders may produce what is promoted is a --policy FILE \
              rule, e.g. condition: 'provenance.builder_id.startsWith(\"https://…\")' (docs/policy.md).",
    },
    Removed {
        flag: "allowed-source-repos",
        why: "Go's source-repository allow-list was removed (promo-tools #1754). The signer identity is checked \
              with --certificate-identity / --certificate-identity-regexp and --certificate-oidc-issuer / \
              --certificate-oidc-issuer-regexp; which source repositories may be promoted is a --policy FILE \
              rule, e.g. condition: 'provenance.source_repo.startsWith(\"https://github.com/kubernetes/\")' \
              (docs/policy.md).",
    },
    Removed {
        flag: "generate-promotion-provenance",
        why: "promotion records are attached as attestations by the attest phase, which runs with --confirm \
              unless --sign=false (promo-tools #1754). Drop the flag.",
    },
    Removed {
        flag: "json-log-summary",
        why: "replaced by --summary-json FILE, which writes the run summary as JSON.",
    },
    Removed {
        flag: "key-files",
        why: "service-account key files are no longer used (promo-tools #1758); registry credentials come from \
              the Docker config ($DOCKER_CONFIG/config.json and its credential helpers).",
    },
    Removed {
        flag: "snapshot-service-account",
        why: "service accounts are no longer used to read registries (promo-tools #1758); credentials come from \
              the Docker config ($DOCKER_CONFIG/config.json and its credential helpers).",
    },
    Removed {
        flag: "use-service-account",
        why: "service accounts are no longer used (promo-tools #1758); registry credentials come from the Docker \
              config ($DOCKER_CONFIG/config.json and its credential helpers).",
    },
    Removed {
        flag: "max-signature-copies",
        why: "signatures are no longer replicated to mirrors (promo-tools #1829): registry.k8s.io serves them \
              from the canonical registry. To bound signing concurrency use --max-signature-ops.",
    },
];

pub const REPLICATE_SIGNATURES: &str = "replicate-signatures";

const REPLICATE_WHY: &str = "`kpromo cip replicate-signatures` was removed in 2026 (promo-tools #1829): signatures \
    are no longer copied to every mirror; registry.k8s.io redirects signature requests to the canonical \
    registry, so there is nothing to replicate.";

/// Adds the removed flags (hidden, with an optional value so `--flag`, `--flag=x` and
/// `--flag x` all parse) and the removed subcommand to the `cip` command.
pub fn augment(cip: Command) -> Command {
    let cip = REMOVED_FLAGS.iter().fold(cip, |cmd, r| {
        cmd.arg(
            Arg::new(r.flag)
                .long(r.flag)
                .hide(true)
                .num_args(0..=1)
                .action(ArgAction::Append),
        )
    });
    cip.subcommand(
        Command::new(REPLICATE_SIGNATURES)
            .hide(true)
            .disable_help_flag(true)
            .arg(
                Arg::new("args")
                    .num_args(0..)
                    .trailing_var_arg(true)
                    .allow_hyphen_values(true),
            ),
    )
}

/// The refusal message for the first removed flag or subcommand used, if any.
pub fn check(cip: &ArgMatches) -> Option<String> {
    if cip.subcommand_name() == Some(REPLICATE_SIGNATURES) {
        return Some(REPLICATE_WHY.to_string());
    }
    REMOVED_FLAGS
        .iter()
        .filter(|r| cip.value_source(r.flag) == Some(ValueSource::CommandLine))
        .map(|r| (cip.index_of(r.flag).unwrap_or(usize::MAX), r))
        .min_by_key(|(i, _)| *i)
        .map(|(_, r)| format!("--{} was removed from kpromo in 2026: {}", r.flag, r.why))
}
