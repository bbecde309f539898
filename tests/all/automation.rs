//! Automation end to end: notifications go from the redb outbox to real HTTP receivers on
//! 127.0.0.1 — Slack, Teams and signed webhook payloads, retries, dead letters, and restarts
//! with pending entries. No assertion depends on how long anything took.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use readyd::automation::delivery::{DeliveryConfig, DeliveryHandle, run_delivery};
use readyd::automation::events::{BlockingRule, EntitySummary, Event, EventKind, event_id};
use readyd::automation::outbox_message;
use readyd::clock::Clock;
use readyd::config::{ChannelConfig, ChannelKind, OutboxConfig};
use readyd::model::RuleStatus;
use readyd::store::{Durability, Store, StoreOptions, WriteBatch, Writer, WriterHandle};
use readyd_tests::{Receiver, RecordedRequest};
use sha2::Sha256;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SECRET: &str = "whsec-test-secret";

fn channels(receiver: &Receiver) -> BTreeMap<String, ChannelConfig> {
    let channel = |kind, path: &str, secret: Option<&str>| ChannelConfig {
        kind,
        url: receiver.url(path),
        secret: secret.map(str::to_owned),
        secret_env: None,
    };
    BTreeMap::from([
        (
            "sre-slack".into(),
            channel(ChannelKind::Slack, "/slack", None),
        ),
        (
            "pay-teams".into(),
            channel(ChannelKind::Teams, "/teams", None),
        ),
        (
            "tracker".into(),
            channel(ChannelKind::Webhook, "/hook", Some(SECRET)),
        ),
    ])
}

/// Fast retries so the tests do not wait; the schedule itself is unit-tested.
fn outbox_config(max_attempts: u32) -> OutboxConfig {
    OutboxConfig {
        max_attempts,
        max_age_secs: 3600,
        backoff_initial_ms: 5,
        backoff_max_ms: 40,
        timeout_ms: 5_000,
        concurrency: 4,
    }
}

pub(crate) fn degraded_event(entity: &str) -> Event {
    Event {
        id: event_id(EventKind::EntityDegraded, &[entity, "test"]),
        kind: EventKind::EntityDegraded,
        at: Utc::now(),
        entity: Some(EntitySummary {
            identifier: entity.into(),
            title: format!("{entity} service"),
            kind: "service".into(),
            team: Some("payments".into()),
            tier: Some(1),
        }),
        team: Some("payments".into()),
        scorecard: Some("production-readiness".into()),
        rule: None,
        from_level: Some("Gold".into()),
        to_level: Some("Silver".into()),
        blocking: vec![BlockingRule {
            scorecard: "production-readiness".into(),
            rule: "has-oncall".into(),
            title: "On-call rotation assigned".into(),
            status: RuleStatus::Fail,
            message: Some("facts.oncall.oncall_count is 0, required > 0".into()),
        }],
        message: format!(
            "{entity} (Tier 1, team payments) fell below Gold on production-readiness: blocking \
             has-oncall (facts.oncall.oncall_count is 0, required > 0)"
        ),
        link: format!("http://readyd.test/#/entities/{entity}"),
        data: serde_json::json!({}),
    }
}

/// Queue `event` for each of `to` and return the idempotency keys.
pub(crate) async fn enqueue(
    writer: &WriterHandle,
    channels: &BTreeMap<String, ChannelConfig>,
    event: &Event,
    to: &[&str],
) -> Vec<String> {
    let mut batch = WriteBatch::new();
    let mut keys = Vec::new();
    for name in to {
        let message = outbox_message(event, name, channels[*name].kind, Utc::now());
        keys.push(message.idempotency_key.clone());
        batch.enqueue_outbox(&message);
    }
    writer
        .commit(batch, Durability::Immediate)
        .await
        .expect("enqueue commits");
    keys
}

/// A running delivery worker and the means to stop it.
pub(crate) struct Worker {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    pub(crate) handle: DeliveryHandle,
}

