//! The organisation the crash test runs the daemon on, written into a scratch directory: a
//! catalog of [`ENTITIES`] services of two teams across the three tiers, one scorecard whose
//! rules read the catalog (`team`, `runbook`) and the facts of one data source, the tier policy,
//! the real `http-json` plugin reading the test's fact source every second, and `readyd.toml`.
//!
//! What it exercises: a tier-1/2 service below Silver is degraded (alert to `sre`, tasks); the
//! Gold rule `oncall-depth` is required by no tier, so its changes are derived data only (the
//! store may commit them with deferred durability, which a kill can lose and the next evaluation
//! must recompute).

use std::path::{Path, PathBuf};

/// Services in the catalog.
pub const ENTITIES: usize = 12;
/// The scorecard.
pub const SCORECARD: &str = "readiness";
/// Rules an exemption may name (`None`: the whole scorecard).
pub const EXEMPTABLE: [Option<&str>; 4] = [
    Some("has-runbook"),
    Some("has-oncall"),
    Some("oncall-depth"),
    None,
];
/// Notifications the daemon may have in flight at once (`outbox.concurrency`): the most a kill
/// can catch between a receiver's 2xx and the commit that records it.
pub const DELIVERY_CONCURRENCY: usize = 4;

pub fn entity_id(i: usize) -> String {
    format!("svc-{i:02}")
}

pub fn team_of(i: usize) -> &'static str {
    if i.is_multiple_of(2) {
        "payments"
    } else {
        "identity"
    }
}

/// The tier written in the catalog.
pub fn catalog_tier(i: usize) -> u8 {
    (i % 3) as u8 + 1
}

/// The owner token of a team.
pub fn owner_token(team: &str) -> &'static str {
    readyd_tests::token_for(&format!("owner:{team}"))
}

/// The catalog file with the given runbooks (`runbooks[i]`: entity `i` has one).
pub fn catalog_yaml(runbooks: &[bool]) -> String {
    let mut out = String::from("# Written by the crash test.\n");
    for (i, runbook) in runbooks.iter().enumerate() {
        let id = entity_id(i);
        out.push_str(&format!(
            "- identifier: {id}\n  kind: service\n  title: Service {i:02}\n  team: {}\n  tier: {}\n",
            team_of(i),
            catalog_tier(i)
        ));
        if *runbook {
            out.push_str(&format!(
                "  properties:\n    runbook: https://wiki.example.com/{id}\n"
            ));
        }
    }
    out
}

/// Replace `catalog/org.yaml` in one step (write aside, rename), so that the daemon never reads
/// half a file.
pub fn write_catalog(root: &Path, runbooks: &[bool]) {
    let aside = root.join("org.yaml.next");
    std::fs::write(&aside, catalog_yaml(runbooks)).expect("write the catalog");
    std::fs::rename(&aside, root.join("catalog/org.yaml")).expect("replace the catalog");
}

const SCORECARD_YAML: &str = "\
identifier: readiness
title: Readiness
levels:
  - { title: Basic }
  - { title: Bronze }
  - { title: Silver }
  - { title: Gold }
