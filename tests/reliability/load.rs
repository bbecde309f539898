//! The bounded load test (issue 8, item 5): a real daemon on `127.0.0.1:0` (the library server
//! over the `api` fixture organisation, with its background work on), and for a fixed time
//! several concurrent clients, each on its own keep-alive connection:
//!
//! - readers (viewer, owner and approver tokens): catalog, one entity, scores, facts, history,
//!   scorecards, cross-entity scores, tasks, exemptions, initiatives, status;
//! - gate clients (`ci` tokens, one configured by its digest): `GET /v1/gate/{id}`;
//! - one writer per team: the team's owner requests exemptions, the approver approves, denies or
//!   revokes them, and now and then approves a denied one on purpose (the only 409 expected);
//! - half-way through, a hot reload: the scorecard file is replaced (a rule added, the title
//!   changed) and `POST /v1/reload` swaps it in while the others go on.
//!
//! Passes only with zero errors: every answer has the status and shape its request calls for,
//! every acknowledged write is visible at the end with the state it was acknowledged in (and no
//! exemption exists that was not acknowledged), and the reloaded scorecard is in force for every
//! entity. Latency (p50, p99, p99.9, max) and request counts are printed, never asserted.
//!
//! The default run takes about 12 s; the longer run is
//! `READYD_LOAD_SECS=300 cargo test --workspace --test reliability load -- --nocapture`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use readyd_tests::{HASHED_CI, TestDaemon, start_daemon, token_for};
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// The load phase's length when `READYD_LOAD_SECS` is not set.
const DEFAULT_SECS: u64 = 12;
/// Bound on one exchange and on waiting for readiness: reaching it is a failure.
const PATIENCE: Duration = Duration::from_secs(60);
/// Concurrent clients of each kind (writers: one per team).
const READERS: usize = 4;
const GATE_CLIENTS: usize = 2;
/// An `until` far enough ahead that no exemption expires during the test, and within
/// `exemptions.max_days` (365 by default).
fn until() -> String {
    (chrono::Utc::now() + chrono::Duration::days(300)).to_rfc3339()
}
const ENTITIES: [&str; 3] = ["payments-api", "identity-api", "docs-site"];

/// The scorecard after the reload: a rule added (`has-tier`), the title changed.
const RELOADED_SCORECARD: &str = "\
identifier: readiness
title: Readiness (reloaded)
description: Built-in queries only; reloaded during the load test.
levels:
  - { title: Basic }
  - { title: Bronze }
  - { title: Silver }
rules:
  - identifier: has-owner
    title: Has an owning team
    level: Bronze
    query:
      combinator: and
      conditions:
        - { property: $team, operator: isNotEmpty }
  - identifier: has-tier
    title: Has a tier
    level: Bronze
    query:
      combinator: and
      conditions:
        - { property: $tier, operator: isNotEmpty }
  - identifier: has-runbook
    title: Runbook published
    level: Silver
    query:
      combinator: and
      conditions:
        - { property: runbook, operator: isNotEmpty }
";

fn load_duration() -> Duration {
    match std::env::var("READYD_LOAD_SECS") {
        Ok(text) => Duration::from_secs(
            text.trim()
                .parse()
                .unwrap_or_else(|_| panic!("READYD_LOAD_SECS={text:?} is not a number of seconds")),
        ),
        Err(_) => Duration::from_secs(DEFAULT_SECS),
    }
}

