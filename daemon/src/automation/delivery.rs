//! Delivery: the worker that drains the durable outbox to Slack, Teams and webhook receivers.
//!
//! [`run_delivery`] repeatedly takes due outbox entries (oldest first), POSTs each one's payload
//! with the pooled client of [`crate::net::Net`] (http or https, the system's roots plus
//! `tls_ca_file`, the proxies of the environment), and records the outcome through the store's writer:
//!
//! - 2xx: `mark_outbox_sent`. The entry leaves the outbox and its idempotency key is remembered;
//!   the store refuses to record a key sent twice, and a sent entry is never picked again.
//! - 4xx other than 408 and 429, a 3xx (redirects are not followed: fix the channel's url), an
//!   unknown channel, or a webhook secret that cannot be read: dead-lettered at once, with the
//!   reason. Retrying cannot fix those.
//! - 5xx, 408, 429, timeouts and connection errors, TLS certificate problems included (unknown
//!   CA, wrong name, expired: an operator fixes them without touching the entry): retried with exponential backoff and full
//!   jitter (a delay drawn uniformly from `[0, min(backoff_max, backoff_initial × 2^(n-1))]` after
//!   the n-th failed attempt; a `Retry-After` in seconds raises the delay, never past
//!   `backoff_max`), until `max_attempts` attempts or `max_age_secs` of age, then dead-lettered.
//!   An entry already older than `max_age_secs` when it comes due is dead-lettered unsent.
//!
//! Headers: `Content-Type: application/json`, `Idempotency-Key`, `X-Readyd-Event` (the event
//! kind), and for `webhook` channels with a secret `X-Readyd-Timestamp` (unix seconds) and
//! `X-Readyd-Signature: sha256=<hex(HMAC-SHA256(secret, "<timestamp>.<body>"))>` (see [`sign`] and
//! [`verify`]; receivers should also refuse timestamps older than a few minutes).
//!
//! Crash semantics: an entry leaves the outbox only once a 2xx has been committed, so nothing is
//! lost on restart and delivery is at-least-once on the wire. One window remains: a crash after
//! the receiver answered 2xx and before our commit reaches the disk sends that notification once
//! more after restart, with the same `Idempotency-Key`, which lets the receiver drop it. Once a
//! key is recorded sent, readyd never sends it again.
//!
//! Concurrency is bounded by `outbox.concurrency`; every request is bounded by `timeout_ms`
//! (connect, headers and body). The worker wakes when [`DeliveryHandle::wake`] is called (the
//! engine calls it after committing a batch that enqueued) and otherwise sleeps until the next
//! entry is due.
//!
//! A channel's URL is a credential for Slack and Teams (the token is its path): errors name the
//! channel and show its URL only as scheme + host ([`crate::net::redact`]), and the reasons
//! stored with dead letters are written that way.
//!
//! This module must never decide *what* to send (that is [`super::plan`]), never open a
//! connection except through [`crate::net`], and never touches redb except through the store's
//! API.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use rand::Rng;
use sha2::Sha256;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::events::Event;
use crate::clock::Clock;
use crate::config::{ChannelConfig, ChannelKind, Config, OutboxConfig};
use crate::metrics::{OutboxLabels, metrics};
use crate::model::Timestamp;
use crate::net::{Net, NetError, redact};
use crate::store::{Durability, OutboxEntry, Store, StoreError, WriteBatch, WriterHandle};

/// The longest the worker sleeps without looking at the outbox when the clock is manual (a
/// test may move it at any moment without waking the worker).
const MANUAL_CLOCK_POLL: Duration = Duration::from_millis(20);
/// The longest the worker sleeps without looking at the outbox: a safety net for entries queued
/// by a writer that did not call [`DeliveryHandle::wake`].
const MAX_IDLE: Duration = Duration::from_secs(30);
/// How much of an error response body is kept in the reason.
const ERROR_BODY_LIMIT: usize = 512;
/// Largest response body read (the rest is dropped with the connection).
const RESPONSE_BODY_LIMIT: usize = 64 * 1024;

/// What delivery needs from the configuration.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    pub outbox: OutboxConfig,
    pub channels: BTreeMap<String, ChannelConfig>,
    /// How receivers are reached (trusted roots, proxies).
    pub net: Net,
}

