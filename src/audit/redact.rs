//! The command line as the audit log records it: no secret may reach the log, whatever
//! flags a future version adds.
const REDACTED: &str = "[redacted]";

/// Words that mark a flag whose value is secret.
const SECRET_WORDS: &[&str] = &["password", "passwd", "secret", "token", "credential", "auth", "key"];

fn is_secret_flag(flag: &str) -> bool {
    let name = flag.trim_start_matches('-').to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// Redacts the values of flags named like secrets (`--registry-token=…`, `--api-key …`)
/// and credentials embedded in URLs (`https://user:pass@host`).
pub fn redact_arguments(arguments: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(arguments.len());
    let mut value_is_secret = false;
    for argument in arguments {
        if value_is_secret && !argument.starts_with('-') {
            out.push(REDACTED.to_string());
            value_is_secret = false;
            continue;
        }
        value_is_secret = false;
        if let Some((flag, _)) = argument.split_once('=')
            && flag.starts_with("--")
            && is_secret_flag(flag)
        {
            out.push(format!("{flag}={REDACTED}"));
            continue;
        }
        if argument.starts_with("--") && is_secret_flag(argument) {
            value_is_secret = true;
        }
        out.push(redact_userinfo(argument));
    }
    out
}

/// `scheme://user:pass@host/…` becomes `scheme://[redacted]@host/…`.
fn redact_userinfo(argument: &str) -> String {
    let Some(scheme_end) = argument.find("://") else {
        return argument.to_string();
    };
    let rest = &argument[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{REDACTED}{}", &argument[..scheme_end + 3], &rest[at..]),
        None => argument.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_survive() {
        let args: Vec<String> = [
            "kpromo",
            "cip",
            "--thin-manifest-dir=/m",
            "--registry-token=hunter2",
            "--api-key",
            "hunter3",
            "--password",
            "--confirm",
            "--snapshot=https://bob:hunter4@registry.example/prod",
            "--actor",
            "alice",
        ]
        .map(String::from)
        .to_vec();
        let redacted = redact_arguments(&args);
        assert_eq!(
            redacted,
            [
                "kpromo",
                "cip",
                "--thin-manifest-dir=/m",
                "--registry-token=[redacted]",
                "--api-key",
                "[redacted]",
                "--password",
                "--confirm",
                "--snapshot=https://[redacted]@registry.example/prod",
                "--actor",
                "alice",
            ]
        );
        assert!(!redacted.join(" ").contains("hunter"));
    }
}
