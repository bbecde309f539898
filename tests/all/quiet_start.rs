//! The quiet first start (issue 17, item 4): results computed before a data source they read
//! has finished its first round for an entity act on nothing.
//!
//! Every test runs the real engine with its background work (schedules, outbox delivery), the
//! shipped `http-json` data source plugin pointed at a local stand-in of a paging API that holds
//! its answers until the test releases them (a data source that answers slowly, without a
//! sleep), and a local receiver for the webhook channel every event is routed to. The settled
//! organisation: `api` has someone on call (Gold), `web` has nobody (Bronze: one task, one
//! degraded alert); before the facts arrive both would read as Bronze.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use readyd::config::{Config, Overrides};
use readyd::engine::{Engine, TaskFilter};
use readyd::model::LevelChange;
use readyd::store::{Store, StoreOptions};
use readyd_tests::{Receiver, actor, shared_plugin_cache, temp_dir, write_file};

/// How the stand-in answers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Keep every request waiting.
    Hold,
    /// `{"count": N}` from the on-call table.
    Answer,
    /// `500` to everything: the data source's round fails.
    Fail,
}

/// A local stand-in of a paging API: `GET /oncall/{id}` → `{"count": N}`.
struct PagingStandIn {
    addr: SocketAddr,
    mode: tokio::sync::watch::Sender<Mode>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PagingStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PagingStandIn {
    async fn start(mode: Mode) -> PagingStandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("address");
        let (mode, watch) = tokio::sync::watch::channel(mode);
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (watch, counter) = (watch.clone(), counter.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (mut watch, counter) = (watch.clone(), counter.clone());
                        async move {
                            counter.fetch_add(1, Ordering::SeqCst);
                            // A stand-in dropped while a request waits answers it as failed.
                            let mode = watch
                                .wait_for(|m| *m != Mode::Hold)
                                .await
                                .map_or(Mode::Fail, |m| *m);
                            let id = req.uri().path().trim_start_matches("/oncall/").to_owned();
                            let count = match id.as_str() {
                                "web" => 0,
                                "api" => 2,
                                _ => 1,
                            };
                            let (status, body) = match mode {
                                Mode::Fail => (500, "{}".to_owned()),
                                _ => (200, format!("{{\"count\": {count}}}")),
                            };
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(body)))
                                    .expect("response"),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        PagingStandIn {
            addr,
            mode,
            requests,
            task,
        }
    }

    fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

const CATALOG: &str = "\
- { identifier: api, kind: service, title: API, team: core, tier: 1 }
- { identifier: web, kind: service, title: Web, team: front, tier: 1 }
";

const SCORECARD: &str = r#"
identifier: card
title: Card
levels: [ { title: Basic }, { title: Bronze }, { title: Gold } ]
rules:
  - identifier: has-owner
    title: Has an owner
    level: Bronze
    query: { combinator: and, conditions: [ { property: $team, operator: isNotEmpty } ] }
  - identifier: on-call
    title: Someone is on call
    level: Gold
    query: { combinator: and, conditions: [ { property: facts.oncall.count, operator: ">", value: 0 } ] }
"#;

const TIERS: &str = "\
tiers:
  1: { name: Critical, require: { card: Gold }, task_due_days: 7 }
untiered: { require: { card: Bronze } }
";

/// The organisation's files, a stand-in and a receiver; daemons start and stop on it.
struct Org {
    dir: tempfile::TempDir,
    paging: PagingStandIn,
    hooks: Receiver,
}

impl Org {
    async fn new(mode: Mode, first_round_timeout: &str) -> Org {
        let dir = temp_dir();
        let paging = PagingStandIn::start(mode).await;
        let hooks = Receiver::start().await;
        let root = dir.path();
        write_file(root, "catalog/org.yaml", CATALOG);
        write_file(root, "standards/scorecards/card.yaml", SCORECARD);
        write_file(root, "standards/tiers.yaml", TIERS);
        let wasm = Path::new(readyd_plugin_artifacts::PLUGINS_DIR).join("http_json.wasm");
        let port = paging.addr.port();
        write_file(
            root,
            "plugins/oncall.toml",
            format!(
                "name = \"oncall\"\nkind = \"data-source\"\nwasm = \"{}\"\ninterval = \"1h\"\n\
                 timeout_ms = 30000\nmemory_mb = 32\n[capabilities]\nhttp = [\"127.0.0.1:{port}\"]\n\
                 [config]\nurl = \"http://127.0.0.1:{port}/oncall/{{identifier}}\"\n\
                 facts = {{ count = \"/count\" }}\ntimeout_ms = 30000\n",
                wasm.display()
            ),
        );
        write_file(
            root,
            "readyd.toml",
            format!(
                "listen = \"127.0.0.1:0\"\ndata = \"state/readyd.redb\"\ncache_dir = \"{}\"\n\
                 catalog_dir = \"catalog\"\nstandards_dir = \"standards\"\nplugins_dir = \"plugins\"\n\
                 log_level = \"warn\"\nfirst_round_timeout = \"{first_round_timeout}\"\n\
                 [watch]\nenabled = false\n\
                 [channels.hook]\ntype = \"webhook\"\nurl = \"{}\"\nsecret = \"quiet-start-secret\"\n\
                 [[routes]]\nchannels = [\"hook\"]\n",
                shared_plugin_cache().display(),
                hooks.url("/hook")
            ),
        );
        Org { dir, paging, hooks }
    }

    fn config(&self) -> Config {
        Config::load(
            Some(&self.dir.path().join("readyd.toml")),
            &BTreeMap::new(),
            &Overrides::default(),
        )
        .expect("the test configuration loads")
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("state/readyd.redb")
    }

    async fn start(&self) -> Engine {
        Engine::start(self.config())
            .await
            .expect("the engine starts")
    }