impl DeliveryConfig {
    /// The delivery part of the daemon's configuration.
    pub fn from_config(config: &Config, net: Net) -> DeliveryConfig {
        DeliveryConfig {
            outbox: config.outbox.clone(),
            channels: config.channels.clone(),
            net,
        }
    }
}

/// Lets the engine wake the worker right after it commits new outbox entries. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct DeliveryHandle {
    notify: Arc<Notify>,
}

impl DeliveryHandle {
    pub fn new() -> DeliveryHandle {
        DeliveryHandle::default()
    }

    /// Wake the worker now. A wake while it is busy is remembered, never lost.
    pub fn wake(&self) {
        self.notify.notify_one();
    }
}

/// Why one attempt did not deliver.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("channel `{0}` is not configured")]
    UnknownChannel(String),
    /// `url` is redacted (scheme and host).
    #[error("channel `{channel}`: invalid url {url}: {reason}")]
    BadUrl {
        channel: String,
        url: String,
        reason: String,
    },
    #[error("channel `{channel}`: environment variable {var} (secret_env) is not set")]
    MissingSecret { channel: String, var: String },
    #[error("channel `{channel}`: no response within {timeout_ms} ms")]
    Timeout { channel: String, timeout_ms: u64 },
    /// Could not connect: refused, DNS, proxy, or a TLS certificate problem.
    #[error("channel `{channel}`: {source}")]
    Connect {
        channel: String,
        #[source]
        source: NetError,
    },
    /// Connected, but the exchange failed (reset, malformed answer).
    #[error("channel `{channel}`: {message}")]
    Transport { channel: String, message: String },
    #[error("channel `{channel}`: HTTP {status}{body}")]
    Status {
        channel: String,
        status: StatusCode,
        /// `": <start of the response body>"` or empty.
        body: String,
        /// Seconds from a `Retry-After` header.
        retry_after: Option<u64>,
    },
    #[error("older than max_age_secs ({max_age_secs} s) before it could be delivered")]
    TooOld { max_age_secs: u64 },
}

impl DeliveryError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryError::Timeout { .. }
            | DeliveryError::Connect { .. }
            | DeliveryError::Transport { .. } => true,
            DeliveryError::Status { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::REQUEST_TIMEOUT
                    || *status == StatusCode::TOO_MANY_REQUESTS
            }
            DeliveryError::UnknownChannel(_)
            | DeliveryError::BadUrl { .. }
            | DeliveryError::MissingSecret { .. }
            | DeliveryError::TooOld { .. } => false,
        }
    }
}

/// `sha256=<hex(HMAC-SHA256(secret, "<timestamp>.<body>"))>`, the `X-Readyd-Signature` value.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `signature` (the `X-Readyd-Signature` header) is valid for `timestamp` and `body`, in
/// constant time. For receivers written in Rust; they should also check the timestamp's age.
pub fn verify(secret: &[u8], timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex_mac) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_mac) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The delay before the next attempt after `attempts` failed ones (≥ 1), with full jitter.
pub fn backoff_delay(attempts: u32, outbox: &OutboxConfig, rng: &mut impl Rng) -> Duration {
    let ceiling = backoff_ceiling(attempts, outbox);
    Duration::from_millis(rng.random_range(0..=ceiling))
}

/// The upper bound of the jittered delay after `attempts` failed attempts, in milliseconds:
/// `min(backoff_max, backoff_initial × 2^(attempts-1))`.
pub fn backoff_ceiling(attempts: u32, outbox: &OutboxConfig) -> u64 {
    let doublings = attempts.saturating_sub(1).min(63);
    outbox
        .backoff_initial_ms
        .saturating_mul(1u64 << doublings)
        .min(outbox.backoff_max_ms)
}

/// What happened to one entry.
enum Outcome {
    Sent,
    Retry { next_attempt_at: Timestamp },
    DeadLetter,
}

