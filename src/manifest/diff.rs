//! Diff-scoped loading (Go kpromo's `--use-prow-manifest-diff` and `--manifest-diff-since`):
//! the digests touched in git, found by running `git diff --unified=0 <base>` in the
//! repository holding the manifests.
//!
//! Like Go kpromo, the diff covers the whole repository and the working tree, and a
//! line counts only when it holds exactly one quoted `"sha256:<64 hex>"`; added and
//! removed lines both count.
use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::LazyLock;

use regex::Regex;

use super::{DiffFilter, Problem};

static QUOTED_DIGEST: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#""(sha256:[0-9a-f]{64})""#).expect("static regex"));

/// The digests named in the diff selected by `filter`, for manifests under `dir`.
/// An empty set means there is nothing to promote.
pub fn digests(dir: &Path, filter: &DiffFilter) -> Result<HashSet<String>, Problem> {
    let toplevel = git(dir, &["rev-parse", "--show-toplevel"])?;
    let toplevel = Path::new(toplevel.trim_end_matches(['\n', '\r']));
    let base = match filter {
        DiffFilter::Prow {
            job_type,
            pull_base_sha,
        } => prow_base(dir, job_type.as_deref(), pull_base_sha.as_deref())?,
        DiffFilter::Since(since) => match since_base(toplevel, since)? {
            Some(base) => base,
            None => return Ok(HashSet::new()),
        },
    };
    let diff = git(
        toplevel,
        &["diff", "--no-color", "--no-ext-diff", "--unified=0", &base, "--"],
    )?;
    Ok(digests_in(&diff))
}

/// Digests on lines that hold exactly one quoted digest.
pub fn digests_in(diff: &str) -> HashSet<String> {
    diff.lines()
        .filter_map(|line| {
            let mut found = QUOTED_DIGEST.captures_iter(line);
            match (found.next(), found.next()) {
                (Some(one), None) => Some(one[1].to_string()),
                _ => None,
            }
        })
        .collect()
}

fn prow_base(dir: &Path, job_type: Option<&str>, pull_base_sha: Option<&str>) -> Result<String, Problem> {
    let unset = |var: &str| Problem::file(dir, format!("{var} must be set to use the prow manifest diff"));
    match job_type.filter(|j| !j.is_empty()) {
        None => Err(unset("JOB_TYPE")),
        Some("presubmit" | "batch") => pull_base_sha
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| unset("PULL_BASE_SHA")),
        Some("postsubmit") => Ok("HEAD^".to_string()),
        Some(other) => Err(Problem::file(dir, format!("unknown job type: {other}"))),
    }
}

/// The parent of the oldest commit since `since` (or that commit itself when it is
/// the root); `None` when no commit is that recent.
fn since_base(toplevel: &Path, since: &str) -> Result<Option<String>, Problem> {
    let log = git(toplevel, &["log", &format!("--since={since}"), "--format=%H"])?;
    let Some(oldest) = log.lines().map(str::trim).rfind(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let parent = format!("{oldest}~1");
    let has_parent = Command::new("git")
        .args(["rev-parse", "--verify", "--quiet", &format!("{parent}^{{commit}}")])
        .current_dir(toplevel)
        .output()
        .is_ok_and(|o| o.status.success());
    Ok(Some(if has_parent { parent } else { oldest.to_string() }))
}

/// Runs git in `dir`, returning stdout; a failure names the command and git's message.
fn git(dir: &Path, args: &[&str]) -> Result<String, Problem> {
    let command = format!("git {}", args.join(" "));
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| Problem::file(dir, format!("{command}: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(Problem::file(dir, format!("{command}: {}", stderr.trim())));
    }
    String::from_utf8(output.stdout).map_err(|_| Problem::file(dir, format!("{command}: output is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn only_lines_with_exactly_one_quoted_digest_count() {
        let diff = format!(
            "+    \"{a}\": [\"1.0\"]\n-    \"{b}\": []\n+ {c} unquoted\n+ \"{d}\" and \"{e}\"\n+ \"sha256:{short}\"\n",
            a = d('a'),
            b = d('b'),
            c = d('c'),
            d = d('d'),
            e = d('e'),
            short = "f".repeat(63),
        );
        let found = digests_in(&diff);
        assert_eq!(found, HashSet::from([d('a'), d('b')]));
    }

    #[test]
    fn prow_job_types() {
        let dir = Path::new("m");
        assert_eq!(prow_base(dir, Some("presubmit"), Some("abc")), Ok("abc".into()));
        assert_eq!(prow_base(dir, Some("batch"), Some("abc")), Ok("abc".into()));
        assert_eq!(prow_base(dir, Some("postsubmit"), None), Ok("HEAD^".into()));
        assert_eq!(
            prow_base(dir, Some("periodic"), None).unwrap_err().message,
            "unknown job type: periodic"
        );
        assert_eq!(
            prow_base(dir, None, None).unwrap_err().message,
            "JOB_TYPE must be set to use the prow manifest diff"
        );
        assert_eq!(
            prow_base(dir, Some("presubmit"), Some("")).unwrap_err().message,
            "PULL_BASE_SHA must be set to use the prow manifest diff"
        );
    }
}
