//! Crash safety (issue 8): kill -9 at random moments during heavy writes, many times, and prove
//! that nothing acknowledged is lost, no notification is lost or sent twice, and the evaluated
//! state converges.
//!
//! One test, [`kill_9_during_heavy_writes_loses_nothing_and_sends_nothing_twice`], runs the real
//! `readyd serve` binary as a child process on a small organisation ([`org`]): a catalog file, a
//! scorecard, tiers, the real `http-json` data-source plugin reading a local fact source, and
//! notification channels pointing at a local receiver ([`net::Server`]) that refuses a seeded
//! share of deliveries with 503, so that deliveries are being retried when the kills land. Each
//! round:
//!
//! 1. the write load runs ([`workload`]): exemption requests, approvals, denials and revocations;
//!    tier requests and decisions; fact changes with refreshes; nudges; catalog edits with
//!    reloads (evaluation passes); the outbox delivering and retrying all the while. Every 2xx
//!    is recorded with what it acknowledged ([`ledger`]);
//! 2. after a random delay (seeded), while requests are in flight, the daemon gets SIGKILL. The
//!    kill is proven to have landed: the process was running, died of signal 9, and at least one
//!    request in flight was cut off without an answer;
//! 3. a copy of the state file is opened directly with the store: every acknowledged exemption
//!    and tier request is there in its acknowledged state (or, for a request the kill cut off,
//!    possibly in the state it asked for; records nobody was answered for are at most the
//!    cut-off creations); every notification the receiver accepted in that life is either
//!    recorded as sent or still queued (at most `outbox.concurrency` of them: the documented
//!    window between a receiver's 2xx and the commit recording it); every key once recorded as
//!    sent stays so;
//! 4. the daemon restarts on the same file (`/readyz` 200) and the API shows the same.
//!
//! After the last round a clean life runs without load: the receiver accepts everything, the
//! facts are frozen, the outbox drains, and the daemon stops with SIGTERM. Then:
//!
//! - the outbox is empty, nothing was dead-lettered, every delivered key is recorded as sent;
//! - every idempotency key the receiver ever saw, or that was queued at a kill, was accepted;
//!   a key was accepted more than once only when each earlier acceptance fell in the window of
//!   the kill that ended its life; never twice in one life;
//! - per event, not just per key: every exemption transition and tier decision in the final
//!   state was announced exactly once and nothing else was; every task's creation (and closing)
//!   exactly once; per entity, `entity.degraded` minus `entity.recovered` alerts is 1 exactly
//!   when it is degraded now; nudges: at least those acknowledged, at most those plus the ones
//!   cut off;
//! - convergence: levels and rule statuses of every (entity, scorecard), effective tiers,
//!   degraded flags and open tasks equal those of a fresh daemon started on an empty state file
//!   with the same files and facts, given the same approved exemptions and tier changes through
//!   the API.
//!
//! Bounded by default (`.ci/run` runs it with the rest of the suite); the soak:
//!
//! ```sh
//! READYD_CRASH_ROUNDS=200 cargo test --workspace --test reliability crash -- --nocapture
//! ```
//!
//! `READYD_CRASH_ROUNDS` (default [`DEFAULT_ROUNDS`]) is the number of kills;
//! `READYD_CRASH_SEED` replays the random choices of a run (kill delays, which deliveries are
//! refused, what the workers do; the interleaving of concurrent requests still varies). Each run
//! prints its seed and one line per kill.

mod ledger;
mod net;
mod org;
mod process;
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use readyd::model::{Exemption, ScorecardResult, Task, TaskStatus, TierRequest};
use readyd::store::{Store, StoreOptions};
use serde_json::{Value, json};

use ledger::Ledger;
use net::{Delivery, Server, call};
use process::Daemon;
use workload::Load;

/// Kills per run when `READYD_CRASH_ROUNDS` is not set.
const DEFAULT_ROUNDS: usize = 10;

/// A small deterministic generator (SplitMix64): the test's random choices follow its seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// An independent generator for a worker.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next())
    }
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text} is not a number")),
    )
}

fn viewer() -> &'static str {
    readyd_tests::token_for("viewer")
}

/// `GET path` as a viewer; the answer must be 200 JSON.
async fn get(addr: SocketAddr, path: &str) -> Value {
    let reply = call(addr, "GET", path, Some(viewer()), None)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(reply.status, 200, "GET {path}: {}", reply.text());
    reply.json()
}