/// Runs until `shutdown` resolves, then waits for the requests in flight (each bounded by the
/// timeout) and records their outcomes. Stop it before shutting the writer down.
pub async fn run_delivery(
    store: Store,
    writer: WriterHandle,
    config: DeliveryConfig,
    clock: Clock,
    handle: DeliveryHandle,
    shutdown: impl Future<Output = ()>,
) {
    let client: HttpClient = config.net.client();
    let worker = Arc::new(Worker {
        client,
        store,
        writer,
        config,
        clock,
    });
    let concurrency = worker.config.outbox.concurrency.max(1);
    // seq of the entry each running attempt delivers; an entry in flight is never started twice.
    let mut in_flight: HashMap<tokio::task::Id, u64> = HashMap::new();
    let mut running: JoinSet<()> = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let idle = match worker.start_due(concurrency, &mut in_flight, &mut running) {
            Ok(idle) => idle,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox; retrying");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            () = &mut shutdown => break,
            () = handle.notify.notified() => {}
            Some(done) = running.join_next_with_id() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => {
                        // A panicking attempt must not stop delivery: its entry stays queued and
                        // is tried again.
                        tracing::error!(error = %e, "delivery attempt panicked");
                        e.id()
                    }
                };
                in_flight.remove(&id);
            }
            () = tokio::time::sleep(idle) => {}
        }
    }
    while running.join_next().await.is_some() {}
}

type HttpClient = crate::net::HttpClient<Full<Bytes>>;

struct Worker {
    client: HttpClient,
    store: Store,
    writer: WriterHandle,
    config: DeliveryConfig,
    clock: Clock,
}

impl Worker {
    /// Starts attempts for due entries while there is room; returns how long to sleep when
    /// nothing else happens.
    fn start_due(
        self: &Arc<Self>,
        concurrency: usize,
        in_flight: &mut HashMap<tokio::task::Id, u64>,
        running: &mut JoinSet<()>,
    ) -> Result<Duration, StoreError> {
        let now = self.clock.now();
        let cap = if self.clock.is_manual() {
            MANUAL_CLOCK_POLL
        } else {
            MAX_IDLE
        };
        if in_flight.len() >= concurrency {
            // Every slot is busy; a finishing attempt wakes the loop.
            return Ok(cap);
        }
        let busy: HashSet<u64> = in_flight.values().copied().collect();
        // Entries in flight are still queued (and due): ask for enough to skip them.
        let due = self.store.outbox_due(now, concurrency + busy.len())?;
        let mut waiting_due = false;
        for entry in due.into_iter().filter(|e| !busy.contains(&e.seq)) {
            if in_flight.len() >= concurrency {
                waiting_due = true;
                break;
            }
            let seq = entry.seq;
            let worker = Arc::clone(self);
            let task = running.spawn(async move { worker.deliver(entry).await });
            in_flight.insert(task.id(), seq);
        }
        if waiting_due {
            return Ok(cap);
        }
        let queued = self.store.outbox()?;
        metrics().outbox_pending.set(queued.len() as i64);
        let next_due = queued
            .iter()
            .filter(|e| !in_flight.values().any(|s| *s == e.seq))
            .map(|e| e.next_attempt_at)
            .min();
        Ok(match next_due {
            Some(at) => (at - now).to_std().unwrap_or(Duration::ZERO).min(cap),
            None => cap,
        })
    }