/// One client on one keep-alive connection, reconnecting only when the server has closed it
/// before a request was sent (a request is never sent twice).
struct Client {
    addr: SocketAddr,
    token: &'static str,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// An answer and how long it took.
struct Answer {
    status: u16,
    body: Bytes,
    took: Duration,
}

impl Answer {
    fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| {
            format!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Client {
    fn new(addr: SocketAddr, token: &'static str) -> Client {
        Client {
            addr,
            token,
            sender: None,
        }
    }

    async fn connect(&mut self) -> Result<(), String> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Send one request; `Err` for anything but an HTTP answer within [`PATIENCE`].
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let started = Instant::now();
        let exchange = async {
            // A connection the server closed (idle timeout) is replaced before anything is sent.
            let reusable = match &mut self.sender {
                Some(sender) => sender.ready().await.is_ok(),
                None => false,
            };
            if !reusable {
                self.connect().await?;
            }
            let sender = self.sender.as_mut().expect("connected");
            sender
                .ready()
                .await
                .map_err(|e| format!("connection not ready: {e}"))?;
            let mut request = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header(HOST, self.addr.to_string())
                .header(AUTHORIZATION, format!("Bearer {}", self.token));
            let bytes = match body {
                Some(json) => {
                    request = request.header(CONTENT_TYPE, "application/json");
                    Bytes::from(json.to_string())
                }
                None => Bytes::new(),
            };
            let request = request
                .body(Full::new(bytes))
                .map_err(|e| format!("build the request: {e}"))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("send: {e}"))?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("read the answer: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        let outcome = tokio::time::timeout(PATIENCE, exchange).await;
        let took = started.elapsed();
        match outcome {
            Ok(Ok((status, body))) => Ok(Answer { status, body, took }),
            Ok(Err(error)) => {
                self.sender = None;
                Err(format!("{method} {path}: {error}"))
            }
            Err(_) => {
                self.sender = None;
                Err(format!("{method} {path}: no answer within {PATIENCE:?}"))
            }
        }
    }
}

/// What one client task saw.
#[derive(Default)]
struct Tally {
    /// Request kind → latencies.
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    errors: Vec<String>,
    /// Exemption id → the status its last acknowledged write left it in.
    acknowledged: Vec<(String, &'static str)>,
    /// 409s this client provoked on purpose (and got).
    deliberate_conflicts: usize,
}

impl Tally {
    fn record(&mut self, kind: &'static str, answer: &Answer) {
        self.latencies.entry(kind).or_default().push(answer.took);
    }

    /// Send, record the latency, and check the status; the JSON body when it is right.
    async fn expect(
        &mut self,
        client: &mut Client,
        kind: &'static str,
        method: &str,
        path: &str,
        body: Option<&Value>,
        status: u16,
    ) -> Option<Value> {
        let answer = match client.call(method, path, body).await {
            Ok(answer) => answer,
            Err(error) => {
                self.errors.push(error);
                return None;
            }
        };
        self.record(kind, &answer);
        if answer.status != status {
            self.errors.push(format!(
                "{method} {path} → {} (expected {status}): {}",
                answer.status,
                answer.text()
            ));
            return None;
        }
        if status == 204 {
            return Some(Value::Null);
        }
        match answer.json() {
            Ok(value) => Some(value),
            Err(error) => {
                self.errors.push(format!("{method} {path}: {error}"));
                None
            }
        }
    }

    /// A check on the shape of an answer: `false` is an error.
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.errors.push(what());
        }
    }
}

/// Readers: every read route, in turn, as `token`.
async fn reader(addr: SocketAddr, token: &'static str, offset: usize, end: Instant) -> Tally {
    let mut client = Client::new(addr, token);
    let mut tally = Tally::default();
    let mut turn = offset;
    while Instant::now() < end {
        let id = ENTITIES[turn % ENTITIES.len()];
        match turn % 12 {
            0 => {
                if let Some(list) = tally
                    .expect(&mut client, "catalog", "GET", "/v1/entities", None, 200)
                    .await
                {
                    let n = list.as_array().map_or(0, Vec::len);
                    tally.check(n == ENTITIES.len(), || {
                        format!("GET /v1/entities: {n} entities: {list}")
                    });
                }
            }
            1 => {
                let path = format!("/v1/entities/{id}");
                if let Some(entity) = tally
                    .expect(&mut client, "entity", "GET", &path, None, 200)
                    .await
                {
                    tally.check(entity["identifier"] == id, || {
                        format!("GET {path}: {entity}")
                    });
                }
            }
            2 => {
                let path = format!("/v1/entities/{id}/scores");
                if let Some(scores) = tally
                    .expect(&mut client, "scores", "GET", &path, None, 200)
                    .await
                {
                    let one = scores
                        .as_array()
                        .is_some_and(|s| s.len() == 1 && s[0]["scorecard"] == "readiness");
                    tally.check(one, || format!("GET {path}: {scores}"));
                }
            }
            3 => {
                let path = format!("/v1/entities/{id}/history");
                if let Some(history) = tally
                    .expect(&mut client, "history", "GET", &path, None, 200)
                    .await
                {
                    tally.check(history.is_array(), || format!("GET {path}: {history}"));
                }
            }
            4 => {
                let path = format!("/v1/entities/{id}/history?scorecard=readiness");
                tally
                    .expect(&mut client, "history", "GET", &path, None, 200)
                    .await;
            }
            5 => {
                if let Some(cards) = tally
                    .expect(
                        &mut client,
                        "scorecards",
                        "GET",
                        "/v1/scorecards",
                        None,
                        200,
                    )
                    .await
                {
                    let one = cards.as_array().is_some_and(|c| c.len() == 1);
                    tally.check(one, || format!("GET /v1/scorecards: {cards}"));
                }
            }
            6 => {
                tally
                    .expect(
                        &mut client,
                        "scores",
                        "GET",
                        "/v1/scores?scorecard=readiness&below=Silver",
                        None,
                        200,
                    )
                    .await;
            }
            7 => {
                let path = if turn % 24 == 7 {
                    "/v1/tasks"
                } else {
                    "/v1/tasks?status=open"
                };
                if let Some(tasks) = tally
                    .expect(&mut client, "tasks", "GET", path, None, 200)
                    .await
                {
                    tally.check(tasks.is_array(), || format!("GET {path}: {tasks}"));
                }
            }
            8 => {
                if let Some(status) = tally
                    .expect(&mut client, "status", "GET", "/v1/status", None, 200)
                    .await
                {
                    tally.check(status["entities"] == ENTITIES.len(), || {
                        format!("GET /v1/status: {status}")
                    });
                }
            }
            9 => {
                tally
                    .expect(
                        &mut client,
                        "exemptions",
                        "GET",
                        "/v1/exemptions?status=pending",
                        None,
                        200,
                    )
                    .await;
            }
            10 => {
                let path = format!("/v1/entities/{id}/facts");
                tally
                    .expect(&mut client, "entity", "GET", &path, None, 200)
                    .await;
            }
            _ => {
                tally
                    .expect(&mut client, "catalog", "GET", "/v1/initiatives", None, 200)
                    .await;
            }
        }
        turn += 1;
    }
    tally
}

/// Gate clients: `GET /v1/gate/{id}` over every entity.
async fn gate_client(addr: SocketAddr, token: &'static str, end: Instant) -> Tally {
    let mut client = Client::new(addr, token);
    let mut tally = Tally::default();
    let mut turn = 0;
    while Instant::now() < end {
        let id = ENTITIES[turn % ENTITIES.len()];
        let path = format!("/v1/gate/{id}");
        if let Some(answer) = tally
            .expect(&mut client, "gate", "GET", &path, None, 200)
            .await
        {
            let ok = answer["entity"] == id
                && answer["allowed"].is_boolean()
                && answer["reasons"].is_array();
            tally.check(ok, || format!("GET {path}: {answer}"));
        }
        turn += 1;
    }
    tally
}

/// A team's writer: its owner requests exemptions on `entity`; the approver decides them.
/// Every fourth is approved, every fourth denied, every fourth approved then revoked, the rest
/// stay pending; every eighth denied one is then approved on purpose, which must be 409.
async fn writer(
    addr: SocketAddr,
    owner: &'static str,
    entity: &'static str,
    end: Instant,
) -> Tally {
    let mut owner = Client::new(addr, owner);
    let mut approver = Client::new(addr, token_for("approver"));
    let mut tally = Tally::default();
    let mut n: usize = 0;
    while Instant::now() < end {
        let rule = match n % 3 {
            0 => json!("has-runbook"),
            1 => json!("has-owner"),
            _ => Value::Null,
        };
        let body = json!({
            "entity": entity, "scorecard": "readiness", "rule": rule,
            "reason": format!("load test request {n}"), "until": until(),
        });
        let Some(created) = tally
            .expect(
                &mut owner,
                "exemption request",
                "POST",
                "/v1/exemptions",
                Some(&body),
                201,
            )
            .await
        else {
            n += 1;
            continue;
        };
        let Some(id) = created["id"].as_str().map(str::to_owned) else {
            tally.errors.push(format!("no id in {created}"));
            n += 1;
            continue;
        };
        tally.check(created["status"] == "pending", || {
            format!("a new exemption is not pending: {created}")
        });
        tally.acknowledged.push((id.clone(), "pending"));
        let decision = json!({ "note": format!("load test decision {n}") });
        let mut decide = async |tally: &mut Tally, action: &str, expected: &'static str| {
            let path = format!("/v1/exemptions/{id}/{action}");
            if let Some(decided) = tally
                .expect(
                    &mut approver,
                    "exemption decision",
                    "POST",
                    &path,
                    Some(&decision),
                    200,
                )
                .await
            {
                tally.check(decided["status"] == expected, || {
                    format!("POST {path}: {decided}")
                });
                tally.acknowledged.push((id.clone(), expected));
            }
        };
        match n % 4 {
            0 => decide(&mut tally, "approve", "approved").await,
            1 => {
                decide(&mut tally, "deny", "denied").await;
                if n % 8 == 1 {
                    // Approving a denied exemption is illegal: 409, and nothing changes.
                    let path = format!("/v1/exemptions/{id}/approve");
                    match approver.call("POST", &path, Some(&decision)).await {
                        Ok(answer) => {
                            tally.record("exemption decision", &answer);
                            let code = answer
                                .json()
                                .ok()
                                .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
                            if answer.status == 409 && code.as_deref() == Some("conflict") {
                                tally.deliberate_conflicts += 1;
                            } else {
                                tally.errors.push(format!(
                                    "POST {path} on a denied exemption → {} (expected 409 \
                                     conflict): {}",
                                    answer.status,
                                    answer.text()
                                ));
                            }
                        }
                        Err(error) => tally.errors.push(error),
                    }
                }
            }
            2 => {
                decide(&mut tally, "approve", "approved").await;
                decide(&mut tally, "revoke", "revoked").await;
            }
            _ => {}
        }
        n += 1;
    }
    tally
}

/// Half-way through: replace the scorecard file (write, then rename, as an editor does) and
/// `POST /v1/reload` as the admin; the new scorecard must be in force when the answer comes.
async fn reloader(addr: SocketAddr, standards: &Path, started: Instant, at: Duration) -> Tally {
    tokio::time::sleep_until((started + at).into()).await;
    let mut admin = Client::new(addr, token_for("admin"));
    let mut tally = Tally::default();
    let file = standards.join("scorecards/readiness.yaml");
    let staging = standards.join("scorecards/.readiness.yaml.new");
    std::fs::write(&staging, RELOADED_SCORECARD).expect("write the new scorecard");
    std::fs::rename(&staging, &file).expect("rename the new scorecard into place");
    println!("load: hot reload {:.1?} into the run", started.elapsed());
    if let Some(report) = tally
        .expect(&mut admin, "reload", "POST", "/v1/reload", None, 200)
        .await
    {
        let errors = report["errors"].as_array().map_or(0, Vec::len);
        let changes = report["changes"].as_array().map_or(0, Vec::len);
        tally.check(errors == 0 && changes > 0, || {
            format!("POST /v1/reload: {report}")
        });
        println!("load: reload answered {report}");
    }
    if let Some(card) = tally
        .expect(
            &mut admin,
            "scorecards",
            "GET",
            "/v1/scorecards/readiness",
            None,
            200,
        )
        .await
    {
        tally.check(card["title"] == "Readiness (reloaded)", || {
            format!("the reloaded scorecard is not in force: {card}")
        });
    }
    tally
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn summary(name: &str, latencies: &mut [Duration]) -> String {
    latencies.sort_unstable();
    format!(
        "{name:<20} {:>7}   p50 {:>9.3?}   p99 {:>9.3?}   p99.9 {:>9.3?}   max {:>9.3?}",
        latencies.len(),
        percentile(latencies, 0.50),
        percentile(latencies, 0.99),
        percentile(latencies, 0.999),
        latencies.last().copied().unwrap_or_default(),
    )
}

async fn wait_ready(daemon: &TestDaemon) {
    let deadline = Instant::now() + PATIENCE;
    while daemon.get("/readyz", None).await.status != 200 {
        assert!(Instant::now() < deadline, "not ready within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_load_with_a_hot_reload_in_the_middle_has_zero_errors() {
    let daemon = start_daemon(|_| {}).await;
    wait_ready(&daemon).await;
    let addr = daemon.addr;
    let duration = load_duration();
    let started = Instant::now();
    let end = started + duration;
    println!("load: {duration:?} against {addr}");

    let read_tokens = [
        token_for("viewer"),
        token_for("owner:payments"),
        token_for("approver"),
        token_for("ci"),
    ];
    let mut tasks = Vec::new();
    for i in 0..READERS {
        let token = read_tokens[i % read_tokens.len()];
        tasks.push(tokio::spawn(reader(addr, token, i * 5, end)));
    }
    for i in 0..GATE_CLIENTS {
        let token = if i % 2 == 0 {
            token_for("ci")
        } else {
            HASHED_CI.secret
        };
        tasks.push(tokio::spawn(gate_client(addr, token, end)));
    }
    for (owner, entity) in [
        ("owner:payments", "payments-api"),
        ("owner:identity", "identity-api"),
    ] {
        tasks.push(tokio::spawn(writer(addr, token_for(owner), entity, end)));
    }
    let standards = daemon.dir.path().join("standards");
    tasks.push(tokio::spawn(async move {
        reloader(addr, &standards, started, duration / 2).await
    }));

    let mut latencies: BTreeMap<&'static str, Vec<Duration>> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut acknowledged: HashMap<String, &'static str> = HashMap::new();
    let mut conflicts = 0;
    for task in tasks {
        let tally = task.await.expect("a client task panicked");
        for (kind, mut list) in tally.latencies {
            latencies.entry(kind).or_default().append(&mut list);
        }
        errors.extend(tally.errors);
        // In order: the last acknowledged state of each exemption wins.
        for (id, status) in tally.acknowledged {
            acknowledged.insert(id, status);
        }
        conflicts += tally.deliberate_conflicts;
    }
    let elapsed = started.elapsed();

    // Every acknowledged write is there, in the state it was acknowledged in, and nothing else.
    let viewer = Some(token_for("viewer"));
    let list = daemon.get("/v1/exemptions", viewer).await;
    assert_eq!(list.status, 200, "{}", list.text());
    let stored: HashMap<String, String> = list
        .json()
        .as_array()
        .expect("an array of exemptions")
        .iter()
        .map(|e| {
            (
                e["id"].as_str().expect("an id").to_owned(),
                e["status"].as_str().expect("a status").to_owned(),
            )
        })
        .collect();
    for (id, status) in &acknowledged {
        match stored.get(id) {
            Some(found) if found == status => {}
            Some(found) => errors.push(format!(
                "exemption {id} was acknowledged as {status} but is {found}"
            )),
            None => errors.push(format!("exemption {id} was acknowledged but is missing")),
        }
    }
    for id in stored.keys() {
        if !acknowledged.contains_key(id) {
            errors.push(format!("exemption {id} exists but was never acknowledged"));
        }
    }
    // The reloaded scorecard applies to every entity: three rules in each result.
    for id in ENTITIES {
        let scores = daemon
            .get(&format!("/v1/entities/{id}/scores"), viewer)
            .await;
        assert_eq!(scores.status, 200, "{}", scores.text());
        let rules = scores.json()[0]["rules"].as_array().map_or(0, Vec::len);
        if rules != 3 {
            errors.push(format!(
                "{id} is scored on {rules} rules after the reload: {}",
                scores.text()
            ));
        }
    }

    let mut all: Vec<Duration> = latencies.values().flatten().copied().collect();
    let total = all.len();
    println!(
        "load: {total} requests in {elapsed:.1?} ({:.0}/s), {} exemptions acknowledged, \
         {conflicts} deliberate 409s, {} errors",
        total as f64 / elapsed.as_secs_f64(),
        acknowledged.len(),
        errors.len()
    );
    for (kind, list) in &mut latencies {
        println!("load: {}", summary(kind, list));
    }
    println!("load: {}", summary("all", &mut all));

    assert!(total > 0, "no request was answered");
    assert!(
        acknowledged.values().any(|s| *s == "approved") && conflicts > 0,
        "the writers acknowledged no approval or provoked no conflict: the load did not \
         exercise the workflows"
    );
    assert!(
        errors.is_empty(),
        "{} errors under load:\n{}",
        errors.len(),
        errors
            .iter()
            .take(50)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    daemon.stop().await.unwrap();
}
