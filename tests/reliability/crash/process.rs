//! `readyd serve` as a child process: started on a configuration, found on the address it prints,
//! killed with SIGKILL (proving the kill landed on a live process) or stopped with SIGTERM.

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::net::{CallError, call};

/// Bound on a start (open the state file, load the plugin, evaluate) on a loaded machine.
const START_BOUND: Duration = Duration::from_secs(120);

pub struct Daemon {
    child: Child,
    /// Where the API listens.
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Start `readyd serve --config <config>` (output to `log`) and wait until it answers
    /// `GET /readyz` with 200: the state file opened, everything evaluated.
    pub async fn start(config: &Path, log: &Path) -> Daemon {
        let file = std::fs::File::create(log).expect("create the log file");
        let mut command = Command::new(readyd_tests::readyd_bin());
        command
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone the log file"))
            .stderr(file);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("READYD_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        let mut child = command.spawn().expect("start readyd serve");
        let deadline = tokio::time::Instant::now() + START_BOUND;
        // `readyd serve` prints `  dashboard: http://<addr>/` once the engine has started.
        let addr = loop {
            if let Some(addr) = std::fs::read_to_string(log)
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.trim().strip_prefix("dashboard: http://"))
                .and_then(|rest| rest.trim_end_matches('/').parse::<SocketAddr>().ok())
            {
                break addr;
            }
            if let Some(status) = child.try_wait().expect("poll readyd") {
                panic!("readyd exited during start ({status}):\n{}", tail(log));
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "readyd did not start within {START_BOUND:?}:\n{}",
                tail(log)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let daemon = Daemon {
            child,
            addr,
            log: log.to_owned(),
        };
        loop {
            match call(addr, "GET", "/readyz", None, None).await {
                Ok(reply) if reply.status == 200 => break,
                Ok(_) | Err(CallError::Refused(_)) | Err(CallError::CutOff(_)) => {}
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "readyd is not ready within {START_BOUND:?}:\n{}",
                daemon.tail()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        daemon
    }

    /// The end of its log.
    pub fn tail(&self) -> String {
        tail(&self.log)
    }

    /// SIGKILL. Proves the kill landed: the process was running when the signal was sent and
    /// died of that signal (not of anything else, and not by exiting on its own).
    pub fn kill_9(mut self) {
        if let Some(status) = self.child.try_wait().expect("poll readyd") {
            panic!(
                "readyd had already exited ({status}) when the kill was due:\n{}",
                self.tail()
            );
        }
        // `Child::kill` sends SIGKILL on Unix: no shutdown code runs.
        self.child.kill().expect("send SIGKILL");
        let status = self.child.wait().expect("reap readyd");
        assert_eq!(
            status.signal(),
            Some(9),
            "readyd did not die of the SIGKILL ({status}):\n{}",
            self.tail()
        );
    }

    /// SIGTERM, and wait for a clean exit (status 0).
    pub async fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {pid}: {sent}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll readyd") {
                break status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "readyd did not stop after SIGTERM:\n{}",
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(
            status.success(),
            "readyd did not stop cleanly ({status}):\n{}",
            self.tail()
        );
    }
}

/// The last 60 lines of a log file.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}
