//! Glob patterns of policy files: `*` matches any run of characters, `/` included, and
//! `?` exactly one; everything else matches itself.
//!
//! Unlike a shell path glob, `*` crosses `/`: `gcr.io/k8s-staging-*` must match every
//! image of every staging project (`gcr.io/k8s-staging-foo/bar/baz`), which is what a
//! policy author means by it.
use std::fmt;

/// A compiled pattern: literal runs between the wildcards.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(Vec<char>),
    AnyOne,
    AnyRun,
}

impl Glob {
    pub fn new(text: &str) -> Self {
        let mut tokens: Vec<Token> = Vec::new();
        for c in text.chars() {
            match (c, tokens.last_mut()) {
                // `**` means the same as `*`; keeping one keeps matching linear.
                ('*', Some(Token::AnyRun)) => {}
                ('*', _) => tokens.push(Token::AnyRun),
                ('?', _) => tokens.push(Token::AnyOne),
                (c, Some(Token::Literal(run))) => run.push(c),
                (c, _) => tokens.push(Token::Literal(vec![c])),
            }
        }
        Self {
            text: text.to_string(),
            tokens,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `subject` matches the whole pattern.
    ///
    /// Greedy with backtracking to the last `*` only, so it runs in O(pattern × subject)
    /// whatever the input: no pattern can make a policy check slow.
    pub fn matches(&self, subject: &str) -> bool {
        let subject: Vec<char> = subject.chars().collect();
        let (mut t, mut s) = (0, 0);
        // Where to resume after the last `*`: the token after it and the subject position.
        let mut resume: Option<(usize, usize)> = None;
        loop {
            let step = match self.tokens.get(t) {
                Some(Token::AnyRun) => {
                    resume = Some((t + 1, s));
                    t += 1;
                    continue;
                }
                Some(Token::AnyOne) if s < subject.len() => Some(1),
                Some(Token::Literal(run)) if subject[s..].starts_with(run) => Some(run.len()),
                None if s == subject.len() => return true,
                _ => None,
            };
            match (step, resume) {
                (Some(n), _) => {
                    t += 1;
                    s += n;
                }
                (None, Some((after, from))) if from < subject.len() => {
                    resume = Some((after, from + 1));
                    t = after;
                    s = from + 1;
                }
                (None, _) => return false,
            }
        }
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.text)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, &str, bool)] = &[
            ("alice", "alice", true),
            ("alice", "alice2", false),
            ("robot-*", "robot-", true),
            ("robot-*", "robot-ci", true),
            ("robot-*", "robo", false),
            ("gcr.io/k8s-staging-*", "gcr.io/k8s-staging-foo/bar/baz", true),
            (
                "*-docker.pkg.dev/*",
                "us-central1-docker.pkg.dev/k8s-artifacts-prod/images",
                true,
            ),
            ("*-docker.pkg.dev/*", "registry.k8s.io/x", false),
            ("kubernetes/*", "kubernetes", false),
            ("v*", "v1.30.0", true),
            ("v1.?", "v1.2", true),
            ("v1.?", "v1.", false),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b", "xxaxxbxxb", true),
            ("*a*b", "xxbxxa", false),
            ("", "", true),
            ("", "x", false),
            ("*", "", true),
            ("**", "anything/at/all", true),
            ("é*", "éa", true),
        ];
        for (pattern, subject, want) in cases {
            assert_eq!(Glob::new(pattern).matches(subject), *want, "{pattern} vs {subject}");
        }
    }

    /// A simple recursive matcher, exponential but obviously right, as the oracle.
    fn oracle(p: &[char], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('*', rest)) => (0..=s.len()).any(|i| oracle(rest, &s[i..])),
            Some(('?', rest)) => !s.is_empty() && oracle(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && oracle(rest, &s[1..]),
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_recursive_definition(p in "[ab*?/]{0,7}", s in "[ab/]{0,9}") {
            let pc: Vec<char> = p.chars().collect();
            let sc: Vec<char> = s.chars().collect();
            prop_assert_eq!(Glob::new(&p).matches(&s), oracle(&pc, &sc));
        }
    }
}
