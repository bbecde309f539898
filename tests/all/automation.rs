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

fn degraded_event(entity: &str) -> Event {
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
async fn enqueue(
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
struct Worker {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    handle: DeliveryHandle,
}

impl Worker {
    fn start(store: &Store, writer: &WriterHandle, config: DeliveryConfig) -> Worker {
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

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("the worker stops cleanly");
    }
}

/// Wait until `done` holds (panics after 30 s: a bound for a noisy machine, not an assertion
/// on speed).
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn json(request: &RecordedRequest) -> serde_json::Value {
    serde_json::from_slice(&request.body).expect("the body is JSON")
}

fn open(path: &Path) -> (Store, WriterHandle) {
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
