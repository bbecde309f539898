//! The daemon under load: a child process running readyd's engine and HTTP layer on the
//! organisation (the harness's own binary, `readyd-bench daemon --config FILE`, which does what
//! `readyd serve` does: `Engine::start` then `readyd::http::serve`), and the local notification
//! receiver its webhooks post to (plain HTTP, or HTTPS with the run's CA for the TLS figures).
//!
//! A separate process so that the load generator does not share the daemon's runtime and so that
//! its resident memory is the daemon's alone (read from `/proc/<pid>/status`). It stops when its
//! standard input closes (graceful: in-flight requests drain, the engine flushes), and is killed
//! if it does not within 30 s. Everything listens on 127.0.0.1 only.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::org::TEAMS;

/// The token of the admin, the approver, and of each team's owner.
pub const ADMIN_TOKEN: &str = "bench-admin-token";
pub const APPROVER_TOKEN: &str = "bench-approver-token";

pub fn owner_token(team: &str) -> String {
    format!("bench-owner-{team}")
}

/// The child's side: start the engine and serve until standard input closes.
pub async fn serve_child(config_file: &Path) -> anyhow::Result<()> {
    let config = readyd::config::Config::load(
        Some(config_file),
        &BTreeMap::new(),
        &readyd::config::Overrides::default(),
    )
    .map_err(|e| anyhow!("{e}"))?;
    let log_level = config.log_level.clone();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(log_level))
        .with_writer(std::io::stderr)
        .try_init();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let engine = readyd::engine::Engine::start(config).await?;
    println!("listening on {addr}");
    let shutdown = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let served = readyd::http::serve(engine.clone(), listener, shutdown).await;
    engine.shutdown().await;
    served
}

/// Where the child's files are and what it is told.
pub struct DaemonSetup {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub catalog: PathBuf,
    pub standards: PathBuf,
    pub plugins: PathBuf,
    /// Where the `bench` webhook channel posts (the receiver).
    pub webhook: String,
    pub debounce_ms: u64,
    /// Serve HTTPS with the run's certificate and trust its CA for outgoing deliveries.
    pub tls: Option<crate::tls::BenchTls>,
}

impl DaemonSetup {
    /// `readyd.toml` for the child.
    pub fn config_text(&self) -> String {
        let path = |p: &Path| toml_string(&p.display().to_string());
        let mut text = format!(
            "listen = \"127.0.0.1:0\"\ndata = {}\ncatalog_dir = {}\nstandards_dir = {}\nplugins_dir = {}\ncache_dir = {}\nanonymous_read = true\nlog_level = \"warn,readyd::watch=info\"\n\n[watch]\nenabled = true\ndebounce_ms = {}\n\n",
            path(&self.data),
            path(&self.catalog),
            path(&self.standards),
            path(&self.plugins),
            path(&self.dir.join("cache")),
            self.debounce_ms,
        );
        if let Some(tls) = &self.tls {
            // Top-level keys: they must come before the first table, so they go in front.
            text = format!(
                "tls_cert_file = {}\ntls_key_file = {}\ntls_ca_file = {}\n{text}",
                path(&tls.cert_file),
                path(&tls.key_file),
                path(&tls.ca_file),
            );
        }
        text.push_str(&format!(
            "[[tokens]]\nname = \"bench-admin\"\nrole = \"admin\"\ntoken = \"{ADMIN_TOKEN}\"\n\n[[tokens]]\nname = \"bench-approver\"\nrole = \"approver\"\ntoken = \"{APPROVER_TOKEN}\"\n\n"
        ));
        for k in 0..TEAMS {
            let team = format!("team-{k:02}");
            text.push_str(&format!(
                "[[tokens]]\nname = \"owner-{team}\"\nrole = \"owner:{team}\"\ntoken = \"{}\"\n\n",
                owner_token(&team)
            ));
        }
        text.push_str(&format!(
            "[channels.bench]\ntype = \"webhook\"\nurl = {}\nsecret = \"bench-webhook-secret\"\n\n[[routes]]\nscorecards = [\"canary\"]\nchannels = [\"bench\"]\n",
            toml_string(&self.webhook)
        ));
        text
    }
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A running child daemon.
pub struct DaemonChild {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    pub addr: SocketAddr,
    pub pid: u32,
    pub log: PathBuf,
    /// How long from spawn to listening (engine start on the organisation included).
    pub started_in: Duration,
}

/// Resident memory of a process: (VmRSS, VmHWM) in KiB.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// The last lines of the child's log, for an error message.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

impl DaemonChild {
    /// Writes the config, spawns `readyd-bench daemon` and waits until it listens.
    pub async fn spawn(setup: &DaemonSetup) -> anyhow::Result<DaemonChild> {
        let config = setup.dir.join("readyd.toml");
        std::fs::write(&config, setup.config_text())
            .with_context(|| format!("writing {}", config.display()))?;
        let log = setup.dir.join("daemon.log");
        let log_file = std::fs::File::create(&log)?;
        let exe = std::env::current_exe().context("locating the harness binary")?;
        let started = Instant::now();
        let mut child = tokio::process::Command::new(exe)
            .arg("daemon")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .context("spawning the daemon")?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("the daemon exited at once"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(300), lines.next_line()).await;
        let addr = match first {
            Ok(Ok(Some(line))) => line
                .strip_prefix("listening on ")
                .and_then(|a| a.trim().parse::<SocketAddr>().ok())
                .ok_or_else(|| anyhow!("the daemon said {line:?}"))?,
            _ => {
                return Err(anyhow!(
                    "the daemon did not start listening within 300 s; its log ends with:\n{}",
                    log_tail(&log)
                ));
            }
        };
        let started_in = started.elapsed();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(DaemonChild {
            stdin: child.stdin.take(),
            child,
            addr,
            pid,
            log,
            started_in,
        })
    }