/// Exemptions, tier requests and effective tiers as the API shows them.
async fn api_view(
    addr: SocketAddr,
) -> (
    Vec<Exemption>,
    Vec<TierRequest>,
    BTreeMap<String, Option<u8>>,
) {
    let exemptions = serde_json::from_value(get(addr, "/v1/exemptions").await).expect("exemptions");
    let requests =
        serde_json::from_value(get(addr, "/v1/tier-requests").await).expect("tier requests");
    let tiers = get(addr, "/v1/entities")
        .await
        .as_array()
        .expect("a list of entities")
        .iter()
        .map(|e| {
            (
                e["identifier"].as_str().expect("an identifier").to_owned(),
                e["tier"].as_u64().map(|t| t as u8),
            )
        })
        .collect();
    (exemptions, requests, tiers)
}

/// What one kill left behind, read from a copy of the state file.
struct KillRecord {
    /// Keys the receiver accepted in the killed life that the file does not record as sent:
    /// caught between the receiver's 2xx and the commit (they must be sent again).
    window: BTreeSet<String>,
    /// Keys queued in the outbox at the kill.
    pending: BTreeSet<String>,
}

/// Open a copy of the killed daemon's state file with the store and hold it against what was
/// acknowledged and delivered.
fn inspect_state_file(
    state: &Path,
    scratch: &Path,
    ledger: &Ledger,
    accepted: &BTreeSet<String>,
    sent: &mut BTreeSet<String>,
) -> KillRecord {
    let copy = scratch.join("killed.redb");
    std::fs::copy(state, &copy).expect("copy the state file");
    let store = Store::open(&copy, StoreOptions::default())
        .unwrap_or_else(|e| panic!("the state file left by the kill does not open: {e}"));
    let tiers: BTreeMap<String, Option<u8>> = store
        .entities()
        .expect("read entities")
        .into_iter()
        .map(|s| (s.entity.identifier.clone(), s.effective_tier()))
        .collect();
    ledger.check(
        "the state file after the kill",
        &store.exemptions(None).expect("read exemptions"),
        &store.tier_requests(None).expect("read tier requests"),
        Some(&tiers),
    );
    let pending: BTreeSet<String> = store
        .outbox()
        .expect("read the outbox")
        .into_iter()
        .map(|e| e.message.idempotency_key)
        .collect();
    let is_sent = |key: &str| store.outbox_sent(key).expect("read sent").is_some();
    for key in sent.iter() {
        assert!(
            is_sent(key),
            "{key} was recorded as sent before, and is not any more"
        );
    }
    let mut window = BTreeSet::new();
    for key in accepted {
        if is_sent(key) {
            sent.insert(key.clone());
        } else {
            assert!(
                pending.contains(key),
                "{key} was delivered but neither recorded as sent nor queued: lost"
            );
            window.insert(key.clone());
        }
    }
    assert!(
        window.len() <= org::DELIVERY_CONCURRENCY,
        "{} deliveries caught between the receiver's answer and their record, but at most \
         {} are ever in flight: {window:?}",
        window.len(),
        org::DELIVERY_CONCURRENCY
    );
    let dead = store.dead_letters().expect("read dead letters");
    assert!(dead.is_empty(), "dead letters: {dead:?}");
    drop(store);
    std::fs::remove_file(&copy).expect("remove the copy");
    KillRecord { window, pending }
}