rules:
  - identifier: has-owner
    title: Has an owning team
    level: Bronze
    query:
      combinator: and
      conditions:
        - { property: $team, operator: isNotEmpty }
  - identifier: has-runbook
    title: Runbook published
    level: Silver
    query:
      combinator: and
      conditions:
        - { property: runbook, operator: isNotEmpty }
  - identifier: has-oncall
    title: Someone is on call
    level: Silver
    query:
      combinator: and
      conditions:
        - { property: facts.oncall.oncall_count, operator: \">\", value: 0 }
  - identifier: oncall-depth
    title: A second on-call
    level: Gold
    query:
      combinator: and
      conditions:
        - { property: facts.oncall.oncall_count, operator: \">\", value: 1 }
";

const TIERS_YAML: &str = "\
tiers:
  1: { name: Critical, require: { readiness: Silver }, task_due_days: 7, alert: [sre] }
  2: { name: Major, require: { readiness: Silver }, task_due_days: 14, alert: [sre] }
  3: { name: Minor, require: { readiness: Bronze }, task_due_days: 30 }
untiered: { require: { readiness: Bronze } }
";

/// Events routed to the `tracker` webhook (besides the tier alerts to `sre` and the nudges to
/// the team channel).
pub const TRACKED: [&str; 9] = [
    "exemption.requested",
    "exemption.approved",
    "exemption.denied",
    "exemption.revoked",
    "tier_request.decided",
    "entity.degraded",
    "entity.recovered",
    "task.created",
    "task.done",
];

pub const WEBHOOK_SECRET: &str = "crash-test-secret";

/// Write the organisation into `root` (catalog with `runbooks`, standards, the plugin reading
/// facts from `facts_at`) and its `readyd.toml`. `hooks`: the receiver's base URL, or `None`
/// for a daemon without channels and routes. Returns the configuration file.
pub fn write(root: &Path, runbooks: &[bool], facts_at: &str, hooks: Option<&str>) -> PathBuf {
    for sub in ["catalog", "standards/scorecards", "plugins", "state"] {
        std::fs::create_dir_all(root.join(sub)).expect("create the organisation's folders");
    }
    write_catalog(root, runbooks);
    std::fs::write(
        root.join("standards/scorecards/readiness.yaml"),
        SCORECARD_YAML,
    )
    .expect("write the scorecard");
    std::fs::write(root.join("standards/tiers.yaml"), TIERS_YAML).expect("write tiers.yaml");
    let wasm = Path::new(readyd_plugin_artifacts::PLUGINS_DIR).join("http_json.wasm");
    assert!(wasm.is_file(), "{} is missing", wasm.display());
    let host = facts_at.trim_start_matches("http://");
    std::fs::write(
        root.join("plugins/oncall.toml"),
        format!(
            "name = \"oncall\"\n\
             kind = \"data-source\"\n\
             wasm = \"{}\"\n\
             interval = \"1s\"\n\
             timeout_ms = 5000\n\
             memory_mb = 32\n\
             [capabilities]\n\
             http = [\"{host}\"]\n\
             [config]\n\
             url = \"{facts_at}/facts/{{identifier}}\"\n\
             facts = {{ oncall_count = \"/data/count\" }}\n",
            wasm.display()
        ),
    )
    .expect("write the plugin manifest");
    let mut config = format!(
        "# Written by the crash test.\n\
         listen = \"127.0.0.1:0\"\n\
         data = \"state/readyd.redb\"\n\
         cache_dir = \"{}\"\n\
         catalog_dir = \"catalog\"\n\
         standards_dir = \"standards\"\n\
         plugins_dir = \"plugins\"\n\
         public_url = \"http://readyd.test\"\n\
         anonymous_read = false\n\
         log_level = \"readyd=info\"\n\
         [watch]\n\
         enabled = false\n\
         [outbox]\n\
         max_attempts = 1000000\n\
         max_age_secs = 86400\n\
         backoff_initial_ms = 5\n\
         backoff_max_ms = 50\n\
         timeout_ms = 10000\n\
         concurrency = {DELIVERY_CONCURRENCY}\n",
        readyd_tests::shared_plugin_cache().display()
    );
    for token in readyd_tests::TOKENS {
        config.push_str(&format!(
            "[[tokens]]\nname = \"{}\"\nrole = \"{}\"\n",
            token.name, token.role
        ));
        match token.sha256 {
            Some(digest) => config.push_str(&format!("sha256 = \"{digest}\"\n")),
            None => config.push_str(&format!("token = \"{}\"\n", token.secret)),
        }
    }
    if let Some(hooks) = hooks {
        config.push_str(&format!(
            "[channels.tracker]\ntype = \"webhook\"\nurl = \"{hooks}/hooks/tracker\"\nsecret = \"{WEBHOOK_SECRET}\"\n\
             [channels.sre]\ntype = \"slack\"\nurl = \"{hooks}/hooks/sre\"\n\
             [channels.team]\ntype = \"webhook\"\nurl = \"{hooks}/hooks/team\"\n\
             [teams.payments]\nchannel = \"team\"\n\
             [teams.identity]\nchannel = \"team\"\n\
             [[routes]]\nevents = [{}]\nchannels = [\"tracker\"]\n",
            TRACKED
                .iter()
                .map(|e| format!("\"{e}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let file = root.join("readyd.toml");
    std::fs::write(&file, config).expect("write readyd.toml");
    file
}