impl Worker {
    pub(crate) fn start(store: &Store, writer: &WriterHandle, config: DeliveryConfig) -> Worker {
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = DeliveryHandle::new();
        let task = tokio::spawn(run_delivery(
            store.clone(),
            writer.clone(),
            config,
            Clock::system(),
            handle.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Worker { stop, task, handle }
    }

    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("the worker stops cleanly");
    }
}

/// Wait until `done` holds (panics after 30 s: a bound for a noisy machine, not an assertion
/// on speed).
pub(crate) async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) fn json(request: &RecordedRequest) -> serde_json::Value {
    serde_json::from_slice(&request.body).expect("the body is JSON")
}

pub(crate) fn open(path: &Path) -> (Store, WriterHandle) {
    let store = Store::open(path, StoreOptions::default()).expect("open the state file");
    let writer = Writer::spawn(store.clone());
    (store, writer)
}

#[tokio::test]
async fn slack_teams_and_signed_webhook_payloads_are_delivered_once() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open(&dir.path().join("state.redb"));
    let channels = channels(&receiver);
    let event = degraded_event("payments-api");
    let keys = enqueue(
        &writer,
        &channels,
        &event,
        &["sre-slack", "pay-teams", "tracker"],
    )
    .await;
    let worker = Worker::start(
        &store,
        &writer,
        DeliveryConfig {
            net: readyd::net::Net::system(),
            outbox: outbox_config(5),
            channels: channels.clone(),
        },
    );
    worker.handle.wake();
    let requests = receiver.wait_for(3).await;
    eventually("the outbox drains", || store.outbox().unwrap().is_empty()).await;
    worker.stop().await;

    let by_path: BTreeMap<&str, _> = requests.iter().map(|r| (r.path.as_str(), r)).collect();
    assert_eq!(by_path.len(), 3, "one request per channel: {requests:?}");
    for (request, key) in [
        (by_path["/slack"], &keys[0]),
        (by_path["/teams"], &keys[1]),
        (by_path["/hook"], &keys[2]),
    ] {
        assert_eq!(request.method, "POST");
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("idempotency-key"), Some(key.as_str()));
        assert_eq!(request.header("x-readyd-event"), Some("entity.degraded"));
        assert!(
            store.outbox_sent(key).unwrap().is_some(),
            "{key} recorded sent"
        );
    }

    let slack = json(by_path["/slack"]);
    assert!(slack["text"].as_str().unwrap().contains("fell below Gold"));
    assert_eq!(slack["blocks"][0]["type"], "header");
    assert!(
        slack["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["type"] == "actions"
                && b["elements"][0]["url"] == "http://readyd.test/#/entities/payments-api")
    );
    assert!(by_path["/slack"].header("x-readyd-signature").is_none());

    let teams = json(by_path["/teams"]);
    assert_eq!(teams["type"], "message");
    assert_eq!(
        teams["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(
        teams["attachments"][0]["content"]["actions"][0]["type"],
        "Action.OpenUrl"
    );

    // The webhook's signature, checked with the hmac crate directly over the received bytes.
    let hook = by_path["/hook"];
    let timestamp = hook.header("x-readyd-timestamp").expect("a timestamp");
    let signature = hook.header("x-readyd-signature").expect("a signature");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&hook.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(signature, expected);
    let body = json(hook);
    assert_eq!(body["event"]["kind"], "entity.degraded");
    assert_eq!(body["event"]["id"], event.id.as_str());
    assert_eq!(body["delivery"]["idempotency_key"], keys[2].as_str());

    // Queuing the same event again is a no-op: its keys were sent.
    let mut batch = WriteBatch::new();
    batch.enqueue_outbox(&outbox_message(
        &event,
        "tracker",
        ChannelKind::Webhook,
        Utc::now(),
    ));
    let stats = writer.commit(batch, Durability::Immediate).await.unwrap();
    assert_eq!(stats.outbox_duplicates, 1);
    assert!(store.outbox().unwrap().is_empty());
    writer.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failing_receiver_is_retried_until_it_recovers() {
    let receiver = Receiver::start().await;
    receiver.fail_next(3);
    let store = Store::in_memory().unwrap();
    let writer = Writer::spawn(store.clone());
    let channels = channels(&receiver);
    let keys = enqueue(
        &writer,
        &channels,
        &degraded_event("payments-api"),
        &["tracker"],
    )
    .await;
    let worker = Worker::start(
        &store,
        &writer,
        DeliveryConfig {
            net: readyd::net::Net::system(),
            outbox: outbox_config(10),
            channels,
        },
    );
    worker.handle.wake();
    receiver.wait_for(4).await;
    eventually("the outbox drains", || store.outbox().unwrap().is_empty()).await;
    worker.stop().await;

    let requests = receiver.requests();
    let answered: Vec<u16> = requests.iter().map(|r| r.answered).collect();
    assert_eq!(
        answered,
        [500, 500, 500, 200],
        "three failures, then success, then nothing"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.header("idempotency-key") == Some(keys[0].as_str())),
        "every retry carries the same idempotency key"
    );
    // Each attempt is signed afresh over the same body.
    assert!(requests.windows(2).all(|w| w[0].body == w[1].body));
    let sent = store.outbox_sent(&keys[0]).unwrap().expect("recorded sent");
    assert!(sent.event_id.starts_with("entity.degraded:"));
    assert!(store.dead_letters().unwrap().is_empty());
    writer.shutdown().await.unwrap();
}

