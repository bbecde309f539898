//! The organisation the reload tests run on, and the files they swap into it.
//!
//! Six services `svc-0` … `svc-5` of team `core`, tier 2, with a numeric `coverage` property
//! (5, 15, …, 55). Scorecard `quality` has one query rule, `coverage >= threshold`, whose
//! threshold decides which services reach `Covered` (and tier 2 requires `Covered`, so the
//! deploy gate follows too). Scorecard `checks` has one rule per check plugin named when the
//! organisation is built. Every check plugin is the `noop-check` fixture with a `marker` in its
//! `[config]` that the plugin appends to its message, so a rule's message says which build and
//! which manifest answered it.
//!
//! Files are put in place the way the daemon asks writers to: written under a `.tmp` name (which
//! the watcher ignores), then renamed over the live name.

use std::path::Path;

use readyd_plugin_artifacts as artifacts;
use sha2::Digest;

/// Identifiers of the organisation's services, in order.
pub const SERVICES: [&str; 6] = ["svc-0", "svc-1", "svc-2", "svc-3", "svc-4", "svc-5"];

/// The `coverage` property of `SERVICES[i]`.
pub fn coverage(i: usize) -> u64 {
    5 + 10 * i as u64
}

/// The services at `Covered` on `quality` when its threshold is `threshold`.
pub fn covered(threshold: u64) -> Vec<&'static str> {
    SERVICES
        .iter()
        .enumerate()
        .filter(|(i, _)| coverage(*i) >= threshold)
        .map(|(_, s)| *s)
        .collect()
}

/// Write `name.tmp` in `dir`, then rename it to `name`: the atomic replace writers should use.
pub fn put(dir: &Path, name: &str, contents: impl AsRef<[u8]>) {
    let target = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, contents).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    std::fs::rename(&tmp, &target)
        .unwrap_or_else(|e| panic!("rename into {}: {e}", target.display()));
}

/// The catalog: the six services.
pub fn catalog() -> String {
    let mut text = String::from("# The reload tests' services.\n");
    for (i, id) in SERVICES.iter().enumerate() {
        text.push_str(&format!(
            "- identifier: {id}\n  kind: service\n  title: Service {i}\n  team: core\n  tier: 2\n  properties: {{ coverage: {} }}\n",
            coverage(i)
        ));
    }
    text
}

/// The tier policy: tier 2 needs `Covered` on `quality`.
pub fn tiers() -> &'static str {
    "tiers:\n  1: { name: Critical, require: { quality: Covered } }\n  2: { name: Major, require: { quality: Covered } }\n  3: { name: Minor, require: { quality: Basic } }\nuntiered: { require: { quality: Basic } }\n"
}

/// A good `quality` scorecard: title `Quality <tag>`, rule `coverage >= threshold`.
pub fn quality(tag: &str, threshold: u64) -> String {
    format!(
        "identifier: quality\ntitle: Quality {tag}\nlevels:\n  - {{ title: Basic }}\n  - {{ title: Covered }}\nrules:\n  - identifier: coverage\n    title: Coverage at least {threshold}\n    level: Covered\n    query: {{ combinator: and, conditions: [ {{ property: coverage, operator: \">=\", value: {threshold} }} ] }}\n"
    )
}

/// A broken `quality` scorecard (the `n`th kind of breakage), and a fragment its reported
/// error must contain besides the file name.
pub fn broken_quality(n: usize) -> (String, &'static str) {
    let head = "identifier: quality\ntitle: Quality broken\nlevels:\n  - { title: Basic }\n  - { title: Covered }\nrules:\n";
    let rule = |level: &str, query: &str| {
        format!("  - identifier: coverage\n    title: Coverage\n    level: {level}\n    {query}\n")
    };
    let good_query = "query: { combinator: and, conditions: [ { property: coverage, operator: \">=\", value: 1 } ] }";
    match n % 10 {
        // An operator that does not exist.
        0 => (
            format!(
                "{head}{}",
                rule(
                    "Covered",
                    "query: { combinator: and, conditions: [ { property: coverage, operator: looksLike, value: 1 } ] }"
                )
            ),
            "looksLike",
        ),
        // Not YAML at all.
        1 => (
            format!("{head}  - identifier: coverage\n    title: \"unclosed\n    level: [Covered\n"),
            "end of stream",
        ),
        // A level the scorecard does not have.
        2 => (
            format!("{head}{}", rule("Platinum", good_query)),
            "Platinum",
        ),
        // A check plugin that does not exist.
        3 => (
            format!(
                "{head}{}",
                rule("Covered", "check: { plugin: no-such-plugin, params: {} }")
            ),
            "no-such-plugin",
        ),
        // A good file cut in the middle, as a writer that died half way leaves it.
        4 => {
            let good = quality("cut", 30);
            let cut = good.find("conditions: [").expect("a query") + 18;
            (good[..cut].to_owned(), "unknown field")
        }
        // Two rules with one identifier.
        5 => (
            format!(
                "{head}{}{}",
                rule("Covered", good_query),
                rule("Covered", good_query)
            ),
            "duplicate rule identifier",
        ),
        // No levels.
        6 => (
            format!(
                "identifier: quality\ntitle: Quality broken\nrules:\n{}",
                rule("Covered", good_query)
            ),
            "levels",
        ),
        // An empty file (created, never written).
        7 => (String::new(), "identifier"),
        // A key the format does not have.
        8 => (
            format!("{head}{}    colour: red\n", rule("Covered", good_query)),
            "colour",
        ),
        // A value of the wrong type.
        _ => (
            format!("{head}{}    due_days: soon\n", rule("Covered", good_query)),
            "due_days",
        ),
    }
}

