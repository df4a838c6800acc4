//! Who is promoting: `--actor`, else what the CI environment says, with where the name
//! came from, so the audit log can tell a name someone typed from one Prow vouched for.
use std::fmt;

/// The person or robot a run acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Empty when nothing names one: such a run matches no role.
    pub name: String,
    pub source: ActorSource,
}

/// Where [`Actor::name`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorSource {
    /// `--actor NAME`.
    Flag,
    /// Prow's `JOB_SPEC`: the author of the pull request a presubmit tests.
    ProwAuthor,
    /// Prow's `JOB_SPEC`: the job's name (postsubmits and periodics run for no person).
    ProwJob,
    /// `GITHUB_ACTOR` (GitHub Actions).
    GithubActor,
    /// `USER`: someone at a terminal.
    User,
    /// Nothing named an actor.
    Unknown,
}

impl ActorSource {
    /// How the audit log and messages name the source.
    pub fn label(self) -> &'static str {
        match self {
            ActorSource::Flag => "flag",
            ActorSource::ProwAuthor => "prow-job-spec-author",
            ActorSource::ProwJob => "prow-job-spec-job",
            ActorSource::GithubActor => "GITHUB_ACTOR",
            ActorSource::User => "USER",
            ActorSource::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source {
            ActorSource::Unknown => f.write_str("an unknown actor"),
            source => write!(f, "{} (from {})", self.name, source.label()),
        }
    }
}

impl Actor {
    /// `flag` if given, else the first of Prow's `JOB_SPEC`, `GITHUB_ACTOR` and `USER`
    /// that names someone; `env` reads an environment variable (the CLI passes
    /// `std::env::var`, tests a table). Empty values count as unset.
    pub fn resolve(flag: Option<&str>, env: impl Fn(&str) -> Option<String>) -> Actor {
        let named = |name: String, source| Actor { name, source };
        let set = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        if let Some(name) = flag.filter(|s| !s.trim().is_empty()) {
            return named(name.to_string(), ActorSource::Flag);
        }
        if let Some(actor) = set(env("JOB_SPEC")).and_then(|spec| from_job_spec(&spec)) {
            return actor;
        }
        if let Some(name) = set(env("GITHUB_ACTOR")) {
            return named(name, ActorSource::GithubActor);
        }
        if let Some(name) = set(env("USER")) {
            return named(name, ActorSource::User);
        }
        named(String::new(), ActorSource::Unknown)
    }

    /// Whether a name was found: an unknown actor belongs to no role.
    pub fn is_known(&self) -> bool {
        self.source != ActorSource::Unknown
    }
}

/// Prow's `JOB_SPEC` JSON: a presubmit acts for the author of the pull request it tests
/// (`.refs.pulls[0].author`); any other job acts for itself (`.job`). A spec that does
/// not parse names nobody, so the next source is tried.
fn from_job_spec(spec: &str) -> Option<Actor> {
    let spec: serde_json::Value = serde_json::from_str(spec).ok()?;
    let text = |v: &serde_json::Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    if spec["type"].as_str() == Some("presubmit")
        && let Some(author) = text(&spec["refs"]["pulls"][0]["author"])
    {
        return Some(Actor {
            name: author,
            source: ActorSource::ProwAuthor,
        });
    }
    text(&spec["job"]).map(|job| Actor {
        name: job,
        source: ActorSource::ProwJob,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(flag: Option<&str>, vars: &[(&str, &str)]) -> (String, &'static str) {
        let actor = Actor::resolve(flag, |name| {
            vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        });
        (actor.name, actor.source.label())
    }

    const PRESUBMIT: &str =
        r#"{"type":"presubmit","job":"pull-k8s-io-verify","refs":{"pulls":[{"number":1,"author":"alice"}]}}"#;
    const POSTSUBMIT: &str = r#"{"type":"postsubmit","job":"post-k8sio-image-promo","refs":{}}"#;

    #[test]
    fn sources_in_order_of_precedence() {
        let all = [("JOB_SPEC", PRESUBMIT), ("GITHUB_ACTOR", "octocat"), ("USER", "root")];
        assert_eq!(resolve(Some("bob"), &all), ("bob".into(), "flag"));
        assert_eq!(resolve(None, &all), ("alice".into(), "prow-job-spec-author"));
        assert_eq!(
            resolve(None, &[("JOB_SPEC", POSTSUBMIT), ("USER", "root")]),
            ("post-k8sio-image-promo".into(), "prow-job-spec-job")
        );
        assert_eq!(
            resolve(None, &[("GITHUB_ACTOR", "octocat"), ("USER", "root")]),
            ("octocat".into(), "GITHUB_ACTOR")
        );
        assert_eq!(resolve(None, &[("USER", "root")]), ("root".into(), "USER"));
        assert_eq!(resolve(None, &[]), (String::new(), "unknown"));
    }

    #[test]
    fn empty_or_unparsable_values_fall_through() {
        assert_eq!(
            resolve(
                Some(" "),
                &[("JOB_SPEC", "not json"), ("GITHUB_ACTOR", ""), ("USER", "u")]
            ),
            ("u".into(), "USER")
        );
        // A presubmit without pulls still names its job.
        let spec = r#"{"type":"presubmit","job":"j","refs":{"pulls":[]}}"#;
        assert_eq!(resolve(None, &[("JOB_SPEC", spec)]), ("j".into(), "prow-job-spec-job"));
    }
}
