//! Plugin manifests as the daemon reports them (security review findings): a `wasm` that is not
//! a WebAssembly component is refused as such without any of its bytes reaching `/v1/status`,
//! every failed manifest of a batch is listed with its own error, and `[plugins.policy]`
//! refuses a manifest that grants itself more (the demo's policy, `dirs = {"/host" = "/"}`).

use std::path::Path;

use readyd::clock::Clock;
use readyd_plugin_artifacts as artifacts;
use readyd_tests::{
    DemoOrg, copy_dir, fixture_dir, start_daemon_in, start_engine, temp_dir, token_for, write_file,
};
use serde_json::Value;

fn failures(status: &Value) -> Vec<(String, String)> {
    status["plugin_load_errors"]
        .as_array()
        .unwrap_or_else(|| panic!("plugin_load_errors is a list: {status}"))
        .iter()
        .map(|f| {
            let manifest = f["manifest"].as_str().unwrap();
            let name = Path::new(manifest).file_name().unwrap().to_str().unwrap();
            (name.to_owned(), f["error"].as_str().unwrap().to_owned())
        })
        .collect()
}

// Before: `/v1/status` showed only the batch's last error, and a manifest whose `wasm` was
// /etc/passwd had the file's first bytes quoted by wasmtime's parser ("actual=[0x72, 0x6f, ...]").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_every_failed_manifest_without_echoing_the_file() {
    let fixture = temp_dir();
    copy_dir(&fixture_dir("api"), fixture.path());
    let plugins = fixture.path().join("plugins");
    write_file(
        &plugins,
        "good.toml",
        format!(
            "name = \"good\"\nkind = \"check\"\nwasm = \"{}\"\n",
            artifacts::FIXTURE_NOOP_CHECK
        ),
    );
    write_file(
        &plugins,
        "passwd.toml",
        "name = \"passwd\"\nkind = \"check\"\nwasm = \"/etc/passwd\"\n",
    );
    write_file(&plugins, "notes.txt", "SECRET-LOOKING TEXT, not wasm\n");
    write_file(
        &plugins,
        "text.toml",
        "name = \"text\"\nkind = \"check\"\nwasm = \"notes.txt\"\n",
    );
    // The smallest valid core module: a module, not a component.
    write_file(&plugins, "core.wasm", b"\0asm\x01\0\0\0");
    write_file(
        &plugins,
        "core.toml",
        "name = \"core\"\nkind = \"check\"\nwasm = \"core.wasm\"\n",
    );
    write_file(
        &plugins,
        "badname.toml",
        "name = \"Bad Name\"\nkind = \"check\"\nwasm = \"core.wasm\"\n",
    );

    let daemon = start_daemon_in(fixture.path(), |_| {}).await;
    let reply = daemon.get("/v1/status", Some(token_for("viewer"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let text = reply.text();
    let status = reply.json();
    let mut failed = failures(&status);
    failed.sort();
    let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["badname.toml", "core.toml", "passwd.toml", "text.toml"],
        "{status}"
    );
    let error = |name: &str| &failed.iter().find(|(n, _)| n == name).unwrap().1;
    assert!(
        error("badname.toml").contains("bad name `Bad Name`"),
        "{status}"
    );
    assert!(
        error("core.toml").contains("is not a WebAssembly component (a core WebAssembly module"),
        "{status}"
    );
    for name in ["passwd.toml", "text.toml"] {
        assert!(
            error(name).contains("is not a WebAssembly component (not WebAssembly at all)"),
            "{name}: {status}"
        );
    }
    assert!(error("passwd.toml").contains("/etc/passwd"), "{status}");
    // None of the files' bytes, in any spelling.
    let head: Vec<u8> = std::fs::read("/etc/passwd").unwrap()[..4].to_vec();
    let hex = head
        .iter()
        .map(|b| format!("0x{b:x}"))
        .collect::<Vec<_>>()
        .join(", ");
    for needle in [
        hex.as_str(),
        std::str::from_utf8(&head).unwrap(),
        "SECRET-LOOKING",
        "magic",
    ] {
        assert!(!text.contains(needle), "`{needle}` in {text}");
    }
    // The good one loaded beside them.
    let good = status["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "good")
        .unwrap_or_else(|| panic!("good is listed: {status}"));
    assert!(good["last_error"].is_null(), "{good}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_policy_refuses_a_manifest_granting_the_host_root() {
    let org = DemoOrg::new().await;
    write_file(
        &org.path().join("plugins"),
        "host-root.toml",
        format!(
            "name = \"host-root\"\nkind = \"data-source\"\nwasm = \"{}\"\n\
             [capabilities]\ndirs = {{ \"/host\" = \"/\" }}\n",
            artifacts::REPO_SCAN
        ),
    );
    let engine = start_engine(org.config(), Clock::system()).await;
    let status = engine.status();
    let failed = failures(&status);
    assert_eq!(failed.len(), 1, "{status}");
    let (file, error) = &failed[0];
    assert_eq!(file, "host-root.toml");
    assert!(
        error.contains("capabilities.dirs `/host` = / is not allowed by [plugins.policy] dirs = ["),
        "{error}"
    );
    assert!(error.contains("repos"), "{error}");
    // The demo's own plugins satisfy its policy: all five loaded; host-root is listed as
    // failed (a refused manifest still declares its plugin, so its rules are errors).
    let plugins = status["plugins"].as_array().unwrap();
    let host_root = plugins
        .iter()
        .find(|p| p["name"] == "host-root")
        .expect("host-root is listed");
    assert_eq!(host_root["state"]["state"], "failed", "{status}");
    assert!(host_root["version"].is_null(), "{status}");
    let mut loaded: Vec<&str> = plugins
        .iter()
        .filter(|p| p["state"]["state"] == "active")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    loaded.sort();
    assert_eq!(
        loaded,
        [
            "dependency-policy",
            "oncall",
            "prometheus",
            "repo-scan",
            "slo-budget"
        ],
        "{status}"
    );
    engine.shutdown().await;
}