    /// Closes its standard input and waits for it to stop (killing it after 30 s).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    return Err(anyhow!(
                        "the daemon exited with {status}; its log ends with:\n{}",
                        log_tail(&self.log)
                    ));
                }
                Ok(())
            }
            Err(_) => {
                self.child.kill().await?;
                Err(anyhow!(
                    "the daemon did not stop within 30 s of its input closing"
                ))
            }
        }
    }
}

/// A local HTTP (or HTTPS) receiver for webhooks: answers 200 at once and records each request's
/// path and arrival time.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    hits: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Receiver {
    pub async fn start() -> anyhow::Result<Receiver> {
        Receiver::start_with(None).await
    }

    /// An HTTPS receiver with this server configuration (the run's certificate for 127.0.0.1).
    pub async fn start_tls(config: Arc<rustls::ServerConfig>) -> anyhow::Result<Receiver> {
        Receiver::start_with(Some(tokio_rustls::TlsAcceptor::from(config))).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> anyhow::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let hits: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
        let recorded = hits.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let recorded = recorded.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                            let recorded = recorded.clone();
                            async move {
                                let path = request.uri().path().to_owned();
                                let _ = request.into_body().collect().await;
                                recorded
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .push((path, Instant::now()));
                                Ok::<_, Infallible>(hyper::Response::new(Full::new(
                                    Bytes::from_static(b"ok"),
                                )))
                            }
                        });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                        Some(acceptor) => {
                            // A failed handshake is the daemon's to report (its delivery
                            // retries and dead letters); the receiver just drops the socket.
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                    }
                });
            }
        });
        Ok(Receiver { addr, hits })
    }

    /// Arrival times of the requests to `path`.
    pub fn arrivals(&self, path: &str) -> Vec<Instant> {
        self.hits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, t)| *t)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_is_valid_for_readyd() {
        let dir = tempfile::tempdir().unwrap();
        let setup = DaemonSetup {
            dir: dir.path().to_owned(),
            data: dir.path().join("d.redb"),
            catalog: dir.path().join("catalog"),
            standards: dir.path().join("standards"),
            plugins: dir.path().join("plugins"),
            webhook: "http://127.0.0.1:9/hook".into(),
            debounce_ms: 150,
            tls: Some(crate::tls::BenchTls::generate(&dir.path().join("tls")).unwrap()),
        };
        let file = dir.path().join("readyd.toml");
        std::fs::write(&file, setup.config_text()).unwrap();
        let config =
            readyd::config::Config::load(Some(&file), &BTreeMap::new(), &Default::default())
                .unwrap();
        assert!(config.watch.enabled);
        assert_eq!(config.tokens.len(), 2 + TEAMS);
        assert_eq!(config.routes[0].scorecards, vec!["canary".to_owned()]);
        assert_eq!(
            config.tls_cert_file,
            Some(dir.path().join("tls/server.pem"))
        );
        assert_eq!(config.tls_ca_file, Some(dir.path().join("tls/ca.pem")));
    }
}