    /// One attempt for `entry`, and its outcome committed.
    async fn deliver(&self, entry: OutboxEntry) {
        let kind = Event::kind_of_id(&entry.message.id)
            .map(|k| k.as_str())
            .unwrap_or("unknown");
        let result = self.attempt(&entry, kind).await;
        let now = self.clock.now();
        let attempts = entry.attempts + 1;
        let outbox = &self.config.outbox;
        let mut batch = WriteBatch::new();
        let outcome = match &result {
            Ok(()) => {
                batch.mark_outbox_sent(entry.seq, &entry.message.idempotency_key, now);
                Outcome::Sent
            }
            Err(e) if e.is_retryable() => {
                let age = (now - entry.message.created_at).num_seconds().max(0) as u64;
                if attempts >= outbox.max_attempts || age >= outbox.max_age_secs {
                    let reason = format!("gave up after {attempts} attempts: {e}");
                    batch.dead_letter(entry.seq, &reason, now);
                    Outcome::DeadLetter
                } else {
                    let mut delay = backoff_delay(attempts, outbox, &mut rand::rng());
                    if let DeliveryError::Status {
                        retry_after: Some(secs),
                        ..
                    } = e
                    {
                        let asked = Duration::from_secs(*secs)
                            .min(Duration::from_millis(outbox.backoff_max_ms));
                        delay = delay.max(asked);
                    }
                    let next_attempt_at =
                        now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero());
                    batch.reschedule_outbox(entry.seq, attempts, next_attempt_at, &e.to_string());
                    Outcome::Retry { next_attempt_at }
                }
            }
            Err(e) => {
                batch.dead_letter(entry.seq, &e.to_string(), now);
                Outcome::DeadLetter
            }
        };
        let label = match outcome {
            Outcome::Sent => "delivered",
            Outcome::Retry { .. } => "retried",
            Outcome::DeadLetter => "dead_lettered",
        };
        match self.writer.commit(batch, Durability::Immediate).await {
            Ok(_) => {
                metrics()
                    .outbox
                    .get_or_create(&OutboxLabels {
                        outcome: label.to_owned(),
                    })
                    .inc();
                match (&outcome, &result) {
                    (Outcome::Sent, _) => tracing::debug!(
                        seq = entry.seq, channel = %entry.message.channel, event = kind, attempts,
                        "notification delivered"
                    ),
                    (Outcome::Retry { next_attempt_at }, Err(e)) => tracing::warn!(
                        seq = entry.seq, channel = %entry.message.channel, event = kind, attempts,
                        next_attempt_at = %next_attempt_at, error = %e, "notification will be retried"
                    ),
                    (_, Err(e)) => tracing::error!(
                        seq = entry.seq, channel = %entry.message.channel, event = kind, attempts,
                        error = %e, "notification dead-lettered"
                    ),
                    _ => {}
                }
            }
            Err(StoreError::AlreadySent { .. }) => {
                // Cannot happen while this worker is the only one delivering; if it does, the
                // store's refusal is exactly the guarantee we want.
                tracing::warn!(seq = entry.seq, "notification was already recorded as sent");
            }
            Err(e) => {
                // Not recorded: the entry stays queued and is tried again (the receiver's
                // Idempotency-Key check absorbs the repeat if this attempt was delivered).
                tracing::error!(seq = entry.seq, error = %e, "cannot record a delivery outcome");
                // Stay in flight a moment: without this pause a stopped writer would turn the
                // worker into a busy loop over the same entry.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// POSTs `entry` once.
    async fn attempt(&self, entry: &OutboxEntry, kind: &str) -> Result<(), DeliveryError> {
        let now = self.clock.now();
        let outbox = &self.config.outbox;
        let age = (now - entry.message.created_at).num_seconds();
        if age >= 0 && age as u64 >= outbox.max_age_secs {
            return Err(DeliveryError::TooOld {
                max_age_secs: outbox.max_age_secs,
            });
        }
        let name = &entry.message.channel;
        let channel = self
            .config
            .channels
            .get(name)
            .ok_or_else(|| DeliveryError::UnknownChannel(name.clone()))?;
        let request = build_request(name, channel, entry, kind, now.timestamp(), &|var| {
            std::env::var(var).ok()
        })?;
        let timeout = Duration::from_millis(outbox.timeout_ms);
        let exchange = async {
            let response =
                self.client.request(request).await.map_err(|error| {
                    match NetError::find(&error) {
                        Some(source) => DeliveryError::Connect {
                            channel: name.clone(),
                            source: source.clone(),
                        },
                        None => DeliveryError::Transport {
                            channel: name.clone(),
                            message: crate::net::redact_text(&crate::net::error_chain(&error))
                                .into_owned(),
                        },
                    }
                })?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            // Reading the body lets the connection be reused and gives a reason on failure.
            let body = Limited::new(response.into_body(), RESPONSE_BODY_LIMIT)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if status.is_success() {
                return Ok(());
            }
            let text = String::from_utf8_lossy(&body);
            let text = text.trim();
            let snippet = if text.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    text.chars().take(ERROR_BODY_LIMIT).collect::<String>()
                )
            };
            Err(DeliveryError::Status {
                channel: name.clone(),
                status,
                body: snippet,
                retry_after,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(DeliveryError::Timeout {
                channel: name.clone(),
                timeout_ms: outbox.timeout_ms,
            }),
        }
    }
}

/// The HTTP request for one attempt. `env` reads `secret_env` (injected for tests).
fn build_request(
    name: &str,
    channel: &ChannelConfig,
    entry: &OutboxEntry,
    kind: &str,
    timestamp: i64,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Request<Full<Bytes>>, DeliveryError> {
    let bad_url = |reason: String| DeliveryError::BadUrl {
        channel: name.to_owned(),
        url: redact(&channel.url),
        reason,
    };
    // The parser's message quotes nothing of the URL; the URL itself is never in the reason.
    let uri: http::Uri = channel.url.parse().map_err(|e| bad_url(format!("{e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad_url("the scheme must be http or https".into())),
    }
    let body =
        serde_json::to_vec(&entry.message.payload).expect("a serde_json::Value always serializes");
    let header_value = |v: &str| {
        HeaderValue::from_str(v).map_err(|e| bad_url(format!("invalid header value {v:?}: {e}")))
    };
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::USER_AGENT,
            concat!("readyd/", env!("CARGO_PKG_VERSION")),
        )
        .header(
            "Idempotency-Key",
            header_value(&entry.message.idempotency_key)?,
        )
        .header("X-Readyd-Event", header_value(kind)?);
    if channel.kind == ChannelKind::Webhook {
        let secret = match (&channel.secret, &channel.secret_env) {
            (Some(secret), _) => Some(secret.clone()),
            (None, Some(var)) => Some(env(var).ok_or_else(|| DeliveryError::MissingSecret {
                channel: name.to_owned(),
                var: var.clone(),
            })?),
            (None, None) => None,
        };
        builder = builder.header("X-Readyd-Timestamp", timestamp.to_string());
        if let Some(secret) = secret {
            builder = builder.header(
                "X-Readyd-Signature",
                sign(secret.as_bytes(), timestamp, &body),
            );
        }
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| bad_url(e.to_string()))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use rand::SeedableRng;
    use sha2::Digest;

    use super::*;
    use crate::store::OutboxMessage;

    /// HMAC-SHA256 written out from RFC 2104 on top of plain SHA-256, so the signature is checked
    /// against something that does not share code with [`sign`].
    fn rfc2104_hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
        let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
        let inner = Sha256::new()
            .chain_update(&ipad)
            .chain_update(message)
            .finalize();
        Sha256::new()
            .chain_update(&opad)
            .chain_update(inner)
            .finalize()
            .into()
    }

    #[test]
    fn the_independent_hmac_matches_rfc_4231() {
        // RFC 4231, test case 2.
        let mac = rfc2104_hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signatures_match_an_independent_computation_and_verify() {
        let body = br#"{"event":{"kind":"task.created"}}"#;
        let signature = sign(b"s3cret", 1_700_000_000, body);
        let mut message = b"1700000000.".to_vec();
        message.extend_from_slice(body);
        let expected = format!(
            "sha256={}",
            hex::encode(rfc2104_hmac_sha256(b"s3cret", &message))
        );
        assert_eq!(signature, expected);
        assert!(verify(b"s3cret", "1700000000", body, &signature));
        assert!(!verify(b"other", "1700000000", body, &signature));
        assert!(!verify(b"s3cret", "1700000001", body, &signature));
        assert!(!verify(b"s3cret", "1700000000", b"{}", &signature));
        assert!(!verify(b"s3cret", "1700000000", body, "md5=00"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_below_the_ceiling() {
        let outbox = OutboxConfig {
            backoff_initial_ms: 100,
            backoff_max_ms: 1_000,
            ..OutboxConfig::default()
        };
        let ceilings: Vec<u64> = (1..=6).map(|n| backoff_ceiling(n, &outbox)).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(backoff_ceiling(200, &outbox), 1_000);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let delays: Vec<Duration> = (0..200)
            .map(|_| backoff_delay(3, &outbox, &mut rng))
            .collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(400)));
        // Full jitter spreads the delays over the whole range.
        assert!(delays.iter().any(|d| *d < Duration::from_millis(100)));
        assert!(delays.iter().any(|d| *d > Duration::from_millis(300)));
    }

    #[test]
    fn status_codes_are_classified() {
        let status = |code: u16| DeliveryError::Status {
            channel: "c".into(),
            status: StatusCode::from_u16(code).unwrap(),
            body: String::new(),
            retry_after: None,
        };
        for code in [500, 502, 503, 408, 429] {
            assert!(status(code).is_retryable(), "{code}");
        }
        for code in [400, 401, 403, 404, 410, 422] {
            assert!(!status(code).is_retryable(), "{code}");
        }
    }

    fn entry(payload: serde_json::Value) -> OutboxEntry {
        let now = Utc::now();
        OutboxEntry {
            seq: 1,
            message: OutboxMessage {
                id: "task.created:00".into(),
                idempotency_key: "k1".into(),
                channel: "tracker".into(),
                payload,
                created_at: now,
            },
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
        }
    }

    #[test]
    fn webhook_requests_carry_the_headers_and_a_signature_over_the_exact_body() {
        let channel = ChannelConfig {
            kind: ChannelKind::Webhook,
            url: "http://127.0.0.1:9/hook".into(),
            secret: None,
            secret_env: Some("HOOK_SECRET".into()),
        };
        let e = entry(serde_json::json!({"b": 1, "a": [1, 2]}));
        let env = |var: &str| (var == "HOOK_SECRET").then(|| "k".to_owned());
        let request = build_request("tracker", &channel, &e, "task.created", 42, &env).unwrap();
        let h = request.headers();
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["idempotency-key"], "k1");
        assert_eq!(h["x-readyd-event"], "task.created");
        assert_eq!(h["x-readyd-timestamp"], "42");
        let body = serde_json::to_vec(&e.message.payload).unwrap();
        let mut message = b"42.".to_vec();
        message.extend_from_slice(&body);
        assert_eq!(
            h["x-readyd-signature"],
            format!(
                "sha256={}",
                hex::encode(rfc2104_hmac_sha256(b"k", &message))
            )
            .as_str()
        );
        let missing = build_request("tracker", &channel, &e, "task.created", 42, &|_| None);
        assert!(matches!(missing, Err(DeliveryError::MissingSecret { .. })));
    }

    #[test]
    fn chat_channels_are_not_signed_and_https_is_accepted() {
        let mut channel = ChannelConfig {
            kind: ChannelKind::Slack,
            url: "http://127.0.0.1:9/hook".into(),
            secret: Some("ignored".into()),
            secret_env: None,
        };
        let e = entry(serde_json::json!({"text": "hi"}));
        let request = build_request("s", &channel, &e, "rule.failed", 1, &|_| None).unwrap();
        assert!(request.headers().get("x-readyd-signature").is_none());
        channel.url = "https://hooks.slack.com/services/T0/B0/xyz".into();
        let request = build_request("s", &channel, &e, "rule.failed", 1, &|_| None).unwrap();
        assert_eq!(request.uri().scheme_str(), Some("https"));
        channel.url = "ftp://hooks.slack.com/services/T0/B0/xyz".into();
        let err = build_request("s", &channel, &e, "rule.failed", 1, &|_| None).unwrap_err();
        assert!(!err.is_retryable());
        let shown = err.to_string();
        assert!(shown.contains("ftp://hooks.slack.com"), "{shown}");
        assert!(!shown.contains("xyz"), "the URL's token leaked: {shown}");
    }

    #[test]
    fn connection_and_certificate_errors_are_retried_and_name_the_channel() {
        for source in [
            NetError::UnknownCa {
                host: "h:443".into(),
            },
            NetError::NameMismatch {
                host: "h:443".into(),
            },
            NetError::Expired {
                host: "h:443".into(),
            },
            NetError::Refused {
                target: "h:443".into(),
            },
        ] {
            let err = DeliveryError::Connect {
                channel: "sre-slack".into(),
                source,
            };
            assert!(err.is_retryable(), "{err}");
            assert!(
                err.to_string().starts_with("channel `sre-slack`: "),
                "{err}"
            );
        }
    }
}