/// The `checks` scorecard: rule `<plugin>` checked by each named plugin, all at level
/// `Checked`, plus a query rule that needs no plugin.
pub fn checks(plugins: &[&str]) -> String {
    let mut text = String::from(
        "identifier: checks\ntitle: Plugin checks\nlevels:\n  - { title: Unchecked }\n  - { title: Checked }\nrules:\n  - identifier: owned\n    title: Has an owning team\n    level: Checked\n    query: { combinator: and, conditions: [ { property: $team, operator: isNotEmpty } ] }\n",
    );
    for plugin in plugins {
        text.push_str(&format!(
            "  - identifier: {plugin}\n    title: Checked by {plugin}\n    level: Checked\n    check: {{ plugin: {plugin}, params: {{ message: checked }} }}\n"
        ));
    }
    text
}

/// A check plugin's manifest: `<name>.wasm` next to it, the given marker and call budget.
pub fn manifest(name: &str, marker: &str, timeout_ms: u64) -> String {
    format!(
        "name = \"{name}\"\nkind = \"check\"\nwasm = \"{name}.wasm\"\ntimeout_ms = {timeout_ms}\nmemory_mb = 16\n\n[config]\nmarker = \"{marker}\"\n"
    )
}

/// The bytes of a compiled fixture.
pub fn wasm(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// The `noop-check` component made distinct by a custom section carrying `tag`: another
/// build of the same plugin, with its own hash (so its own version and compilation).
pub fn noop_build(tag: &str) -> Vec<u8> {
    with_custom_section(&wasm(artifacts::FIXTURE_NOOP_CHECK), tag)
}

/// `component` with a custom section named `readyd-test-build` holding `payload` appended
/// (custom sections may appear anywhere in a component and change nothing it does).
pub fn with_custom_section(component: &[u8], payload: &str) -> Vec<u8> {
    let name = b"readyd-test-build";
    let mut content = leb128(name.len());
    content.extend_from_slice(name);
    content.extend_from_slice(payload.as_bytes());
    let mut out = component.to_vec();
    out.push(0);
    out.extend(leb128(content.len()));
    out.extend(content);
    out
}

fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// The version readyd shows for a component: the first 12 hex digits of its SHA-256.
pub fn version_of(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))[..12].to_owned()
}

/// Lay out an organisation in `dir`: catalog, tiers, `quality` at `threshold`, `checks` over
/// `plugins` (each a noop build tagged and marked `<name>-0`, budget 1 s).
pub fn lay_out(dir: &Path, threshold: u64, plugins: &[&str]) {
    for sub in ["catalog", "standards/scorecards", "plugins"] {
        std::fs::create_dir_all(dir.join(sub)).expect("create organisation folders");
    }
    std::fs::write(dir.join("catalog/org.yaml"), catalog()).expect("write catalog");
    std::fs::write(dir.join("standards/tiers.yaml"), tiers()).expect("write tiers");
    std::fs::write(
        dir.join("standards/scorecards/quality.yaml"),
        quality("v0", threshold),
    )
    .expect("write quality");
    std::fs::write(
        dir.join("standards/scorecards/checks.yaml"),
        checks(plugins),
    )
    .expect("write checks");
    for name in plugins {
        let marker = format!("{name}-0");
        std::fs::write(
            dir.join(format!("plugins/{name}.wasm")),
            noop_build(&marker),
        )
        .expect("write wasm");
        std::fs::write(
            dir.join(format!("plugins/{name}.toml")),
            manifest(name, &marker, 1000),
        )
        .expect("write manifest");
    }
}
