//! Process-wide Prometheus metrics: requests, evaluations, plugins, store, reloads, outbox.
//!
//! One [`Metrics`] value lives for the whole process ([`metrics()`]); every part records into it
//! and `GET /metrics` renders it in the Prometheus text format with `prometheus-client`.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of HTTP request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route pattern (`/v1/gate/{id}`), never the raw path (bounded cardinality).
    pub route: String,
    pub method: String,
    pub status: u16,
}

/// Labels naming a plugin.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub plugin: String,
    pub outcome: String,
}

/// Labels naming what was reloaded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `plugins`, `standards` or `catalog`.
    pub part: String,
    /// `ok` or `failed`.
    pub outcome: String,
}

/// Labels of outbox metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutboxLabels {
    /// `delivered`, `retried`, `dead_lettered`.
    pub outcome: String,
}

/// Every metric readyd exports.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_request_seconds: Family<RequestLabels, Histogram>,
    pub evaluations: Counter,
    pub rule_evaluations: Counter,
    pub evaluation_seconds: Histogram,
    pub level_changes: Counter,
    pub plugin_calls: Family<PluginLabels, Counter>,
    pub plugin_call_seconds: Family<PluginLabels, Histogram>,
    pub store_commits: Counter,
    pub store_commit_seconds: Histogram,
    pub reloads: Family<ReloadLabels, Counter>,
    /// Plugin loads that succeeded: read, hash, compile (or the cached artifact), contract
    /// check, pre-instantiation and the smoke test.
    pub plugin_load_seconds: Histogram,
    pub outbox: Family<OutboxLabels, Counter>,
    pub outbox_pending: Gauge,
    pub entities: Gauge,
    /// 1 while the standards in force are the stored last good set because the files were
    /// refused at start (README: fail closed), else 0.
    pub standards_serving_stored: Gauge,
    /// 1 once a standards set and the first evaluation pass are committed (`/readyz`), else 0.
    pub ready: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn seconds_histogram() -> Histogram {
    // 10 µs .. ~40 s
    Histogram::new(exponential_buckets(1e-5, 3.0, 14))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("readyd");
        let http_requests = Family::<RequestLabels, Counter>::default();
        let http_request_seconds = Family::<RequestLabels, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> _,
        );
        let evaluations = Counter::default();
        let rule_evaluations = Counter::default();
        let evaluation_seconds = seconds_histogram();
        let level_changes = Counter::default();
        let plugin_calls = Family::<PluginLabels, Counter>::default();
        let plugin_call_seconds =
            Family::<PluginLabels, Histogram>::new_with_constructor(seconds_histogram as fn() -> _);
        let store_commits = Counter::default();
        let store_commit_seconds = seconds_histogram();
        let reloads = Family::<ReloadLabels, Counter>::default();
        let plugin_load_seconds = seconds_histogram();
        let outbox = Family::<OutboxLabels, Counter>::default();
        let outbox_pending = Gauge::default();
        let entities = Gauge::default();
        let standards_serving_stored = Gauge::default();
        let ready = Gauge::default();
        registry.register(
            "http_requests",
            "HTTP requests served",
            http_requests.clone(),
        );
        registry.register(
            "http_request_seconds",
            "HTTP request latency",
            http_request_seconds.clone(),
        );
        registry.register(
            "plugin_load_seconds",
            "Duration of a successful plugin load (compile or cached artifact, checks, smoke test)",
            plugin_load_seconds.clone(),
        );
        registry.register(
            "evaluations",
            "Entity evaluations (one entity, every scorecard)",
            evaluations.clone(),
        );
        registry.register(
            "rule_evaluations",
            "Rule evaluations",
            rule_evaluations.clone(),
        );
        registry.register(
            "evaluation_pass_seconds",
            "Duration of an evaluation pass (plugin checks and the evaluator; the commit is store_commit_seconds)",
            evaluation_seconds.clone(),
        );
        registry.register(
            "level_changes",
            "Level changes recorded",
            level_changes.clone(),
        );
        registry.register(
            "plugin_calls",
            "Plugin calls by outcome",
            plugin_calls.clone(),
        );
        registry.register(
            "plugin_call_seconds",
            "Plugin call latency",
            plugin_call_seconds.clone(),
        );
        registry.register(
            "store_commits",
            "redb write transactions",
            store_commits.clone(),
        );
        registry.register(
            "store_commit_seconds",
            "redb commit latency",
            store_commit_seconds.clone(),
        );
        registry.register(
            "reloads",
            "Hot reloads by part and outcome",
            reloads.clone(),
        );
        registry.register(
            "outbox_notifications",
            "Notifications by outcome",
            outbox.clone(),
        );
        registry.register(
            "outbox_pending",
            "Notifications waiting for delivery",
            outbox_pending.clone(),
        );
        registry.register("entities", "Entities in the catalog", entities.clone());
        registry.register(
            "standards_serving_stored",
            "1 while the stored last good standards set is served because the standards files were refused",
            standards_serving_stored.clone(),
        );
        registry.register(
            "ready",
            "1 once a standards set and the first evaluation are committed (/readyz answers 200)",
            ready.clone(),
        );
        Metrics {
            registry,
            http_requests,
            http_request_seconds,
            evaluations,
            rule_evaluations,
            evaluation_seconds,
            level_changes,
            plugin_calls,
            plugin_call_seconds,
            store_commits,
            store_commit_seconds,
            reloads,
            plugin_load_seconds,
            outbox,
            outbox_pending,
            entities,
            standards_serving_stored,
            ready,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Count a reload.
    pub fn reload(&self, part: &str, ok: bool) {
        self.reloads
            .get_or_create(&ReloadLabels {
                part: part.to_owned(),
                outcome: if ok { "ok" } else { "failed" }.to_owned(),
            })
            .inc();
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = metrics();
        m.evaluations.inc();
        m.reload("standards", false);
        let text = m.render();
        assert!(text.contains("readyd_evaluations_total"), "{text}");
        assert!(text.contains("readyd_reloads_total{part=\"standards\",outcome=\"failed\"}"));
        assert!(text.ends_with("# EOF\n"));
    }
}
