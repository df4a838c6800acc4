//! The clap front end: parses flags, sets up logging, runs a command, prints what it
//! produced, and turns its error into the documented exit code (`docs/exit-codes.md`,
//! [`exit`]): 0 success or dry run, 1 promotion or registry error, 2 usage or manifest
//! error, 3 denied by policy. The only layer that knows about flags, stdout and exit codes.
pub mod cip;
pub mod exit;
pub mod logging;
mod plan;
mod policy;
mod registry_config;
mod removed;
mod summary;
mod verify;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tracing::level_filters::LevelFilter;

use exit::{ExitKind, Failure};
use logging::LogFormat;

/// Version, git commit and compiler, as recorded by build.rs.
const VERSION: &str = env!("CARGO_PKG_VERSION");
const GIT_COMMIT: &str = env!("KPROMO_GIT_COMMIT");
const RUSTC_VERSION: &str = env!("KPROMO_RUSTC_VERSION");

#[derive(Debug, Parser)]
#[command(
    name = "kpromo",
    version = VERSION,
    about = "Kubernetes image promoter: copies images from staging to production registries, byte for byte, on any OCI registry",
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Log level: trace, debug, info, warning (or warn), error, fatal, panic. fatal and
    /// panic show errors only.
    #[arg(long, global = true, value_name = "LEVEL", default_value = "info", value_parser = logging::parse_level)]
    pub log_level: LevelFilter,

    /// Log format on stderr: text (HH:MM:SS.mmm timestamps, UTC) or json (one object per line).
    #[arg(long, global = true, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Promote images from staging to production registries as the manifests say (a
    /// dry run unless --confirm), or print a registry snapshot (--snapshot,
    /// --manifest-based-snapshot-of).
    Cip(Box<cip::CipArgs>),

    /// Work with promotion manifests offline.
    #[command(subcommand)]
    Manifest(ManifestCommand),

    /// Check the cosign signatures of images (`HOST/REPO:TAG`, `HOST/REPO@DIGEST` or an OCI
    /// layout `oci:DIR:TAG`) with a public key, or keyless against an expected signer
    /// identity. Prints one line per image (or JSON); exits 0 only when every image has a
    /// valid signature, 1 otherwise, 2 on usage errors.
    Verify(Box<verify::VerifyArgs>),

    /// Work with `--summary-json` files (`merge`: add up the summaries of every shard).
    #[command(subcommand)]
    Summary(summary::SummaryCommand),
    /// Check manifests against a policy offline, or run a policy's table tests.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),

    /// Print the kpromo version, git commit and compiler version.
    Version,

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Check a thin-manifest directory or a plain manifest file offline, for CI on
    /// manifest pull requests: strict YAML, every validation rule, cross-manifest
    /// overlaps. Prints every problem as file:line:col: message and a summary line;
    /// exits 0 only when there is no problem, 2 otherwise.
    Validate {
        /// A thin-manifest directory (with manifests/ and images/) or a plain manifest file.
        #[arg(value_name = "DIR|FILE")]
        path: PathBuf,
    },
}

/// The full command, including the hidden removed flags that are refused with a message.
pub fn command() -> clap::Command {
    Cli::command().mut_subcommand("cip", |cip| removed::augment(cip::go_bool_flags(cip)))
}

/// Entry point of the `kpromo` binary.
pub fn main() -> ExitCode {
    let matches = match command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return clap_exit(&e),
    };
    if let Some(("cip", cip)) = matches.subcommand()
        && let Some(message) = removed::check(cip)
    {
        eprintln!("Error: {message}");
        return exit(ExitKind::Usage);
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    logging::init(cli.log_level, cli.log_format);
    match run(&cli.command) {
        Ok(kind) => exit(kind),
        Err(e) => {
            match cli.log_format {
                LogFormat::Text => eprintln!("Error: {e}"),
                // Log collectors expect every stderr line to be JSON; Go also sends the
                // final error through the logger (logrus.Fatal).
                LogFormat::Json => tracing::error!(exit_code = e.exit_kind().code(), "{e}"),
            }
            exit(e.exit_kind())
        }
    }
}

fn run(cmd: &Command) -> Result<ExitKind, Failure> {
    match cmd {
        Command::Cip(args) => cip::run(args).map(|()| ExitKind::Success),
        Command::Verify(args) => verify::run(args),
        Command::Summary(command) => summary::run(command).map(|()| ExitKind::Success),
        Command::Manifest(ManifestCommand::Validate { path }) => {
            let report = crate::check::check_path(path);
            print(&format!("{report}\n"))?;
            Ok(if report.is_clean() {
                ExitKind::Success
            } else {
                ExitKind::Usage
            })
        }
        Command::Policy(command) => policy::run(command),
        Command::Version => {
            print(&format!(
                "kpromo {VERSION}\ngit commit: {GIT_COMMIT}\nrustc: {RUSTC_VERSION}\n"
            ))?;
            Ok(ExitKind::Success)
        }
        Command::Completion { shell } => {
            let mut script = Vec::new();
            // Without the removed flags: clap_complete would offer hidden arguments too.
            clap_complete::generate(*shell, &mut Cli::command(), "kpromo", &mut script);
            print(&String::from_utf8_lossy(&script))?;
            Ok(ExitKind::Success)
        }
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn print(text: &str) -> Result<(), Failure> {
    write_stdout(|out| out.write_all(text.as_bytes())).map_err(|source| Failure::Output {
        what: "writing to stdout".into(),
        source,
    })
}

/// Runs `write` on locked stdout and flushes; a closed pipe (`| head`) is not an error.
fn write_stdout(write: impl FnOnce(&mut std::io::StdoutLock<'_>) -> std::io::Result<()>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match write(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}

fn exit(kind: ExitKind) -> ExitCode {
    ExitCode::from(kind.code())
}

/// Help and version requests exit 0 on stdout; usage errors exit 2 on stderr.
fn clap_exit(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(ExitKind::Usage.code()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_definition_is_consistent() {
        command().debug_assert();
    }
}