#[tokio::test]
async fn retries_stop_at_max_attempts_and_client_errors_stop_at_once() {
    let failing = Receiver::start().await;
    failing.always(503);
    let refusing = Receiver::start().await;
    refusing.always(404);
    let store = Store::in_memory().unwrap();
    let writer = Writer::spawn(store.clone());
    let mut channels = channels(&failing);
    channels.get_mut("pay-teams").unwrap().url = refusing.url("/gone");
    let keys = enqueue(
        &writer,
        &channels,
        &degraded_event("payments-api"),
        &["tracker", "pay-teams"],
    )
    .await;
    let worker = Worker::start(
        &store,
        &writer,
        DeliveryConfig {
            net: readyd::net::Net::system(),
            outbox: outbox_config(3),
            channels,
        },
    );
    worker.handle.wake();
    eventually("both entries are dead-lettered", || {
        store.dead_letters().unwrap().len() == 2
    })
    .await;
    worker.stop().await;

    assert_eq!(failing.requests().len(), 3, "max_attempts = 3");
    assert_eq!(refusing.requests().len(), 1, "a 404 is not retried");
    let letters = store.dead_letters().unwrap();
    let by_key: BTreeMap<&str, _> = letters
        .iter()
        .map(|l| (l.entry.message.idempotency_key.as_str(), l))
        .collect();
    let retried = by_key[keys[0].as_str()];
    assert!(
        retried.reason.contains("gave up after 3 attempts") && retried.reason.contains("503"),
        "{}",
        retried.reason
    );
    let refused = by_key[keys[1].as_str()];
    assert!(refused.reason.contains("404"), "{}", refused.reason);
    assert!(store.outbox().unwrap().is_empty());
    assert!(store.outbox_sent(&keys[0]).unwrap().is_none());
    writer.shutdown().await.unwrap();
}