    /// (event kind, entity) of every delivery so far, sorted.
    fn deliveries(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .hooks
            .requests()
            .iter()
            .map(|r| {
                let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
                let event = &body["event"];
                (
                    event["kind"].as_str().unwrap_or_default().to_owned(),
                    event["entity"]["identifier"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Stop the engine and check that everything it queued was delivered: nothing waits in
    /// the outbox or lies in the dead letters, and the receiver saw each sent entry once.
    async fn stop_drained(&self, engine: Engine) {
        engine.shutdown().await;
        drop(engine);
        // The file is free once the engine's last background task has let go of it.
        let data = self.data();
        let store = eventually("the stopped engine releases its file", || {
            Store::open(&data, StoreOptions::default()).ok()
        })
        .await;
        let counts = store.counts().expect("counts");
        assert_eq!(counts.outbox, 0, "nothing waits for delivery");
        assert_eq!(counts.dead_letters, 0, "nothing was given up on");
        assert_eq!(
            counts.outbox_sent as usize,
            self.hooks.requests().len(),
            "every sent entry reached the receiver once"
        );
    }
}

/// Wait until `check` answers `Some` (a bound for a noisy machine, not a speed assertion).
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn level(engine: &Engine, id: &str) -> String {
    engine
        .entity_scores(id)
        .expect("scores")
        .first()
        .map(|r| r.level.to_string())
        .unwrap_or_default()
}

/// (entity, scorecard, rule, status) of every task.
fn tasks(engine: &Engine) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = engine
        .tasks(&TaskFilter::default())
        .into_iter()
        .map(|t| (t.entity, t.rule, format!("{:?}", t.status)))
        .collect();
    out.sort();
    out
}

/// An entity's level history as (from, to).
fn history(engine: &Engine, id: &str) -> Vec<(Option<String>, String)> {
    engine
        .history(id, Some("card"))
        .expect("history")
        .into_iter()
        .map(|c: LevelChange| (c.from, c.to))
        .collect()
}

fn settled_history(level: &str) -> Vec<(Option<String>, String)> {
    vec![(None, level.to_owned())]
}

async fn wait_for_deliveries(org: &Org, n: usize) {
    org.hooks.wait_for(n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_first_round_acts_on_nothing_until_its_facts_and_a_restart_does_not_go_quiet() {
    let org = Org::new(Mode::Hold, "5m").await;
    let engine = org.start().await;
    // The engine evaluated at start while the data source's round is in flight.
    eventually("the first round reaches the stand-in", || {
        (org.paging.requests() > 0).then_some(())
    })
    .await;
    assert_eq!(level(&engine, "api"), "Bronze", "the quiet result is shown");
    assert!(
        tasks(&engine).is_empty(),
        "no task before the facts: {:?}",
        tasks(&engine)
    );
    assert!(history(&engine, "api").is_empty(), "no level history yet");
    assert!(history(&engine, "web").is_empty(), "no level history yet");

    org.paging.set(Mode::Answer);
    eventually("api reaches Gold once its facts arrive", || {
        (level(&engine, "api") == "Gold").then_some(())
    })
    .await;
    eventually("web is evaluated with its facts", || {
        (tasks(&engine).len() == 1).then_some(())
    })
    .await;
    wait_for_deliveries(&org, 2).await;
    assert_eq!(level(&engine, "web"), "Bronze");
    assert_eq!(
        tasks(&engine),
        [("web".into(), "on-call".into(), "Open".into())],
        "one task, for what the facts show"
    );
    // The level history starts at each entity's settled level.
    let api_history = history(&engine, "api");
    let web_history = history(&engine, "web");
    assert_eq!(api_history, settled_history("Gold"));
    assert_eq!(web_history, settled_history("Bronze"));
    org.stop_drained(engine).await;
    let fresh_deliveries = org.deliveries();
    assert_eq!(
        fresh_deliveries,
        [
            ("entity.degraded".to_owned(), "web".to_owned()),
            ("task.created".to_owned(), "web".to_owned()),
        ],
        "no task.created/task.done pair and no degraded alert the settled state contradicts"
    );

    // A daemon started after its facts were collected: the same levels and history at once,
    // although the data source holds its answers again.
    org.paging.set(Mode::Hold);
    let engine = org.start().await;
    assert_eq!(level(&engine, "api"), "Gold");
    assert_eq!(level(&engine, "web"), "Bronze");
    assert_eq!(history(&engine, "api"), api_history);
    assert_eq!(history(&engine, "web"), web_history);
    // And it acts at once: a catalog change that loses api its owner opens a task while the
    // data source is still holding its answers (a quiet daemon would wait for the round).
    write_file(
        org.dir.path(),
        "catalog/org.yaml",
        CATALOG.replace("team: core, ", ""),
    );
    // The reload commits its evaluation (and the tasks it plans) before it returns.
    engine.reload_catalog("test").await;
    assert!(
        tasks(&engine)
            .iter()
            .any(|(e, r, _)| e == "api" && r == "has-owner"),
        "a settled daemon acts after a restart: {:?}",
        tasks(&engine)
    );
    wait_for_deliveries(&org, 3).await;
    org.paging.set(Mode::Answer);
    org.stop_drained(engine).await;
    assert!(
        org.deliveries()
            .contains(&("task.created".to_owned(), "api".to_owned()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_entity_is_quiet_until_its_first_round() {
    let org = Org::new(Mode::Answer, "5m").await;
    let engine = org.start().await;
    eventually("the organisation settles", || {
        (level(&engine, "api") == "Gold" && tasks(&engine).len() == 1).then_some(())
    })
    .await;
    wait_for_deliveries(&org, 2).await;
    let before = org.paging.requests();

    // Two new entities while the data source holds its answers: one in a catalog file, one
    // through the API.
    org.paging.set(Mode::Hold);
    write_file(
        org.dir.path(),
        "catalog/more.yaml",
        "- { identifier: new-file, kind: service, title: New, team: core, tier: 1 }\n",
    );
    engine.reload_catalog("test").await;
    let input = serde_json::from_value(serde_json::json!({
        "kind": "service", "team": "core", "tier": 1
    }))
    .expect("entity input");
    engine
        .put_entity(&actor("root", "admin"), "new-api", input)
        .await
        .expect("PUT the entity");
    eventually("their first round reaches the stand-in", || {
        (org.paging.requests() > before).then_some(())
    })
    .await;
    for id in ["new-file", "new-api"] {
        assert_eq!(
            level(&engine, id),
            "Bronze",
            "{id}: the quiet result is shown"
        );
        assert!(
            history(&engine, id).is_empty(),
            "{id}: no level history yet"
        );
    }
    assert_eq!(tasks(&engine).len(), 1, "no task for the new entities yet");

    org.paging.set(Mode::Answer);
    eventually("both new entities reach Gold", || {
        (level(&engine, "new-file") == "Gold" && level(&engine, "new-api") == "Gold").then_some(())
    })
    .await;
    for id in ["new-file", "new-api"] {
        assert_eq!(history(&engine, id), settled_history("Gold"), "{id}");
    }
    assert_eq!(
        tasks(&engine),
        [("web".into(), "on-call".into(), "Open".into())]
    );
    org.stop_drained(engine).await;
    assert_eq!(
        org.deliveries(),
        [
            ("entity.degraded".to_owned(), "web".to_owned()),
            ("task.created".to_owned(), "web".to_owned()),
        ],
        "nothing about the new entities"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_first_round_counts_as_collected() {
    let org = Org::new(Mode::Hold, "5m").await;
    let engine = org.start().await;
    eventually("the first round reaches the stand-in", || {
        (org.paging.requests() > 0).then_some(())
    })
    .await;
    assert!(tasks(&engine).is_empty(), "quiet while the round runs");

    // The round fails: the rules see missing facts and act on them, as they always did.
    org.paging.set(Mode::Fail);
    eventually("tasks open for the missing on-call facts", || {
        (tasks(&engine).len() == 2).then_some(())
    })
    .await;
    assert_eq!(
        tasks(&engine),
        [
            ("api".into(), "on-call".into(), "Open".into()),
            ("web".into(), "on-call".into(), "Open".into()),
        ]
    );
    assert_eq!(history(&engine, "api"), settled_history("Bronze"));
    wait_for_deliveries(&org, 4).await;
    org.stop_drained(engine).await;
    assert_eq!(
        org.deliveries(),
        [
            ("entity.degraded".to_owned(), "api".to_owned()),
            ("entity.degraded".to_owned(), "web".to_owned()),
            ("task.created".to_owned(), "api".to_owned()),
            ("task.created".to_owned(), "web".to_owned()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_round_timeout_bounds_the_wait() {
    let org = Org::new(Mode::Hold, "2s").await;
    let started = chrono::Utc::now();
    let engine = org.start().await;
    // The data source never answers: after the timeout the engine acts on what it knows.
    let created = eventually("tasks open after the timeout", || {
        let all = engine.tasks(&TaskFilter::default());
        (all.len() == 2).then(|| all.iter().map(|t| t.created_at).min().expect("a task"))
    })
    .await;
    assert!(
        created >= started + chrono::Duration::seconds(2),
        "the tasks waited for first_round_timeout (started {started}, task {created})"
    );
    assert_eq!(history(&engine, "api"), settled_history("Bronze"));
    assert_eq!(org.paging.requests(), 1, "the round is still in flight");
    org.paging.set(Mode::Answer);
    eventually("api reaches Gold once its facts arrive after all", || {
        (level(&engine, "api") == "Gold").then_some(())
    })
    .await;
    engine.shutdown().await;
}
