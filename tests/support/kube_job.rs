//! The Kubernetes Job of docs/kubernetes.md, as the documentation shows it: the offline
//! test validates it against the Kubernetes schema, the shard e2e test runs its command
//! line.
use std::path::{Path, PathBuf};

pub fn docs_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/kubernetes.md")
}

/// The text of the first ```yaml block of docs/kubernetes.md.
pub fn job_yaml() -> String {
    let docs = std::fs::read_to_string(docs_file()).expect("read docs/kubernetes.md");
    let start = docs.find("```yaml\n").expect("a ```yaml block in docs/kubernetes.md") + "```yaml\n".len();
    let end = docs[start..].find("```").expect("the end of the ```yaml block") + start;
    docs[start..end].to_string()
}

/// The Job, parsed.
pub fn job() -> serde_json::Value {
    serde_saphyr::from_str(&job_yaml()).expect("the Job in docs/kubernetes.md is YAML")
}

/// `args` of the Job's (only) container.
pub fn container_args(job: &serde_json::Value) -> Vec<String> {
    job["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("the container has args")
        .iter()
        .map(|a| a.as_str().expect("string args").to_string())
        .collect()
}
