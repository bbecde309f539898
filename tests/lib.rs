//! Shared helpers of the integration tests (one test binary, `all/`, a module per area).
//!
//! - [`temp_dir`]: a scratch directory removed at drop.
//! - [`Receiver`]: a local HTTP/1.1 server on `127.0.0.1:0` that answers with a canned
//!   response (or failures on demand) and records every connection and request (webhooks,
//!   plugin HTTP, allow lists).
//! - [`log_capture`]: a process-wide tracing subscriber that keeps every formatted event in
//!   memory, so a test can assert what was (or was never) logged.
//! - [`entity`], [`write_file`]: small builders for inputs.
//!
//! Helpers never reach beyond 127.0.0.1 and never sleep to wait for something.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// A scratch directory, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

/// Write `contents` to `dir/name` (creating parent folders) and return the path.
pub fn write_file(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent folders");
    }
    std::fs::write(&path, contents).expect("write file");
    path
}

/// A minimal catalog entity: `identifier`, kind `service`, title = identifier.
pub fn entity(identifier: &str) -> readyd::model::Entity {
    readyd::model::Entity {
        identifier: identifier.to_string(),
        kind: "service".to_string(),
        title: identifier.to_string(),
        team: None,
        tier: None,
        properties: Default::default(),
        relations: Default::default(),
    }
}

/// One request a [`Receiver`] received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status the receiver answered with.
    pub answered: u16,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The response a [`Receiver`] gives: status, content type, body.
#[derive(Clone, Debug)]
pub struct CannedResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl CannedResponse {
    /// `200 OK` with a JSON body.
    pub fn json(value: &serde_json::Value) -> CannedResponse {
        CannedResponse {
            status: 200,
            content_type: "application/json".into(),
            body: value.to_string().into_bytes(),
        }
    }

    /// `200 OK` with a plain-text body.
    pub fn text(body: &str) -> CannedResponse {
        CannedResponse {
            status: 200,
            content_type: "text/plain".into(),
            body: body.into(),
        }
    }
}

/// How long [`Receiver::wait_for`] waits before failing the test: generous, only a bound.
const WAIT_BOUND: Duration = Duration::from_secs(60);

#[derive(Default)]
struct ReceiverState {
    requests: Vec<RecordedRequest>,
    /// The next this-many requests are answered 500.
    fail_next: usize,
    /// Answer every request with this status (overrides the canned status).
    always: Option<u16>,
}

/// A local HTTP/1.1 server on `127.0.0.1:0` that records what it receives and answers with a
/// canned response (`200 {}` unless told otherwise). Stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    /// `http` or `https`.
    scheme: &'static str,
    connections: Arc<AtomicUsize>,
    state: Arc<Mutex<ReceiverState>>,
    arrived: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// A receiver answering `200` with `{}`.
    pub async fn start() -> Receiver {
        Receiver::serving(CannedResponse::json(&serde_json::json!({}))).await
    }

    /// A receiver answering every request with `response`.
    pub async fn serving(response: CannedResponse) -> Receiver {
        Receiver::spawn(response, None).await
    }

    /// A receiver answering `200 {}` over HTTPS with the certificate of `acceptor` (see
    /// [`tls::CertPair::acceptor`]); a client that rejects the certificate is counted as a
    /// connection and never makes a request.
    pub async fn start_tls(acceptor: tokio_rustls::TlsAcceptor) -> Receiver {
        Receiver::spawn(CannedResponse::json(&serde_json::json!({})), Some(acceptor)).await
    }

    /// [`Receiver::start_tls`] answering `response`.
    pub async fn serving_tls(
        response: CannedResponse,
        acceptor: tokio_rustls::TlsAcceptor,
    ) -> Receiver {
        Receiver::spawn(response, Some(acceptor)).await
    }

    async fn spawn(response: CannedResponse, tls: Option<tokio_rustls::TlsAcceptor>) -> Receiver {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let connections = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(Mutex::new(ReceiverState::default()));
        let arrived = Arc::new(tokio::sync::Notify::new());
        let (conns, shared, notify) = (connections.clone(), state.clone(), arrived.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                conns.fetch_add(1, Ordering::SeqCst);
                let (shared, notify, response) = (shared.clone(), notify.clone(), response.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (shared, notify, canned) =
                            (shared.clone(), notify.clone(), response.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let status = {
                                let mut state = shared.lock().unwrap();
                                let status = if state.fail_next > 0 {
                                    state.fail_next -= 1;
                                    500
                                } else {
                                    state.always.unwrap_or(canned.status)
                                };
                                state.requests.push(RecordedRequest {
                                    method: parts.method.to_string(),
                                    path: parts
                                        .uri
                                        .path_and_query()
                                        .map_or("/", |p| p.as_str())
                                        .to_string(),
                                    headers: parts
                                        .headers
                                        .iter()
                                        .map(|(n, v)| {
                                            (
                                                n.as_str().to_string(),
                                                v.to_str().unwrap_or("").to_string(),
                                            )
                                        })
                                        .collect(),
                                    body: body.to_vec(),
                                    answered: status,
                                });
                                status
                            };
                            notify.notify_waiters();
                            let response = hyper::Response::builder()
                                .status(status)
                                .header("content-type", canned.content_type)
                                .body(Full::new(Bytes::from(canned.body)))
                                .expect("valid canned response");
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                        Some(acceptor) => {
                            // A client refusing the certificate ends it here.
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                    }
                });
            }
        });
        Receiver {
            addr,
            scheme,
            connections,
            state,
            arrived,
            task,
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http(s)://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// Answer the next `n` requests with `500`.
    pub fn fail_next(&self, n: usize) {
        self.state.lock().unwrap().fail_next = n;
    }

    /// Answer every request with `status` from now on.
    pub fn always(&self, status: u16) {
        self.state.lock().unwrap().always = Some(status);
    }

    /// TCP connections accepted so far (a refused client never even connects).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Wait until at least `n` requests have arrived and return them all; fails the test if
    /// they do not arrive within a generous bound.
    pub async fn wait_for(&self, n: usize) -> Vec<RecordedRequest> {
        let waited = tokio::time::timeout(WAIT_BOUND, async {
            loop {
                let notified = self.arrived.notified();
                let requests = self.requests();
                if requests.len() >= n {
                    return requests;
                }
                notified.await;
            }
        })
        .await;
        waited.unwrap_or_else(|_| panic!("expected {n} requests, got {}", self.requests().len()))
    }
}

