//! TLS everywhere readyd talks, on 127.0.0.1 with a CA each test makes (rcgen): HTTPS stand-ins
//! for Slack and Teams, receivers with a foreign CA or a wrong name (retried, clear errors that
//! never show the URL's path), a CONNECT proxy, the `http-json` plugin fetching over HTTPS, the
//! daemon serving HTTPS with a certificate rotated on disk, `readyd gate --ca-file` and
//! `HTTPS_PROXY` on the real binary, and chat URLs never shown in answers or the log.
//! No assertion depends on how long anything took.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt, Empty};
use readyd::automation::delivery::DeliveryConfig;
use readyd::automation::outbox_message;
use readyd::config::{ChannelConfig, ChannelKind, OutboxConfig};
use readyd::net::{Net, NoProxy, ProxySettings, ProxyUrl};
use readyd::plugin::{HostConfig, Manifest, PluginHost};
use readyd::store::{Durability, OutboxEntry, Store, StoreOptions, WriteBatch, Writer};
use readyd_plugin_artifacts as artifacts;
use readyd_tests::tls::{ConnectProxy, TestCa, presented_certificate, replace_file};
use readyd_tests::{CannedResponse, Receiver, entity, log_capture, readyd_bin, token_for};
use serde_json::json;

use crate::automation::{Worker, degraded_event, enqueue, eventually, json as body_json, open};

/// The path part every chat URL of these tests carries: it must never be shown.
const SECRET_PATH: &str = "T0SECRET/B0SECRET/xoxSECRETTOKEN";

fn chat_channels(slack: &Receiver, teams: &Receiver) -> BTreeMap<String, ChannelConfig> {
    let channel = |kind, url: String| ChannelConfig {
        kind,
        url,
        secret: None,
        secret_env: None,
    };
    BTreeMap::from([
        (
            "sre-slack".into(),
            channel(
                ChannelKind::Slack,
                slack.url(&format!("/services/{SECRET_PATH}")),
            ),
        ),
        (
            "pay-teams".into(),
            channel(
                ChannelKind::Teams,
                teams.url(&format!("/webhookb2/{SECRET_PATH}")),
            ),
        ),
    ])
}

fn fast_outbox(max_attempts: u32) -> OutboxConfig {
    OutboxConfig {
        max_attempts,
        max_age_secs: 3600,
        backoff_initial_ms: 5,
        backoff_max_ms: 40,
        timeout_ms: 5_000,
        concurrency: 4,
    }
}

fn net_trusting(ca_file: &Path, proxy: ProxySettings) -> Net {
    Net::new(Some(ca_file), proxy).expect("the CA file loads")
}

#[tokio::test]
async fn slack_and_teams_over_https_are_delivered_when_tls_ca_file_trusts_their_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("readyd test CA (delivery)");
    let ca_file = ca.write_pem(dir.path(), "ca.pem");
    let server = ca.issue(&["127.0.0.1"]);
    let (slack, teams) = (
        Receiver::start_tls(server.acceptor()).await,
        Receiver::start_tls(server.acceptor()).await,
    );
    assert!(slack.url("/").starts_with("https://"));
    let (store, writer) = open(&dir.path().join("state.redb"));
    let channels = chat_channels(&slack, &teams);
    let keys = enqueue(
        &writer,
        &channels,
        &degraded_event("payments-api"),
        &["sre-slack", "pay-teams"],
    )
    .await;
    let worker = Worker::start(
        &store,
        &writer,
        DeliveryConfig {
            outbox: fast_outbox(5),
            channels,
            net: net_trusting(&ca_file, ProxySettings::direct()),
        },
    );
    worker.handle.wake();
    let slack_requests = slack.wait_for(1).await;
    let teams_requests = teams.wait_for(1).await;
    eventually("the outbox drains", || store.outbox().unwrap().is_empty()).await;
    worker.stop().await;

    let slack_request = &slack_requests[0];
    assert_eq!(slack_request.path, format!("/services/{SECRET_PATH}"));
    assert_eq!(
        slack_request.header("idempotency-key"),
        Some(keys[0].as_str())
    );
    let payload = body_json(slack_request);
    assert!(
        payload["text"]
            .as_str()
            .unwrap()
            .contains("fell below Gold")
    );
    assert_eq!(payload["blocks"][0]["type"], "header");
    let payload = body_json(&teams_requests[0]);
    assert_eq!(payload["type"], "message");
    assert_eq!(
        payload["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    for key in &keys {
        assert!(store.outbox_sent(key).unwrap().is_some(), "{key} sent");
    }
    writer.shutdown().await.unwrap();
}

