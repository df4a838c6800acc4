//! `skopeo` as the independent client that checks what the client under test wrote.
use std::process::{Command, Stdio};

fn skopeo(args: &[&str], credentials: Option<(&str, &str)>) -> std::process::Output {
    super::require_tool("skopeo");
    let mut command = Command::new("skopeo");
    command.args(&args[..1]);
    // --tls-verify=false also allows plain HTTP; HTTPS test registries use a throw-away CA.
    command.arg("--tls-verify=false");
    if let Some((user, password)) = credentials {
        command.arg(format!("--creds={user}:{password}"));
    }
    command.args(&args[1..]).stdin(Stdio::null());
    command
        .output()
        .unwrap_or_else(|e| panic!("run skopeo: {e} (run scripts/test.sh to install it)"))
}

/// The exact manifest bytes at `host/repo:tag` or `host/repo@digest`, `None` if absent.
pub fn inspect_raw(reference: &str, credentials: Option<(&str, &str)>) -> Option<Vec<u8>> {
    let output = skopeo(&["inspect", "--raw", &format!("docker://{reference}")], credentials);
    if output.status.success() {
        return Some(output.stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let missing = ["manifest unknown", "MANIFEST_UNKNOWN", "NAME_UNKNOWN", "not found"];
    assert!(
        missing.iter().any(|m| stderr.contains(m)),
        "skopeo inspect --raw {reference} failed: {stderr}"
    );
    None
}

/// Tags of `host/repo` (empty if the repository does not exist).
pub fn list_tags(repository: &str, credentials: Option<(&str, &str)>) -> Vec<String> {
    let output = skopeo(&["list-tags", &format!("docker://{repository}")], credentials);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("NAME_UNKNOWN") || stderr.contains("name unknown"),
            "skopeo list-tags {repository}: {stderr}"
        );
        return Vec::new();
    }
    let body: serde_json::Value = serde_json::from_slice(&output.stdout).expect("skopeo list-tags JSON");
    let mut tags: Vec<String> = body["Tags"]
        .as_array()
        .map(|tags| tags.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    tags.sort();
    tags
}

/// `sha256:<hex>` of what skopeo read: equal to the source digest iff the copy is byte-exact.
pub fn digest_of(reference: &str, credentials: Option<(&str, &str)>) -> Option<String> {
    inspect_raw(reference, credentials).map(|bytes| super::images::sha256_digest(&bytes))
}