/// Every tracing event of the test process, formatted (no colours), kept in memory.
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl LogCapture {
    /// Everything logged so far.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }

    /// The logged lines that contain `needle`.
    pub fn lines_containing(&self, needle: &str) -> Vec<String> {
        self.contents()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

#[derive(Clone)]
struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process-wide log capture (installed on first use, at `debug` for readyd's targets).
/// Tests share it: filter lines by something unique to the test, such as a plugin's name.
pub fn log_capture() -> &'static LogCapture {
    static CAPTURE: OnceLock<LogCapture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = CaptureWriter(buffer.clone());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("readyd=debug,info"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        LogCapture { buffer }
    })
}

// ---- the daemon under test and its HTTP client (API tests): `daemon.rs`, `http_client.rs` ----

pub mod daemon;
pub mod http_client;
pub mod tls;

pub use daemon::{
    HASHED_CI, TOKENS, TestDaemon, TestToken, UNKNOWN_TOKEN, fixture_dir, readyd_bin, start_daemon,
    start_daemon_in, token_for,
};
pub use http_client::{HttpResponse, send};

// ---- the example organisation, for tests that run the whole engine

/// A copy of `examples/` in a temporary directory, with its plugin manifests pointing at the
/// plugins this build compiled and the demo stand-in (paging system, Prometheus, chat hooks)
/// running on a free port of 127.0.0.1.
pub struct DemoOrg {
    pub dir: tempfile::TempDir,
    pub stand_in: readyd::demo::StandIn,
}

impl DemoOrg {
    /// Copy the example organisation and start its stand-in.
    pub async fn new() -> DemoOrg {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let dir = temp_dir();
        copy_dir(&examples, dir.path());
        let _ = std::fs::remove_dir_all(dir.path().join(".readyd"));
        let stand_in = readyd::demo::start_stand_in(
            "127.0.0.1:0".parse().expect("address"),
            dir.path().join("stand-in"),
        )
        .await
        .expect("start the demo stand-in");
        let port = stand_in.addr.port().to_string();
        let plugins = dir.path().join("plugins");
        for entry in std::fs::read_dir(&plugins).expect("plugins dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).expect("manifest");
                let text = text
                    .lines()
                    .map(|line| match line.strip_prefix("wasm = \"") {
                        Some(rest) => {
                            let file = Path::new(rest.trim_end_matches('"'))
                                .file_name()
                                .expect("wasm file name")
                                .to_string_lossy()
                                .into_owned();
                            format!(
                                "wasm = \"{}\"",
                                Path::new(readyd_plugin_artifacts::PLUGINS_DIR)
                                    .join(file)
                                    .display()
                            )
                        }
                        None => line.replace("127.0.0.1:18090", &format!("127.0.0.1:{port}")),
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                std::fs::write(&path, text + "\n").expect("rewrite manifest");
            }
        }
        let config = std::fs::read_to_string(dir.path().join("readyd.toml")).expect("config");
        let config = config
            .replace("127.0.0.1:18090", &format!("127.0.0.1:{port}"))
            .replace("listen = \"127.0.0.1:7878\"", "listen = \"127.0.0.1:0\"");
        std::fs::write(dir.path().join("readyd.toml"), config).expect("write config");
        DemoOrg { dir, stand_in }
    }

    /// The organisation's root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Its configuration (`readyd.toml`), loaded, with a shared compiled-plugin cache.
    pub fn config(&self) -> readyd::config::Config {
        let mut config = readyd::config::Config::load(
            Some(&self.path().join("readyd.toml")),
            &Default::default(),
            &Default::default(),
        )
        .expect("demo config loads");
        config.cache_dir = shared_plugin_cache();
        config
    }
}

/// One compiled-plugin cache for the whole test run (compiling is the slow part).
pub fn shared_plugin_cache() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-plugin-cache")
}

/// Copy a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// An engine on `config` with a manual clock, without background work (tests drive it).
pub async fn start_engine(
    config: readyd::config::Config,
    clock: readyd::clock::Clock,
) -> readyd::engine::Engine {
    readyd::engine::Engine::start_with(
        config,
        readyd::engine::StartOptions {
            clock,
            background: false,
        },
    )
    .await
    .expect("engine starts")
}

/// An actor with a role, for engine calls.
pub fn actor(name: &str, role: &str) -> readyd::engine::Actor {
    readyd::engine::Actor {
        name: name.to_owned(),
        role: readyd::config::Role::parse(role).expect("role"),
    }
}