/// Wait until every queued entry has failed at least `attempts` times; return them.
async fn failed_attempts(store: &Store, attempts: u32) -> Vec<OutboxEntry> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let entries = store.outbox().unwrap();
        if !entries.is_empty() && entries.iter().all(|e| e.attempts >= attempts) {
            return entries;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "entries did not fail {attempts} times: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_foreign_ca_and_a_wrong_name_are_retried_errors_naming_the_channel_not_the_url() {
    let log = log_capture();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("readyd test CA (trusted)");
    let ca_file = ca.write_pem(dir.path(), "ca.pem");
    let foreign = TestCa::new("someone else's CA").issue(&["127.0.0.1"]);
    let misnamed = ca.issue(&["not-this-host.example"]);
    let (slack, teams) = (
        Receiver::start_tls(foreign.acceptor()).await,
        Receiver::start_tls(misnamed.acceptor()).await,
    );
    let (store, writer) = open(&dir.path().join("state.redb"));
    let channels = chat_channels(&slack, &teams);
    enqueue(
        &writer,
        &channels,
        &degraded_event("payments-ledger"),
        &["sre-slack", "pay-teams"],
    )
    .await;
    let worker = Worker::start(
        &store,
        &writer,
        DeliveryConfig {
            outbox: fast_outbox(1_000),
            channels,
            net: net_trusting(&ca_file, ProxySettings::direct()),
        },
    );
    worker.handle.wake();
    let entries = failed_attempts(&store, 2).await;
    worker.stop().await;

    assert!(
        store.dead_letters().unwrap().is_empty(),
        "retried, not dead-lettered"
    );
    assert!(slack.connections() >= 2 && teams.connections() >= 2);
    assert!(
        slack.requests().is_empty() && teams.requests().is_empty(),
        "no request after a bad handshake"
    );
    for entry in &entries {
        let error = entry
            .last_error
            .as_deref()
            .expect("the attempt's error is kept");
        assert!(!error.contains("SECRET"), "the URL's path leaked: {error}");
        match entry.message.channel.as_str() {
            "sre-slack" => {
                assert!(error.starts_with("channel `sre-slack`: "), "{error}");
                assert!(error.contains("unknown CA"), "{error}");
                assert!(
                    error.contains(&slack.addr().to_string()),
                    "names the host: {error}"
                );
            }
            "pay-teams" => {
                assert!(error.starts_with("channel `pay-teams`: "), "{error}");
                assert!(error.contains("name mismatch"), "{error}");
            }
            other => panic!("unexpected channel {other}"),
        }
    }
    let logged = log.lines_containing("sre-slack");
    assert!(
        logged
            .iter()
            .any(|l| l.contains("will be retried") && l.contains("unknown CA")),
        "{logged:?}"
    );
    assert!(
        !log.contents().contains(SECRET_PATH),
        "the URL's path is in the log"
    );
    writer.shutdown().await.unwrap();
}