#[tokio::test]
async fn pending_entries_survive_a_restart_and_each_is_delivered_once() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let channels = channels(&receiver);
    let config = || DeliveryConfig {
        net: readyd::net::Net::system(),
        outbox: outbox_config(5),
        channels: channels.clone(),
    };

    // First life: notifications are queued, nothing delivers them.
    let mut keys = BTreeSet::new();
    {
        let (store, writer) = open(&path);
        for i in 0..5 {
            let event = degraded_event(&format!("svc-{i}"));
            keys.extend(enqueue(&writer, &channels, &event, &["tracker"]).await);
        }
        assert_eq!(store.outbox().unwrap().len(), 5);
        writer.shutdown().await.unwrap();
    }

    // Second life: a new worker on the reopened file delivers them.
    {
        let (store, writer) = open(&path);
        let worker = Worker::start(&store, &writer, config());
        receiver.wait_for(5).await;
        eventually("the outbox drains", || store.outbox().unwrap().is_empty()).await;
        worker.stop().await;
        writer.shutdown().await.unwrap();
    }

    // Third life: nothing is sent again, even if the same events are queued again; a new
    // event goes out and marks the point where the worker has surely looked at the outbox.
    {
        let (store, writer) = open(&path);
        for i in 0..5 {
            let event = degraded_event(&format!("svc-{i}"));
            enqueue(&writer, &channels, &event, &["tracker"]).await;
        }
        assert!(
            store.outbox().unwrap().is_empty(),
            "sent keys are never queued again"
        );
        let worker = Worker::start(&store, &writer, config());
        let sentinel = enqueue(
            &writer,
            &channels,
            &degraded_event("sentinel"),
            &["tracker"],
        )
        .await;
        worker.handle.wake();
        receiver.wait_for(6).await;
        eventually("the outbox drains", || store.outbox().unwrap().is_empty()).await;
        worker.stop().await;
        writer.shutdown().await.unwrap();
        keys.insert(sentinel[0].clone());
    }

    let delivered: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_owned())
        .collect();
    assert_eq!(delivered.len(), 6, "{delivered:?}");
    assert_eq!(
        delivered.iter().cloned().collect::<BTreeSet<_>>(),
        keys,
        "each notification exactly once"
    );
}

// ---- the whole daemon ------------------------------------------------------------------------

/// The channels, team channel and route of the full-daemon tests, all on `receiver`. One
/// delivery at a time, so notifications reach the receiver in the order they were queued.
fn route_to(config: &mut readyd::config::Config, receiver: &Receiver) {
    config.public_url = "http://readyd.test".into();
    config.channels = channels(receiver);
    // The fixture's tier 1 alerts `sre`.
    config.channels.insert(
        "sre".into(),
        ChannelConfig {
            kind: ChannelKind::Slack,
            url: receiver.url("/sre"),
            secret: None,
            secret_env: None,
        },
    );
    config.channels.insert(
        "pay".into(),
        ChannelConfig {
            kind: ChannelKind::Teams,
            url: receiver.url("/pay"),
            secret: None,
            secret_env: None,
        },
    );
    config.teams.insert(
        "payments".into(),
        readyd::config::TeamConfig {
            channel: Some("pay".into()),
        },
    );
    config.routes = vec![readyd::config::RouteConfig {
        events: vec!["task.created".into()],
        channels: vec!["tracker".into()],
        ..Default::default()
    }];
    config.outbox = OutboxConfig {
        concurrency: 1,
        ..outbox_config(20)
    };
}

async fn wait_ready(daemon: &readyd_tests::TestDaemon) {
    eventually("the daemon is ready", || daemon.engine.is_ready()).await;
}

fn on_path<'r>(requests: &'r [RecordedRequest], path: &str) -> Vec<&'r RecordedRequest> {
    requests.iter().filter(|r| r.path == path).collect()
}

/// Nudge `entity` and wait until that nudge reached the team channel: with one delivery at a
/// time, everything queued before it has been delivered by then.
async fn nudge_and_drain(
    daemon: &readyd_tests::TestDaemon,
    receiver: &Receiver,
    entity: &str,
) -> Vec<RecordedRequest> {
    let before = on_path(&receiver.requests(), "/pay").len();
    let answer = daemon
        .request(
            "POST",
            &format!("/v1/entities/{entity}/nudge"),
            Some(readyd_tests::token_for("admin")),
            None,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["channels"], serde_json::json!(["pay"]));
    loop {
        let requests = receiver.requests();
        if on_path(&requests, "/pay").len() > before {
            return requests;
        }
        receiver.wait_for(requests.len() + 1).await;
    }
}

