//! Records the git commit and the compiler version so `kpromo version` can report them
//! without any runtime lookup.
use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=KPROMO_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=KPROMO_RUSTC_VERSION={rustc_version}");
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the ref of the branch it names
    // (a commit), not every branch: worktrees share `refs/heads`, and watching it all would
    // rebuild this checkout whenever another worktree commits. Ask git where each lives (in
    // a worktree `.git` is a file); a watched path that does not exist would rerun this
    // script on every build, and a packed branch ref lives in `packed-refs`.
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    let watched = ["HEAD"]
        .into_iter()
        .chain(branch.as_deref())
        .chain(["packed-refs"])
        .filter_map(|p| git(&["rev-parse", "--git-path", p]))
        .map(PathBuf::from)
        .filter(|p| p.exists());
    let mut any = false;
    for path in watched {
        println!("cargo:rerun-if-changed={}", path.display());
        any = true;
    }
    if !any {
        // Not a git checkout (e.g. a source tarball): only this script matters.
        println!("cargo:rerun-if-changed=build.rs");
    }
}