/// Wait until every entity's on-call facts in the daemon are `facts`.
async fn wait_for_facts(addr: SocketAddr, facts: &BTreeMap<String, u32>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    for (entity, count) in facts {
        loop {
            let shown = get(addr, &format!("/v1/entities/{entity}/facts")).await;
            let record = &shown["oncall"];
            if record["facts"]["oncall_count"] == json!(count) && record["stale_reason"].is_null() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{entity}: facts never became {count}: {shown}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The evaluated state that must converge.
#[derive(Debug, PartialEq)]
struct Evaluated {
    /// (entity, scorecard) → level, percent, score and each rule's status.
    scores: BTreeMap<(String, String), String>,
    /// entity → (effective tier, degraded).
    entities: BTreeMap<String, (Option<u64>, bool)>,
    /// (entity, scorecard, rule) of every task not done.
    open_tasks: BTreeSet<(String, String, String)>,
}

async fn evaluated(addr: SocketAddr) -> Evaluated {
    let results: Vec<ScorecardResult> =
        serde_json::from_value(get(addr, "/v1/scores").await).expect("scores");
    let scores = results
        .iter()
        .map(|r| {
            let rules: Vec<String> = r
                .rules
                .iter()
                .map(|rule| format!("{}={}", rule.rule, rule.status.as_str()))
                .collect();
            (
                (r.entity.clone(), r.scorecard.to_string()),
                format!(
                    "{} ({}) {:.3}% score {:.3}: {}",
                    r.level,
                    r.level_index,
                    r.percent,
                    r.score,
                    rules.join(" ")
                ),
            )
        })
        .collect();
    let entities = get(addr, "/v1/entities")
        .await
        .as_array()
        .expect("entities")
        .iter()
        .map(|e| {
            (
                e["identifier"].as_str().expect("identifier").to_owned(),
                (
                    e["tier"].as_u64(),
                    e["degraded"].as_bool().expect("degraded"),
                ),
            )
        })
        .collect();
    let tasks: Vec<Task> = serde_json::from_value(get(addr, "/v1/tasks").await).expect("tasks");
    let open_tasks = tasks
        .iter()
        .filter(|t| t.status != TaskStatus::Done)
        .map(|t| (t.entity.clone(), t.scorecard.clone(), t.rule.clone()))
        .collect();
    Evaluated {
        scores,
        entities,
        open_tasks,
    }
}

/// The value of an unlabelled metric.
async fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let reply = call(addr, "GET", "/metrics", None, None)
        .await
        .expect("GET /metrics");
    reply
        .text()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Accepted deliveries on `channel` of events of `kind`, one per idempotency key.
fn events<'d>(deliveries: &'d [Delivery], channel: &str, kind: &str) -> Vec<&'d Value> {
    let mut seen = BTreeSet::new();
    deliveries
        .iter()
        .filter(|d| d.accepted() && d.channel == channel && d.event == kind)
        .filter(|d| seen.insert(d.key.clone()))
        .map(|d| &d.body["event"])
        .collect()
}

/// Per subject, the idempotency keys of the accepted deliveries announcing it.
fn announced(
    deliveries: &[Delivery],
    kinds: &[&str],
    subject: impl Fn(&Value) -> String,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in deliveries
        .iter()
        .filter(|d| d.accepted() && d.channel == "tracker" && kinds.contains(&d.event.as_str()))
    {
        out.entry(subject(&d.body["event"]))
            .or_default()
            .insert(d.key.clone());
    }
    out
}

/// Every announcement has exactly one key, and the announced subjects are `expected`.
fn exactly_once(
    what: &str,
    announced: &BTreeMap<String, BTreeSet<String>>,
    expected: &BTreeSet<String>,
) {
    for (subject, keys) in announced {
        assert_eq!(
            keys.len(),
            1,
            "{what} {subject} was announced under {} different keys: {keys:?}",
            keys.len()
        );
    }
    let shown: BTreeSet<String> = announced.keys().cloned().collect();
    let lost: Vec<&String> = expected.difference(&shown).collect();
    let phantom: Vec<&String> = shown.difference(expected).collect();
    assert!(lost.is_empty(), "{what}: never announced: {lost:?}");
    assert!(
        phantom.is_empty(),
        "{what}: announced, but not in the final state: {phantom:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_heavy_writes_loses_nothing_and_sends_nothing_twice() {
    let started = Instant::now();
    let rounds = env_number("READYD_CRASH_ROUNDS").map_or(DEFAULT_ROUNDS, |n| n as usize);
    let seed = env_number("READYD_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_nanos() as u64
    });
    println!("crash test: {rounds} kills, READYD_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let server = Arc::new(Server::start(rng.next()).await);
    for i in 0..org::ENTITIES {
        server.set_fact(&org::entity_id(i), rng.below(3) as u32);
    }
    let dir = readyd_tests::temp_dir();
    let root = dir.path().join("org");
    let runbooks: Vec<bool> = (0..org::ENTITIES).map(|_| rng.chance(0.5)).collect();
    let base = server.url("");
    let config = org::write(&root, &runbooks, &base, Some(&base));
    let state = root.join("state/readyd.redb");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("create the log folder");
    let log = |life: usize| logs.join(format!("life-{life:04}.log"));
    let ledger = Arc::new(Mutex::new(Ledger::new(runbooks)));

    let mut kills: Vec<KillRecord> = Vec::new();
    let mut sent: BTreeSet<String> = BTreeSet::new();
    let bin = readyd_tests::readyd_bin();
    println!(
        "readyd binary {} ready after {:?}",
        bin.display(),
        started.elapsed()
    );
    let mut daemon = Daemon::start(&config, &log(0)).await;
    println!("first life up after {:?}", started.elapsed());
    for life in 0..rounds {
        let round_started = Instant::now();
        server.refuse(200 + rng.below(500) as u32);
        let stop = Arc::new(AtomicBool::new(false));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let load = Load {
            addr: daemon.addr,
            ledger: ledger.clone(),
            server: server.clone(),
            stop: stop.clone(),
            in_flight: in_flight.clone(),
            root: root.clone(),
        };
        let workers = load.spawn(&mut rng);

        // The random moment: a seeded delay, then the first instant with writes acknowledged
        // in this life and requests in flight.
        let delay = Duration::from_millis(150 + rng.below(1200));
        tokio::time::sleep(delay).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while ledger.lock().unwrap().acked < 3 || in_flight.load(Ordering::SeqCst) < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "life {life}: the load never got going:\n{}",
                daemon.tail()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let in_flight_at_kill = in_flight.load(Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        daemon.kill_9();
        for worker in workers {
            if let Err(e) = worker.await {
                panic!(
                    "life {life}: a worker failed: {e}\n{}",
                    process::tail(&log(life))
                );
            }
        }
        let (acked, cut_off) = {
            let ledger = ledger.lock().unwrap();
            (ledger.acked, ledger.cut_off)
        };
        assert!(
            cut_off >= 1,
            "life {life}: the kill cut off none of the {in_flight_at_kill} requests in flight"
        );

        // Everything the dead process wrote to the receiver has been read and recorded.
        server.wait_quiet().await;
        let deliveries = server.deliveries();
        let accepted: BTreeSet<String> = deliveries
            .iter()
            .filter(|d| d.life == life && d.accepted())
            .map(|d| d.key.clone())
            .collect();
        let record = {
            let ledger = ledger.lock().unwrap();
            inspect_state_file(&state, dir.path(), &ledger, &accepted, &mut sent)
        };

        server.set_life(life + 1);
        daemon = Daemon::start(&config, &log(life + 1)).await;
        let (exemptions, requests, tiers) = api_view(daemon.addr).await;
        {
            let mut ledger = ledger.lock().unwrap();
            ledger.check(
                "the API after the restart",
                &exemptions,
                &requests,
                Some(&tiers),
            );
            ledger.adopt(&exemptions, &requests, &tiers);
        }
        println!(
            "kill {}/{rounds}: after {delay:?}, {acked} writes acknowledged, {in_flight_at_kill} \
             requests in flight, {cut_off} cut off; outbox at the kill: {} queued, {} delivered \
             but not yet recorded; {} deliveries in this life ({} accepted); round {:?}",
            life + 1,
            record.pending.len(),
            record.window.len(),
            deliveries.iter().filter(|d| d.life == life).count(),
            accepted.len(),
            round_started.elapsed()
        );
        kills.push(record);
    }

    // ---- the clean life: no load, every delivery accepted, facts frozen.
    let final_life = rounds;
    server.refuse(0);
    let facts = server.facts();
    wait_for_facts(daemon.addr, &facts).await;
    println!("clean life: facts frozen after {:?}", started.elapsed());
    let mut must_deliver: BTreeSet<String> =
        server.deliveries().into_iter().map(|d| d.key).collect();
    for kill in &kills {
        must_deliver.extend(kill.pending.iter().cloned());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let accepted: BTreeSet<String> = server
            .deliveries()
            .into_iter()
            .filter(Delivery::accepted)
            .map(|d| d.key)
            .collect();
        let missing: Vec<&String> = must_deliver.difference(&accepted).collect();
        if missing.is_empty() && metric(daemon.addr, "readyd_outbox_pending").await == Some(0.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "notifications never delivered: {missing:?}\n{}",
            daemon.tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("clean life: drained after {:?}", started.elapsed());
    let crashed = evaluated(daemon.addr).await;
    let (exemptions, requests, tiers) = api_view(daemon.addr).await;
    ledger.lock().unwrap().check(
        "the API in the clean life",
        &exemptions,
        &requests,
        Some(&tiers),
    );
    let tasks: Vec<Task> =
        serde_json::from_value(get(daemon.addr, "/v1/tasks").await).expect("tasks");
    assert_eq!(get(daemon.addr, "/v1/dead-letters").await, json!([]));
    daemon.terminate().await;

    // ---- the state file after the clean stop.
    let deliveries = server.deliveries();
    {
        let store = Store::open(&state, StoreOptions::default()).expect("open the state file");
        let queued = store.outbox().expect("read the outbox");
        assert!(queued.is_empty(), "still queued: {queued:?}");
        let dead = store.dead_letters().expect("read dead letters");
        assert!(dead.is_empty(), "dead letters: {dead:?}");
        for d in deliveries.iter().filter(|d| d.accepted()) {
            assert!(
                store.outbox_sent(&d.key).expect("read sent").is_some(),
                "{} was delivered in life {} and is not recorded as sent",
                d.key,
                d.life
            );
        }
    }

    // ---- each notification exactly once, per key.
    let mut acceptances: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for d in &deliveries {
        assert!(
            !d.key.is_empty(),
            "a delivery without Idempotency-Key: {d:?}"
        );
        let lives = acceptances.entry(d.key.as_str()).or_default();
        if d.accepted() {
            lives.push(d.life);
        }
    }
    for key in &must_deliver {
        let lives = acceptances.get(key.as_str()).map_or(&[][..], Vec::as_slice);
        assert!(!lives.is_empty(), "{key} was never delivered");
        for pair in lives.windows(2) {
            assert_ne!(
                pair[0], pair[1],
                "{key} was accepted twice in life {}",
                pair[0]
            );
            assert!(
                pair[0] < final_life && kills[pair[0]].window.contains(key),
                "{key} was accepted in life {} and again in life {}, but was recorded as sent \
                 when life {} ended",
                pair[0],
                pair[1],
                pair[0]
            );
        }
    }
    for (life, kill) in kills.iter().enumerate() {
        for key in &kill.window {
            assert!(
                acceptances[key.as_str()].iter().any(|l| *l > life),
                "{key}, delivered but unrecorded at kill {life}, was not delivered again"
            );
        }
    }
    let resent: usize = kills.iter().map(|k| k.window.len()).sum();
    let queued_at_kills = kills.iter().filter(|k| !k.pending.is_empty()).count();
    assert!(
        rounds < 2 || queued_at_kills >= 1,
        "no kill found notifications queued: the test did not exercise delivery across kills"
    );

    // ---- each event exactly once.
    let mut expected = BTreeSet::new();
    for e in &exemptions {
        for step in &e.history {
            expected.insert(format!("{} exemption.{}", e.id, step.action));
        }
    }
    exactly_once(
        "exemption",
        &announced(
            &deliveries,
            &[
                "exemption.requested",
                "exemption.approved",
                "exemption.denied",
                "exemption.revoked",
            ],
            |ev| {
                format!(
                    "{} {}",
                    ev["data"]["exemption"]["id"].as_str().unwrap_or("?"),
                    ev["kind"].as_str().unwrap_or("?")
                )
            },
        ),
        &expected,
    );
    let expected: BTreeSet<String> = requests
        .iter()
        .filter(|r| r.status != readyd::model::TierRequestStatus::Pending)
        .map(|r| {
            let verdict = serde_json::to_value(r.status).expect("a status");
            format!("{} {}", r.id, verdict.as_str().unwrap_or("?"))
        })
        .collect();
    exactly_once(
        "tier decision",
        &announced(&deliveries, &["tier_request.decided"], |ev| {
            format!(
                "{} {}",
                ev["data"]["tier_request"]["id"].as_str().unwrap_or("?"),
                ev["data"]["decision"].as_str().unwrap_or("?")
            )
        }),
        &expected,
    );
    let mut expected = BTreeSet::new();
    for t in &tasks {
        expected.insert(format!("{} task.created", t.id));
        if t.status == TaskStatus::Done {
            expected.insert(format!("{} task.done", t.id));
        }
    }
    exactly_once(
        "task",
        &announced(&deliveries, &["task.created", "task.done"], |ev| {
            format!(
                "{} {}",
                ev["data"]["task"]["id"].as_str().unwrap_or("?"),
                ev["kind"].as_str().unwrap_or("?")
            )
        }),
        &expected,
    );
    let degraded = events(&deliveries, "tracker", "entity.degraded");
    let recovered = events(&deliveries, "tracker", "entity.recovered");
    for (entity, (_, is_degraded)) in &crashed.entities {
        let count = |list: &[&Value]| {
            list.iter()
                .filter(|ev| ev["entity"]["identifier"] == json!(entity))
                .count()
        };
        let (down, up) = (count(&degraded), count(&recovered));
        assert_eq!(
            down as i64 - up as i64,
            i64::from(*is_degraded),
            "{entity}: {down} degraded and {up} recovered alerts, degraded now: {is_degraded}"
        );
    }
    let nudged = events(&deliveries, "team", "entity.nudge");
    for (entity, (acked, cut_off)) in &ledger.lock().unwrap().nudges {
        let n = nudged
            .iter()
            .filter(|ev| ev["entity"]["identifier"] == json!(entity))
            .count();
        assert!(
            *acked <= n && n <= acked + cut_off,
            "{entity}: {n} nudges delivered; {acked} acknowledged, {cut_off} cut off"
        );
    }

    // ---- convergence: a fresh daemon on an empty state file, same files, facts and decisions.
    let fresh_root = dir.path().join("fresh");
    let runbooks = ledger.lock().unwrap().runbooks.clone();
    let fresh_config = org::write(&fresh_root, &runbooks, &base, None);
    let fresh = Daemon::start(&fresh_config, &logs.join("fresh.log")).await;
    println!("fresh daemon up after {:?}", started.elapsed());
    let team_of = |entity: &str| {
        let i: usize = entity
            .trim_start_matches("svc-")
            .parse()
            .expect("an entity of the test");
        org::team_of(i)
    };
    let approver = readyd_tests::token_for("approver");
    let mut replayed = 0;
    for e in exemptions
        .iter()
        .filter(|e| e.status == readyd::model::ExemptionStatus::Approved)
    {
        let mut body = json!({
            "entity": e.entity,
            "scorecard": e.scorecard,
            "reason": "replayed",
            "until": e.until,
        });
        if let Some(rule) = &e.rule {
            body["rule"] = json!(rule);
        }
        let token = org::owner_token(team_of(&e.entity));
        let reply = call(
            fresh.addr,
            "POST",
            "/v1/exemptions",
            Some(token),
            Some(&body),
        )
        .await
        .expect("request an exemption");
        assert_eq!(reply.status, 201, "{}", reply.text());
        let id = reply.json()["id"].as_str().expect("an id").to_owned();
        let path = format!("/v1/exemptions/{id}/approve");
        let reply = call(fresh.addr, "POST", &path, Some(approver), None)
            .await
            .expect("approve");
        assert_eq!(reply.status, 200, "{}", reply.text());
        replayed += 1;
    }
    for (entity, tier) in &tiers {
        let i: usize = entity
            .trim_start_matches("svc-")
            .parse()
            .expect("an entity");
        if *tier == Some(org::catalog_tier(i)) {
            continue;
        }
        let body = json!({ "entity": entity, "to": tier, "reason": "replayed" });
        let token = org::owner_token(team_of(entity));
        let reply = call(
            fresh.addr,
            "POST",
            "/v1/tier-requests",
            Some(token),
            Some(&body),
        )
        .await
        .expect("request a tier change");
        assert_eq!(reply.status, 201, "{}", reply.text());
        let id = reply.json()["id"].as_str().expect("an id").to_owned();
        let path = format!("/v1/tier-requests/{id}/approve");
        let reply = call(fresh.addr, "POST", &path, Some(approver), None)
            .await
            .expect("approve");
        assert_eq!(reply.status, 200, "{}", reply.text());
        replayed += 1;
    }
    println!(
        "fresh daemon: decisions replayed after {:?}",
        started.elapsed()
    );
    wait_for_facts(fresh.addr, &facts).await;
    let reference = evaluated(fresh.addr).await;
    fresh.terminate().await;
    assert_eq!(
        crashed.scores, reference.scores,
        "levels after {rounds} kills differ from a fresh evaluation"
    );
    assert_eq!(crashed.entities, reference.entities);
    assert_eq!(crashed.open_tasks, reference.open_tasks);

    println!(
        "crash test: {rounds} kills landed; {} exemptions, {} tier requests, {} tasks; {} \
         notifications delivered ({} deliveries, {resent} resent from a kill's window), {} \
         queued at some kill; {replayed} decisions replayed for the convergence check; {:?}",
        exemptions.len(),
        requests.len(),
        tasks.len(),
        acceptances.values().filter(|l| !l.is_empty()).count(),
        deliveries.len(),
        kills.iter().map(|k| k.pending.len()).sum::<usize>(),
        started.elapsed()
    );
}