#[tokio::test]
async fn a_degraded_tier_1_service_is_alerted_once_and_its_recovery_once() {
    let receiver = Receiver::start().await;
    let daemon = readyd_tests::start_daemon_in(&readyd_tests::fixture_dir("automation"), |c| {
        route_to(c, &receiver)
    })
    .await;
    wait_ready(&daemon).await;

    // The first evaluation: payments-api is below Silver; the tier's alert channel hears it.
    let requests = nudge_and_drain(&daemon, &receiver, "payments-api").await;
    let alerts = on_path(&requests, "/sre");
    assert_eq!(alerts.len(), 1, "one degradation alert: {requests:?}");
    assert_eq!(alerts[0].header("x-readyd-event"), Some("entity.degraded"));
    let text = json(alerts[0])["text"].as_str().unwrap().to_owned();
    assert!(
        text.starts_with(
            "payments-api (Tier 1, team payments) fell below Silver on readiness: blocking \
             has-runbook ("
        ),
        "{text}"
    );

    // Re-evaluating a service that stays degraded alerts nobody again, nor opens a second task.
    for _ in 0..2 {
        let refreshed = daemon
            .request(
                "POST",
                "/v1/entities/payments-api/refresh",
                Some(readyd_tests::token_for("admin")),
                None,
            )
            .await;
        assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    }
    let requests = nudge_and_drain(&daemon, &receiver, "payments-api").await;
    assert_eq!(on_path(&requests, "/sre").len(), 1, "{requests:?}");
    let tasks = on_path(&requests, "/hook");
    assert_eq!(tasks.len(), 1, "one task.created: {requests:?}");
    assert_eq!(json(tasks[0])["event"]["rule"], "has-runbook");
    let nudge = on_path(&requests, "/pay").last().copied().unwrap();
    assert_eq!(nudge.header("x-readyd-event"), Some("entity.nudge"));

    // The runbook is published: one recovery, then silence.
    let catalog = daemon.dir.path().join("catalog/org.yaml");
    let fixed = std::fs::read_to_string(&catalog).unwrap().replacen(
        "  tier: 1\n- identifier: identity-api",
        "  tier: 1\n  properties:\n    runbook: https://wiki.example.com/payments\n\
         - identifier: identity-api",
        1,
    );
    assert!(fixed.contains("wiki.example.com/payments"));
    std::fs::write(&catalog, fixed).unwrap();
    let reloaded = daemon
        .request(
            "POST",
            "/v1/reload",
            Some(readyd_tests::token_for("admin")),
            None,
        )
        .await;
    assert_eq!(reloaded.status, 200, "{}", reloaded.text());
    let requests = nudge_and_drain(&daemon, &receiver, "payments-api").await;
    let alerts = on_path(&requests, "/sre");
    assert_eq!(alerts.len(), 2, "{requests:?}");
    assert_eq!(alerts[1].header("x-readyd-event"), Some("entity.recovered"));
    let requests = nudge_and_drain(&daemon, &receiver, "payments-api").await;
    assert_eq!(on_path(&requests, "/sre").len(), 2);
    daemon.stop().await.unwrap();
}

/// `readyd serve` as a separate process, killed with SIGKILL.
struct Process(std::process::Child);