#[tokio::test]
async fn https_delivery_goes_through_the_connect_proxy_of_the_settings() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("readyd test CA (proxy)");
    let ca_file = ca.write_pem(dir.path(), "ca.pem");
    let server = ca.issue(&["127.0.0.1"]);
    let (slack, teams) = (
        Receiver::start_tls(server.acceptor()).await,
        Receiver::start_tls(server.acceptor()).await,
    );
    let proxy = ConnectProxy::start().await;
    let settings = ProxySettings {
        https: Some(ProxyUrl::parse(&proxy.url()).unwrap()),
        http: None,
        no_proxy: NoProxy::parse("example.internal"),
    };
    let (store, writer) = open(&dir.path().join("state.redb"));
    let channels = chat_channels(&slack, &teams);
    enqueue(
        &writer,
        &channels,
        &degraded_event("payments-api"),
        &["sre-slack"],
    )
    .await;
    let worker = Worker::start(
        &store,
        &writer,
        DeliveryConfig {
            outbox: fast_outbox(5),
            channels,
            net: net_trusting(&ca_file, settings),
        },
    );
    worker.handle.wake();
    slack.wait_for(1).await;
    eventually("the outbox drains", || store.outbox().unwrap().is_empty()).await;
    worker.stop().await;
    assert_eq!(
        proxy.requests(),
        vec![format!("CONNECT {} HTTP/1.1", slack.addr())],
        "one tunnel, to the receiver"
    );
    writer.shutdown().await.unwrap();
}

/// Load the shipped `http-json` data source with `net`, fetching from `url_base`.
async fn http_json(
    host: &PluginHost,
    dir: &Path,
    receiver: &Receiver,
) -> std::sync::Arc<readyd::plugin::Plugin> {
    let text = format!(
        "name = \"oncall-tls\"\nkind = \"data-source\"\nwasm = \"{}\"\ntimeout_ms = 10000\n\
         [capabilities]\nhttp = [\"{}\"]\n\
         [config]\nurl = \"{}\"\nfacts = {{ oncall_count = \"/data/count\" }}\n",
        artifacts::HTTP_JSON,
        receiver.addr(),
        receiver.url("/oncall/{identifier}"),
    );
    let path = readyd_tests::write_file(dir, "oncall-tls.toml", text);
    let manifest = Manifest::from_file(&path).expect("valid manifest");
    host.load(manifest).await.expect("http-json loads")
}

#[tokio::test]
async fn the_http_json_plugin_fetches_over_https_trusting_tls_ca_file_and_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("readyd test CA (plugins)");
    let ca_file = ca.write_pem(dir.path(), "ca.pem");
    let receiver = Receiver::serving_tls(
        CannedResponse::json(&json!({"data": {"count": 3}})),
        ca.issue(&["127.0.0.1"]).acceptor(),
    )
    .await;
    let host_with = |net: Net| {
        PluginHost::new(HostConfig {
            max_instances: 4,
            max_memory_mb: 256,
            net,
            ..HostConfig::default()
        })
        .expect("plugin host")
    };

    // Trusted through tls_ca_file, and through the proxy: the allow list names only the
    // target, so the proxy is never what the grant is matched against.
    let proxy = ConnectProxy::start().await;
    let settings = ProxySettings {
        https: Some(ProxyUrl::parse(&proxy.url()).unwrap()),
        ..ProxySettings::direct()
    };
    let host = host_with(net_trusting(&ca_file, settings));
    let plugin = http_json(&host, dir.path(), &receiver).await;
    let facts = plugin
        .collect(&[entity("payments-api")])
        .await
        .expect("collects");
    assert_eq!(facts.len(), 1);
    assert_eq!(facts[0].1["found"], true);
    assert_eq!(facts[0].1["oncall_count"], 3);
    assert_eq!(receiver.requests()[0].path, "/oncall/payments-api");
    assert_eq!(
        proxy.requests(),
        vec![format!("CONNECT {} HTTP/1.1", receiver.addr())]
    );

    // Without the CA file the same fetch fails: verification is not switched off.
    let before = receiver.requests().len();
    let host = host_with(Net::system());
    let plugin = http_json(&host, dir.path(), &receiver).await;
    assert!(plugin.collect(&[entity("payments-api")]).await.is_err());
    assert_eq!(
        receiver.requests().len(),
        before,
        "no request after an untrusted handshake"
    );
}

