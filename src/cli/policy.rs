//! `kpromo policy check` and `kpromo policy test`: a policy asked offline, for CI on
//! manifest pull requests and on policy repositories.
use std::io::Write as _;
use std::path::PathBuf;
use std::time::SystemTime;

use clap::{Args, Subcommand, ValueEnum};

use super::exit::{ExitKind, Failure};
use crate::manifest::ManifestSource;
use crate::policy::{self, Actor};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check what a policy says about every edge of the manifests, offline (no registry
    /// is read). Conditions on the plan's decision, the image, provenance or signatures
    /// are reported as "depends on registry state". Exits 3 when any edge is denied, 0
    /// otherwise, 2 on a bad policy or manifest.
    Check(CheckArgs),

    /// Run a policy's table tests: a YAML file naming the policy and listing cases
    /// (actor, edge, decision, evidence, now) with the expected effect
    /// (docs/policy.md). Exits 0 when every case passes, 1 when one fails, 2 on a bad
    /// file.
    Test {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The policy file.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,

    /// A thin-manifest directory (manifests/ and images/).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "manifest",
        conflicts_with = "manifest"
    )]
    pub thin_manifest_dir: Option<PathBuf>,

    /// One plain manifest file.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,

    /// Who would run the promotion. Default: as `kpromo cip` finds it (JOB_SPEC,
    /// GITHUB_ACTOR, USER).
    #[arg(long, value_name = "NAME")]
    pub actor: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

fn load_failure(e: crate::manifest::load::LoadError) -> Failure {
    Failure::Usage(e.to_string())
}

pub fn run(command: &PolicyCommand) -> Result<ExitKind, Failure> {
    match command {
        PolicyCommand::Check(args) => check(args),
        PolicyCommand::Test { file } => {
            let report = policy::table::run(file).map_err(load_failure)?;
            let mut text = String::new();
            for case in &report.cases {
                let at = format!("{}:{}", report.file.display(), case.at.line);
                if case.passed {
                    text.push_str(&format!("ok: {} ({at})\n", case.name));
                } else {
                    text.push_str(&format!(
                        "FAIL: {} ({at}): expected {}, got: {}\n",
                        case.name, case.expected, case.got
                    ));
                }
            }
            let failed = report.failed();
            text.push_str(&format!(
                "{} cases: {} passed, {failed} failed\n",
                report.cases.len(),
                report.cases.len() - failed
            ));
            super::print(&text)?;
            Ok(if failed == 0 {
                ExitKind::Success
            } else {
                ExitKind::Promotion
            })
        }
    }
}

fn check(args: &CheckArgs) -> Result<ExitKind, Failure> {
    let source = match (&args.manifest, &args.thin_manifest_dir) {
        (Some(file), _) => ManifestSource::Plain(file.clone()),
        (None, Some(dir)) => ManifestSource::ThinDir(dir.clone()),
        (None, None) => return Err(Failure::Usage("--manifest or --thin-manifest-dir is required".into())),
    };
    let policy = policy::load(&args.policy).map_err(load_failure)?;
    let actor = Actor::resolve(args.actor.as_deref(), |name| std::env::var(name).ok());
    let report = policy::check::check(policy, actor, &source, SystemTime::now()).map_err(load_failure)?;
    // Written as rendered: on a large tree the report is far bigger than its verdicts.
    super::write_stdout(|out| match args.output {
        Output::Text => writeln!(out, "{report}"),
        Output::Json => serde_json::to_writer_pretty(&mut *out, &report)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out)),
    })
    .map_err(|source| Failure::Output {
        what: "writing the report to stdout".into(),
        source,
    })?;
    Ok(if report.is_denied() {
        ExitKind::Denied
    } else {
        ExitKind::Success
    })
}
