//! HTTP plumbing of the crash test.
//!
//! - [`call`]: one request on a fresh connection that *reports* a daemon dying under it
//!   ([`CallError::CutOff`]: connected, but no complete answer) instead of panicking, so the test
//!   can count the requests each kill cut off.
//! - [`Server`]: one local server on `127.0.0.1:0` that plays both sides the daemon talks to: the
//!   notification receiver (`/hooks/<channel>`: records every delivery with its
//!   `Idempotency-Key`, the daemon life that sent it and the status it got; refuses a seeded
//!   share with `503`) and the data source read by the daemon's `http-json` plugin
//!   (`/facts/<entity>`: `{"data": {"count": N}}` from a map the test changes). It counts its open
//!   connections, so after a kill the test can wait until everything the dead process had
//!   written has been read and recorded.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::Rng;

/// Bound on one exchange with a live daemon: generous for a loaded 2-core machine; a daemon that
/// does not answer within it is hung, which fails the test.
const EXCHANGE_BOUND: Duration = Duration::from_secs(60);

/// An answer of the daemon.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("status {}: not JSON ({e}): {}", self.status, self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request got no answer (the text says what failed).
#[derive(Debug)]
pub enum CallError {
    /// No connection: nothing listens (the daemon is dead or not up yet).
    Refused(String),
    /// Connected, but the connection ended before a complete answer: the request may or may not
    /// have been carried out.
    CutOff(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Refused(why) => write!(f, "no connection: {why}"),
            CallError::CutOff(why) => write!(f, "cut off: {why}"),
        }
    }
}

/// Send one request with an optional bearer token and JSON body on a fresh connection.
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Reply, CallError> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| CallError::Refused(e.to_string()))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CallError::CutOff(format!("handshake: {e}")))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, addr.to_string());
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let bytes = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Bytes::from(json.to_string())
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(bytes))
            .expect("a well-formed request");
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| CallError::CutOff(format!("request: {e}")))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| CallError::CutOff(format!("answer body: {e}")))?
            .to_bytes();
        Ok(Reply { status, body })
    };
    tokio::time::timeout(EXCHANGE_BOUND, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer within {EXCHANGE_BOUND:?}"))
}

/// One notification request the server received.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The daemon life current when it was received (see [`Server::set_life`]).
    pub life: usize,
    /// The channel, from the path `/hooks/<channel>`.
    pub channel: String,
    /// The `Idempotency-Key` header.
    pub key: String,
    /// The `X-Readyd-Event` header.
    pub event: String,
    /// The body (JSON).
    pub body: Value,
    /// What the server answered.
    pub status: u16,
}

impl Delivery {
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

struct Shared {
    deliveries: Mutex<Vec<Delivery>>,
    facts: Mutex<BTreeMap<String, u32>>,
    /// Share of notification requests refused with 503, in thousandths.
    refuse_per_mille: AtomicU32,
    rng: Mutex<Rng>,
    life: AtomicUsize,
    /// Connections accepted and not yet finished.
    open: AtomicUsize,
}

/// The notification receiver and fact source (see the module docs). Stops when dropped.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Server {
    pub async fn start(seed: u64) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            deliveries: Mutex::new(Vec::new()),
            facts: Mutex::new(BTreeMap::new()),
            refuse_per_mille: AtomicU32::new(0),
            rng: Mutex::new(Rng::new(seed)),
            life: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
        });
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                accepting.open.fetch_add(1, Ordering::SeqCst);
                let guard = OpenGuard(accepting.clone());
                let shared = accepting.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(answer(&shared, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    drop(guard);
                });
            }
        });
        Server { addr, shared, task }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Tag what arrives from now on with daemon life `life`.
    pub fn set_life(&self, life: usize) {
        self.shared.life.store(life, Ordering::SeqCst);
    }

    /// Refuse this share (thousandths) of notification requests with 503 from now on.
    pub fn refuse(&self, per_mille: u32) {
        self.shared
            .refuse_per_mille
            .store(per_mille, Ordering::SeqCst);
    }

    /// Every notification request so far, in arrival order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.deliveries.lock().unwrap().clone()
    }

    /// Set the on-call count the fact source reports for `entity`.
    pub fn set_fact(&self, entity: &str, count: u32) {
        self.shared
            .facts
            .lock()
            .unwrap()
            .insert(entity.to_owned(), count);
    }

    /// The on-call counts the fact source reports now.
    pub fn facts(&self) -> BTreeMap<String, u32> {
        self.shared.facts.lock().unwrap().clone()
    }

    /// Wait until no connection is open (after a kill: everything the dead process wrote has
    /// been read and recorded). Panics after a generous bound.
    pub async fn wait_quiet(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.shared.open.load(Ordering::SeqCst) > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} connections to the receiver stay open after the daemon died",
                self.shared.open.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn answer(
    shared: &Shared,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let respond = |status: u16, body: String| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response")
    };
    if let Some(entity) = path.strip_prefix("/facts/") {
        let count = shared.facts.lock().unwrap().get(entity).copied();
        return match count {
            Some(count) => respond(
                200,
                serde_json::json!({"data": {"count": count}}).to_string(),
            ),
            None => respond(404, "{}".into()),
        };
    }
    let Some(channel) = path.strip_prefix("/hooks/") else {
        return respond(404, "{}".into());
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let status = {
        let refuse = shared.refuse_per_mille.load(Ordering::SeqCst);
        let draw = shared.rng.lock().unwrap().below(1000) as u32;
        if draw < refuse { 503 } else { 200 }
    };
    shared.deliveries.lock().unwrap().push(Delivery {
        life: shared.life.load(Ordering::SeqCst),
        channel: channel.to_owned(),
        key: header("idempotency-key"),
        event: header("x-readyd-event"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        status,
    });
    respond(status, "{}".into())
}