/// GET `url` through `net` with `token`; (status, body).
async fn https_get(net: &Net, url: &str, token: &str) -> (u16, serde_json::Value) {
    let request = http::Request::get(url)
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = net
        .client()
        .request(request)
        .await
        .expect("the daemon answers");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

#[tokio::test]
async fn the_daemon_serves_https_picks_up_a_rotated_certificate_and_readyd_gate_asks_it() {
    let tls_dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("readyd test CA (serving)");
    let ca_file = ca.write_pem(tls_dir.path(), "ca.pem");
    let first = ca.issue(&["127.0.0.1", "localhost"]);
    let (cert, key) = first.write(tls_dir.path(), "tls");
    let daemon = readyd_tests::start_daemon(|c| {
        c.tls_cert_file = Some(cert.clone());
        c.tls_key_file = Some(key.clone());
    })
    .await;
    eventually("the daemon is ready", || daemon.engine.is_ready()).await;
    let url = format!("https://{}", daemon.addr);
    let net = net_trusting(&ca_file, ProxySettings::direct());
    assert_eq!(
        presented_certificate(daemon.addr, &ca, "localhost").await,
        first.cert_der()
    );
    let (status, body) = https_get(&net, &format!("{url}/v1/status"), token_for("viewer")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tls"]["reloads"], 0, "{body}");

    // The real binary, as CI runs it: 0 allowed, 1 refused, 2 when it cannot trust the daemon.
    let bin = readyd_bin();
    let gate = |id: &str, ca: Option<&Path>, proxy: Option<&str>| {
        let mut command = tokio::process::Command::new(&bin);
        command
            .args(["gate", id, "--url", &url, "--token", token_for("ci")])
            .env_remove("READYD_URL")
            .env_remove("READYD_TOKEN")
            .env_remove("READYD_CA_FILE");
        for var in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "NO_PROXY",
            "no_proxy",
        ] {
            command.env_remove(var);
        }
        if let Some(ca) = ca {
            command.arg("--ca-file").arg(ca);
        }
        if let Some(proxy) = proxy {
            command.env("HTTPS_PROXY", proxy);
        }
        async move { command.output().await.expect("run readyd gate") }
    };
    let allowed = gate("payments-api", Some(&ca_file), None).await;
    assert_eq!(allowed.status.code(), Some(0), "{allowed:?}");
    assert!(String::from_utf8_lossy(&allowed.stdout).contains("payments-api: allowed"));
    let refused = gate("identity-api", Some(&ca_file), None).await;
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let untrusted = gate("payments-api", None, None).await;
    assert_eq!(untrusted.status.code(), Some(2), "{untrusted:?}");
    assert!(
        String::from_utf8_lossy(&untrusted.stderr).contains("unknown CA"),
        "{untrusted:?}"
    );
    // HTTPS_PROXY in the binary's environment: the question goes through the tunnel.
    let proxy = ConnectProxy::start().await;
    let proxied = gate("payments-api", Some(&ca_file), Some(&proxy.url())).await;
    assert_eq!(proxied.status.code(), Some(0), "{proxied:?}");
    assert_eq!(
        proxy.requests(),
        vec![format!("CONNECT {} HTTP/1.1", daemon.addr)]
    );

    // cert-manager renews: a new certificate and key renamed over the files. The next
    // connection gets it, without a restart.
    let second = ca.issue(&["127.0.0.1", "localhost"]);
    second.write(tls_dir.path(), "tls");
    assert_eq!(
        presented_certificate(daemon.addr, &ca, "localhost").await,
        second.cert_der()
    );
    let (_, body) = https_get(&net, &format!("{url}/v1/status"), token_for("viewer")).await;
    assert_eq!(body["tls"]["reloads"], 1, "{body}");

    // A broken renewal keeps the working pair and says why.
    replace_file(
        &cert,
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    );
    assert_eq!(
        presented_certificate(daemon.addr, &ca, "localhost").await,
        second.cert_der()
    );
    let (_, body) = https_get(&net, &format!("{url}/v1/status"), token_for("viewer")).await;
    assert!(
        body["tls"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("tls_cert_file"),
        "{body}"
    );
    let allowed = gate("payments-api", Some(&ca_file), None).await;
    assert_eq!(allowed.status.code(), Some(0), "{allowed:?}");
    daemon.stop().await.unwrap();
}

/// A dead letter as readyd stored it before URLs were redacted: the reason holds the full URL.
fn store_an_old_dead_letter(data: &Path, url: &str) {
    let (data, url) = (data.to_owned(), url.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            std::fs::create_dir_all(data.parent().unwrap()).unwrap();
            let store = Store::open(&data, StoreOptions::default()).unwrap();
            let writer = Writer::spawn(store.clone());
            let mut batch = WriteBatch::new();
            let event = degraded_event("payments-api");
            batch.enqueue_outbox(&outbox_message(
                &event,
                "sre",
                ChannelKind::Slack,
                Utc::now(),
            ));
            writer.commit(batch, Durability::Immediate).await.unwrap();
            let seq = store.outbox().unwrap()[0].seq;
            let mut batch = WriteBatch::new();
            batch.dead_letter(
                seq,
                &format!(
                    "channel `sre`: {url} is https, and this build of readyd has no TLS client"
                ),
                Utc::now(),
            );
            writer.commit(batch, Durability::Immediate).await.unwrap();
            writer.shutdown().await.unwrap();
        });
    })
    .join()
    .expect("the old dead letter is stored");
}

