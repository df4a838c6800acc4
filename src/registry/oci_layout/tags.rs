//! Tags (`index.json` ref names) and the catalog (every layout below the root).
use std::io;
use std::path::Path;

use super::{OCI_LAYOUT_FILE, OciLayout, check_repo_name};
use crate::registry::{Error, TagList};

impl OciLayout {
    pub(super) async fn list_tags(&self, repo: &str) -> Result<Option<TagList>, Error> {
        let op = self.op(format!("list tags of {repo}"));
        let dir = self.repo_dir(&op, repo)?;
        let Some(index) = self.read_index(&op, &dir).await? else {
            self.count("GET 404", 0, 0);
            return Ok(None);
        };
        self.count("GET 200", 0, 0);
        Ok(Some(TagList {
            tags: index.tags(),
            ..TagList::default()
        }))
    }

    pub(super) async fn catalog(&self) -> Result<Vec<String>, Error> {
        let op = self.op("catalog".into());
        let root = self.root.clone();
        let repos = op.blocking(move || walk_repositories(&root)).await?;
        self.count("GET 200", 0, 0);
        Ok(repos)
    }
}

/// Every directory below `root` holding an `oci-layout` file, as `/`-joined names,
/// sorted. Symlinks are not followed (no loops), and a layout's own `blobs/` is not
/// entered (it holds content, not repositories).
fn walk_repositories(root: &Path) -> io::Result<Vec<String>> {
    let mut repos = Vec::new();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, name)) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound && name.is_empty() => return Ok(repos),
            Err(e) => return Err(e),
        };
        let is_layout = !name.is_empty() && dir.join(OCI_LAYOUT_FILE).is_file();
        if is_layout {
            repos.push(name.clone());
        }
        for entry in entries {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let Some(child) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if (is_layout && child == "blobs") || check_repo_name(&child).is_err() {
                continue;
            }
            let child_name = if name.is_empty() {
                child
            } else {
                format!("{name}/{child}")
            };
            pending.push((entry.path(), child_name));
        }
    }
    repos.sort();
    Ok(repos)
}
