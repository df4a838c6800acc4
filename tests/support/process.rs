//! Child processes (registries, nginx) that die with the test, even when it panics.
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A spawned server in its own process group, killed and reaped on drop.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    what: String,
    log: PathBuf,
}

impl ChildGuard {
    /// Spawns `command` with stdout and stderr appended to `log`. Its own process group
    /// keeps a Ctrl-C on the test runner from racing our own shutdown.
    pub fn spawn(what: &str, mut command: Command, log: &Path) -> ChildGuard {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log file handle");
        command.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e} (run scripts/test.sh to install it)"));
        ChildGuard {
            child,
            what: what.to_string(),
            log: log.to_path_buf(),
        }
    }

    /// Spawns a server told to bind port 0 and waits until it logs `listening` (a line prefix
    /// ending just before the port it got). Binding before reporting means no other process can
    /// take the port between our choosing it and the server binding it, and the server queues
    /// requests from then on.
    pub fn spawn_reporting_port(what: &str, command: Command, log: &Path, listening: &str) -> (ChildGuard, u16) {
        let mut child = ChildGuard::spawn(what, command, log);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(port) = reported_port(log, listening) {
                return (child, port);
            }
            if let Some(exit) = child.exited() {
                panic!("{what} did not start: {exit}");
            }
            assert!(
                Instant::now() < deadline,
                "{what} reported no port within 15 s: {}",
                child.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(description)` if the process already exited (e.g. its port was taken).
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited with {status}: {}", self.what, self.log_tail())),
            Ok(None) => None,
            Err(e) => Some(format!("{}: wait failed: {e}", self.what)),
        }
    }

    /// The last lines the process wrote, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // SIGKILL by PID, then reap: nothing outlives the test, and no zombie stays behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port from a server's "listening" line, once that line is complete.
fn reported_port(log: &Path, listening: &str) -> Option<u16> {
    let text = std::fs::read_to_string(log).ok()?;
    let (_, rest) = text.split_once(listening)?;
    let (port, _) = rest.split_once('\n')?;
    port.trim().parse().ok()
}

/// Runs a short-lived tool to completion and fails the test with its stderr on error.
pub fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e} (run scripts/test.sh to install it)"));
    assert!(
        output.status.success(),
        "{program} {} failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