#[tokio::test]
async fn chat_urls_never_appear_in_dead_letters_status_metrics_or_the_log() {
    let log = log_capture();
    // Nothing listens there: every attempt is refused, and one attempt is all it gets.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let teams_url = format!("https://{closed}/webhookb2/{SECRET_PATH}");
    // localhost: resolved from /etc/hosts, never by a DNS server.
    let slack_url = format!("https://localhost:{}/services/{SECRET_PATH}", closed.port());
    let daemon = readyd_tests::start_daemon_in(&readyd_tests::fixture_dir("automation"), |c| {
        store_an_old_dead_letter(&c.data, &slack_url);
        for (name, kind, url) in [
            ("sre", ChannelKind::Slack, &slack_url),
            ("pay", ChannelKind::Teams, &teams_url),
        ] {
            c.channels.insert(
                name.into(),
                ChannelConfig {
                    kind,
                    url: url.clone(),
                    secret: None,
                    secret_env: None,
                },
            );
        }
        c.teams.insert(
            "payments".into(),
            readyd::config::TeamConfig {
                channel: Some("pay".into()),
            },
        );
        c.outbox = fast_outbox(1);
    })
    .await;
    eventually("the daemon is ready", || daemon.engine.is_ready()).await;
    let nudged = daemon
        .request(
            "POST",
            "/v1/entities/payments-api/nudge",
            Some(token_for("admin")),
            None,
        )
        .await;
    assert_eq!(nudged.status, 200, "{}", nudged.text());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let letters = loop {
        let letters = daemon
            .get("/v1/dead-letters", Some(token_for("viewer")))
            .await;
        assert_eq!(letters.status, 200);
        let list = letters.json();
        if list
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["channel"] == "pay")
        {
            break letters;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no dead letter for pay: {list}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let text = letters.text();
    assert!(
        !text.contains("SECRET"),
        "a URL's path is in /v1/dead-letters: {text}"
    );
    let list = letters.json();
    let reasons: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["channel"].as_str().unwrap().to_owned(),
                l["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let old = reasons
        .iter()
        .find(|(_, r)| r.contains("no TLS client"))
        .map(|(_, r)| r.clone())
        .expect("the old dead letter is listed");
    let shown = format!("https://localhost:{} is https", closed.port());
    assert!(old.contains(&shown), "{old}");
    let pay = reasons
        .iter()
        .find(|(c, _)| c == "pay")
        .map(|(_, r)| r.clone())
        .unwrap();
    assert!(
        pay.contains("channel `pay`") && pay.contains("refused"),
        "{pay}"
    );

    let status = daemon.get("/v1/status", Some(token_for("viewer"))).await;
    assert_eq!(status.status, 200);
    assert!(!status.text().contains("SECRET"), "{}", status.text());
    assert_eq!(
        status.json()["channels"]["sre"]["url"],
        format!("https://localhost:{}", closed.port())
    );
    let metrics = daemon.get("/metrics", None).await;
    assert!(!metrics.text().contains("SECRET"));
    let logged = log.lines_containing("channel=pay");
    assert!(!logged.is_empty(), "the failed delivery is logged");
    assert!(
        !log.contents().contains("SECRET"),
        "a URL's path is in the log"
    );
    daemon.stop().await.unwrap();
}