impl Process {
    /// Start `readyd serve`; its log goes to `log` (read on failure).
    fn serve(config: &Path, log: &Path) -> Process {
        let log = std::fs::File::create(log).expect("create the log file");
        let mut command = std::process::Command::new(readyd_tests::readyd_bin());
        command
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("READYD_") {
                command.env_remove(name);
            }
        }
        Process(command.spawn().expect("start readyd serve"))
    }

    fn kill_9(mut self) {
        // `Child::kill` is SIGKILL on Unix: no shutdown code runs.
        self.0.kill().expect("kill readyd");
        self.0.wait().expect("reap readyd");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn notifications_pending_at_a_kill_9_are_delivered_once_after_restart() {
    // The first life talks to a receiver that refuses everything, the second to one that
    // accepts: a request the killed process had already written cannot be mistaken for a
    // delivery of the second life.
    let refusing = Receiver::start().await;
    refusing.always(503);
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let fixture = readyd_tests::fixture_dir("automation");
    for sub in ["catalog", "standards", "standards/scorecards"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    for file in [
        "catalog/org.yaml",
        "standards/tiers.yaml",
        "standards/scorecards/readiness.yaml",
    ] {
        std::fs::copy(fixture.join(file), dir.path().join(file)).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    let config = dir.path().join("readyd.toml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let write_config = |to: &Receiver| {
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\n\
             data = \"state/readyd.redb\"\n\
             cache_dir = \"state/cache\"\n\
             log_level = \"readyd=debug\"\n\
             [watch]\nenabled = false\n\
             [outbox]\nbackoff_initial_ms = 5\nbackoff_max_ms = 40\nmax_attempts = 1000\n\
             [channels.sre]\ntype = \"slack\"\nurl = \"{sre}\"\n\
             [channels.tracker]\ntype = \"webhook\"\nurl = \"{hook}\"\nsecret = \"{SECRET}\"\n\
             [[routes]]\nevents = [\"task.created\"]\nchannels = [\"tracker\"]\n",
                sre = to.url("/sre"),
                hook = to.url("/hook"),
            ),
        )
        .unwrap();
    };
    write_config(&refusing);

    // First life: the alert and the task notification are queued and refused; kill -9 while
    // they are being retried.
    let logs = [dir.path().join("first.log"), dir.path().join("second.log")];
    let first = Process::serve(&config, &logs[0]);
    eventually("both notifications were attempted", || {
        let requests = refusing.requests();
        !on_path(&requests, "/sre").is_empty() && !on_path(&requests, "/hook").is_empty()
    })
    .await;
    first.kill_9();
    let attempted: BTreeSet<String> = refusing
        .requests()
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_owned())
        .collect();
    assert_eq!(attempted.len(), 2, "one alert, one task");

    // Second life: the channels now lead to a receiver that accepts; each pending
    // notification goes out once.
    write_config(&receiver);
    let second = Process::serve(&config, &logs[1]);
    eventually("every notification was delivered", || {
        let delivered: BTreeSet<String> = receiver
            .requests()
            .iter()
            .filter(|r| r.answered == 200)
            .map(|r| r.header("idempotency-key").unwrap().to_owned())
            .collect();
        delivered == attempted
    })
    .await;
    // The receiver answers before readyd records the delivery: wait for the record (the
    // delivered counter moves after the commit) before killing, or the kill could land in the
    // documented window and legitimately cause a resend.
    let daemon: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(daemon).await.is_ok() {
            let metrics = readyd_tests::send(daemon, "GET", "/metrics", &[], Vec::new()).await;
            if metrics
                .text()
                .contains("readyd_outbox_notifications_total{outcome=\"delivered\"} 2")
            {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries never recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    second.kill_9();

    let store = Store::open(
        dir.path().join("state/readyd.redb"),
        StoreOptions::default(),
    )
    .expect("reopen the state file");
    assert!(store.outbox().unwrap().is_empty(), "nothing left to send");
    for key in &attempted {
        assert!(
            store.outbox_sent(key).unwrap().is_some(),
            "{key} recorded sent"
        );
        let accepted = receiver
            .requests()
            .iter()
            .filter(|r| r.answered == 200 && r.header("idempotency-key") == Some(key.as_str()))
            .count();
        assert_eq!(
            accepted,
            1,
            "{key} accepted once; requests: {:?}\nfirst life: {}\nsecond life: {}",
            receiver.requests(),
            std::fs::read_to_string(&logs[0]).unwrap_or_default(),
            std::fs::read_to_string(&logs[1]).unwrap_or_default()
        );
    }
}
