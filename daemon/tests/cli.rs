//! The `readyd` binary itself, run as a user runs it.
//!
//! Besides what it checks, this test has a second job: because the `readyd` package has an
//! integration test, `cargo test --workspace` builds `target/<profile>/readyd` with the same
//! features as every other test target. `readyd_tests::readyd_bin()` relies on that instead of
//! running a `cargo build -p readyd` whose different feature set would rebuild wasmtime.

use std::path::Path;
use std::process::Command;

fn readyd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_readyd"))
}

fn examples() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))
}

#[test]
fn version_names_the_binary() {
    let output = readyd().arg("--version").output().expect("run readyd");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("readyd "), "{stdout}");
}

#[test]
fn validate_accepts_the_example_organisation_and_refuses_a_broken_scorecard() {
    let ex = examples();
    let ok = readyd()
        .arg("validate")
        .arg("--standards")
        .arg(ex.join("standards"))
        .arg("--catalog")
        .arg(ex.join("catalog"))
        .arg("--plugins")
        .arg(ex.join("plugins"))
        .output()
        .expect("run readyd validate");
    assert!(ok.status.success(), "{ok:?}");

    let dir = tempfile::tempdir().expect("temporary directory");
    let scorecards = dir.path().join("scorecards");
    std::fs::create_dir_all(&scorecards).unwrap();
    std::fs::write(
        scorecards.join("broken.yaml"),
        "identifier: broken\ntitle: Broken\nlevels:\n  - title: Basic\nrules:\n  - identifier: r1\n    \
         level: Basic\n    query:\n      combinator: and\n      conditions:\n        - property: $team\n          \
         operator: resemblesVaguely\n",
    )
    .unwrap();
    let bad = readyd()
        .arg("validate")
        .arg("--standards")
        .arg(dir.path())
        .output()
        .expect("run readyd validate");
    assert!(!bad.status.success(), "{bad:?}");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(said.contains("broken.yaml"), "{said}");
    assert!(said.contains("resemblesVaguely"), "{said}");
}

// ---- shared by the tests below

/// Bound on waits for the daemon (readiness, its first line): generous for a loaded machine;
/// reaching it is a failure, not a measurement.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn said(output: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A plugins directory with one manifest per `(name, kind, component)`.
fn plugins_dir(plugins: &[(&str, &str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    for (name, kind, wasm) in plugins {
        std::fs::write(
            dir.path().join(format!("{name}.toml")),
            format!("name = \"{name}\"\nkind = \"{kind}\"\nwasm = \"{wasm}\"\n"),
        )
        .expect("write manifest");
    }
    dir
}

/// A copy of `examples/` whose plugin manifests point at the components this build compiled,
/// whose stand-in and every URL to it use `stand_in_port`, and whose compiled-plugin cache is
/// the test run's shared one.
fn example_org(stand_in_port: u16) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    copy_dir(examples(), dir.path());
    let _ = std::fs::remove_dir_all(dir.path().join(".readyd"));
    let port =
        |text: String| text.replace("127.0.0.1:18090", &format!("127.0.0.1:{stand_in_port}"));
    for entry in std::fs::read_dir(dir.path().join("plugins")).expect("plugins") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("manifest");
        let text: Vec<String> = text
            .lines()
            .map(|line| match line.strip_prefix("wasm = \"") {
                Some(rest) => {
                    let file = Path::new(rest.trim_end_matches('"')).file_name().unwrap();
                    let wasm = Path::new(readyd_plugin_artifacts::PLUGINS_DIR).join(file);
                    format!("wasm = \"{}\"", wasm.display())
                }
                None => line.to_owned(),
            })
            .collect();
        std::fs::write(&path, port(text.join("\n") + "\n")).expect("rewrite manifest");
    }
    let config_file = dir.path().join("readyd.toml");
    let config = std::fs::read_to_string(&config_file).expect("config");
    let cache = workspace().join("target/test-plugin-cache");
    let config = port(config).replace(
        "cache_dir = \".readyd/cache\"",
        &format!("cache_dir = \"{}\"", cache.display()),
    );
    std::fs::write(&config_file, config).expect("write config");
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

fn free_port() -> u16 {
    // Bound and released: another process could take it in between, which would fail the
    // test loudly (the stand-in cannot bind), never pass it wrongly.
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A daemon process that is killed when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the daemon's stdout until the dashboard line and returns `127.0.0.1:<port>`.
fn wait_for_address(child: &mut std::process::Child) -> String {
    use std::io::BufRead as _;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(rest) = line.trim().strip_prefix("dashboard: http://") {
                let _ = tx.send(rest.trim_end_matches('/').to_owned());
            }
        }
    });
    rx.recv_timeout(PATIENCE)
        .expect("the daemon prints its dashboard address")
}

// ---- issue 17, item 7: the newcomer's stumbles

/// The shell commands of README.md's demo section, in order: every line of its `sh` blocks that
/// is neither empty nor a comment.
fn readme_demo_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README.md");
    let start = readme
        .find("\n## The demo\n")
        .expect("README.md has `## The demo`");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in section.lines() {
        match line.trim() {
            "```sh" | "```bash" | "```shell" => in_sh = true,
            fence if fence.starts_with("```") => in_sh = false,
            "" => {}
            comment if comment.starts_with('#') => {}
            command if in_sh => commands.push(command.to_owned()),
            _ => {}
        }
    }
    commands
}

/// Whether a command's output shows it worked; the reason when not.
type OutputCheck = fn(&str) -> Result<(), String>;

/// What each README command must print to count as working, by a substring of the command.
/// A command with no entry here fails the test: nothing in the README goes unrun.
fn readme_expectation(command: &str) -> Option<OutputCheck> {
    fn json(out: &str) -> Result<serde_json::Value, String> {
        serde_json::from_str(out).map_err(|e| format!("not JSON ({e}): {out}"))
    }
    let table: [(&str, OutputCheck); 5] = [
        ("/v1/gate/payments-ledger", |out| {
            let answer = json(out)?;
            answer["allowed"]
                .as_bool()
                .map(|_| ())
                .ok_or(format!("no `allowed`: {answer}"))
        }),
        ("/v1/entities/payments-api/scores", |out| {
            let levels: Vec<&str> = out.lines().collect();
            if levels.is_empty() {
                return Err("no level printed".into());
            }
            for level in levels {
                json(level)?
                    .as_str()
                    .ok_or(format!("not a level name: {level}"))?;
            }
            Ok(())
        }),
        ("readyd gate payments-api", |out| match out.lines().last() {
            // Allowed or refused: both are answers; 2 would mean it could not ask.
            Some("exit 0" | "exit 1") => Ok(()),
            _ => Err(format!("the gate could not answer: {out}")),
        }),
        ("/v1/exemptions | jq -r .id", |out| {
            let id = out.trim().strip_prefix("requested ").unwrap_or("");
            if id.is_empty() || id == "null" {
                Err(format!("no exemption was requested: {out}"))
            } else {
                Ok(())
            }
        }),
        ("/approve | jq .status", |out| match out.trim() {
            "\"approved\"" => Ok(()),
            other => Err(format!("not approved: {other}")),
        }),
    ];
    table
        .into_iter()
        .find(|(key, _)| command.contains(key))
        .map(|(_, check)| check)
}

/// Issue 17: the README's exemption `curl` got 415 (no `Content-Type`) and nothing ran the
/// README's commands. Every command of the demo section runs here as printed, against
/// `readyd demo` on a copy of the example organisation, with only the port and the binary's
/// path rewritten; all of them in one shell, in order, so that a variable set by one (the
/// exemption's id) reaches the next.
#[test]
fn the_readme_demo_commands_work_as_printed() {
    for tool in ["curl", "jq", "bash"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .expect("run sh");
        assert!(
            found.status.success(),
            "`{tool}` is needed to run the README's commands"
        );
    }
    let commands = readme_demo_commands();
    assert!(
        commands.len() >= 4,
        "the demo section's commands: {commands:?}"
    );
    for command in &commands {
        assert!(
            readme_expectation(command).is_some(),
            "README.md's demo command `{command}` is run by no check: add one to \
             readme_expectation"
        );
    }

    let org = example_org(free_port());
    let mut daemon = Running(
        readyd()
            .args(["demo", "--fresh", "--listen", "127.0.0.1:0", "--config"])
            .arg(org.path().join("readyd.toml"))
            .current_dir(org.path())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start readyd demo"),
    );
    let addr = wait_for_address(&mut daemon.0);
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let ready = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("http://{addr}/readyz"))
            .output()
            .expect("run curl");
        if ready.stdout == b"200" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the demo never got ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let bin = env!("CARGO_BIN_EXE_readyd");
    let mut script = String::from("set -o pipefail\n");
    for (i, command) in commands.iter().enumerate() {
        let run = command
            .replace("localhost:7878", &addr)
            .replace("127.0.0.1:7878", &addr);
        let run = match run.strip_prefix("readyd ") {
            Some(rest) => format!("{bin} {rest}"),
            None => run,
        };
        script.push_str(&format!(
            "echo '@@command {i}'\n{run}\necho \"@@status $?\"\n"
        ));
    }
    let output = Command::new("bash")
        .args(["-c", &script])
        .current_dir(org.path())
        .output()
        .expect("run the README's commands");
    let (stdout, stderr) = said(&output);
    for (i, command) in commands.iter().enumerate() {
        let begin = format!("@@command {i}\n");
        let from = stdout
            .find(&begin)
            .unwrap_or_else(|| panic!("`{command}` never ran: {stdout}"))
            + begin.len();
        let block = &stdout[from..];
        let end = block.find("@@status ").expect("a status line");
        let out = &block[..end];
        let status = block[end + "@@status ".len()..]
            .lines()
            .next()
            .unwrap_or("");
        assert_eq!(
            status, "0",
            "`{command}` failed (status {status}): {out}\n{stderr}"
        );
        if let Err(why) = readme_expectation(command).expect("checked above")(out) {
            panic!("`{command}` did not work as printed: {why}\n{stderr}");
        }
    }
}

/// Issue 17: `readyd validate` accepted a manifest whose component exports the wrong world
/// (`readyd plugin check` caught it).
#[test]
fn validate_refuses_a_component_of_the_wrong_world() {
    let good = plugins_dir(&[("noop", "check", readyd_plugin_artifacts::FIXTURE_NOOP_CHECK)]);
    let ok = readyd()
        .args(["validate", "--plugins"])
        .arg(good.path())
        .output()
        .expect("run readyd validate");
    assert!(ok.status.success(), "{ok:?}");

    let bad = plugins_dir(&[
        ("noop", "check", readyd_plugin_artifacts::FIXTURE_NOOP_CHECK),
        (
            "wrong",
            "check",
            readyd_plugin_artifacts::FIXTURE_WRONG_WORLD,
        ),
    ]);
    let refused = readyd()
        .args(["validate", "--plugins"])
        .arg(bad.path())
        .output()
        .expect("run readyd validate");
    let (stdout, stderr) = said(&refused);
    assert_eq!(refused.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("wrong.toml"), "{stderr}");
    assert!(!stdout.lines().any(|l| l == "ok"), "{stdout}");
}

/// Issue 17: `readyd validate` with no flags printed `ok` having checked nothing. Now it reads
/// the directories of the configuration (`./readyd.toml` or `--config`), or says what it needs.
#[test]
fn validate_without_flags_reads_the_config_or_says_what_it_needs() {
    let empty = tempfile::tempdir().expect("temporary directory");
    let nothing = readyd()
        .arg("validate")
        .current_dir(empty.path())
        .output()
        .expect("run readyd validate");
    let (stdout, stderr) = said(&nothing);
    assert_eq!(nothing.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("--config"), "{stderr}");
    assert!(!stdout.lines().any(|l| l == "ok"), "{stdout}");

    // The example organisation, from its own directory: its readyd.toml names all three.
    let org = example_org(free_port());
    let ok = readyd()
        .arg("validate")
        .current_dir(org.path())
        .output()
        .expect("run readyd validate");
    let (stdout, stderr) = said(&ok);
    assert!(ok.status.success(), "{stdout}{stderr}");
    for part in [
        "plugins: 5 manifests, 5 components loaded",
        "catalog: ",
        "standards: ",
    ] {
        assert!(stdout.contains(part), "{stdout}");
    }

    // A broken scorecard in the config's standards directory, found through `--config`.
    std::fs::write(
        org.path().join("standards/scorecards/broken.yaml"),
        "identifier: broken\ntitle: Broken\nlevels: [{title: Basic}]\nrules:\n  - identifier: r1\n    \
         level: Basic\n    query: {combinator: and, conditions: [{property: $team, operator: resemblesVaguely}]}\n",
    )
    .expect("write broken scorecard");
    let bad = readyd()
        .arg("validate")
        .arg("--config")
        .arg(org.path().join("readyd.toml"))
        .current_dir(empty.path())
        .output()
        .expect("run readyd validate");
    let (stdout, stderr) = said(&bad);
    assert_eq!(bad.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("broken.yaml"), "{stderr}");
}

/// Issue 17: `readyd eval --plugins` exited 0 with an empty stderr when a data source could not
/// collect, and `--fail-below` did not name what was below.
#[test]
fn eval_reports_data_source_failures_and_strict_fails_on_them() {
    // The example organisation without its stand-in: nothing listens where the `oncall` and
    // `prometheus` data sources ask, so neither can collect.
    let org = example_org(free_port());
    let eval = |extra: &[&str]| {
        readyd()
            .args(["eval", "--catalog", "catalog", "--standards", "standards"])
            .args(["--plugins", "plugins"])
            .args(extra)
            .current_dir(org.path())
            .output()
            .expect("run readyd eval")
    };
    let lenient = eval(&[]);
    let (stdout, stderr) = said(&lenient);
    assert_eq!(lenient.status.code(), Some(0), "{stdout}{stderr}");
    for source in ["oncall", "prometheus"] {
        assert!(
            stderr.contains(&format!("data source {source} failed for")),
            "{stderr}"
        );
    }
    let strict = eval(&["--strict"]);
    let (stdout, stderr) = said(&strict);
    assert_eq!(strict.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("data source oncall failed for"), "{stderr}");
}

#[test]
fn eval_fail_below_lists_the_entities_and_scorecards_below() {
    let org = example_org(free_port());
    let output = readyd()
        .args(["eval", "--catalog", "catalog", "--standards", "standards"])
        .args([
            "--plugins",
            "plugins",
            "--format",
            "json",
            "--fail-below",
            "Gold",
        ])
        .current_dir(org.path())
        .output()
        .expect("run readyd eval");
    let (stdout, stderr) = said(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    // Each (entity, scorecard) below Gold is its own line, as the JSON's levels say.
    let scores: serde_json::Value = serde_json::from_str(&stdout).expect("eval's JSON");
    let mut expected = Vec::new();
    for (entity, cards) in scores.as_object().expect("entities") {
        for (card, result) in cards.as_object().expect("scorecards") {
            let level = result["level"].as_str().expect("level");
            if level != "Gold" {
                expected.push(format!("  {entity}: {card} is {level}"));
            }
        }
    }
    assert!(!expected.is_empty(), "{stdout}");
    let listed: Vec<&str> = stderr.lines().filter(|l| l.starts_with("  ")).collect();
    assert_eq!(listed, expected, "{stderr}");
}

/// Issue 17: `readyd plugin run --entity` said "JSON or YAML" but took only a path, and
/// insisted on a `title` the SDK does not.
#[test]
fn plugin_run_takes_an_inline_entity_without_a_title() {
    let plugins = plugins_dir(&[("noop", "check", readyd_plugin_artifacts::FIXTURE_NOOP_CHECK)]);
    let manifest = plugins.path().join("noop.toml");
    let file = plugins.path().join("entity.yaml");
    std::fs::write(&file, "identifier: from-file\nkind: service\n").expect("write entity");
    for entity in [
        r#"{"identifier": "inline-json", "kind": "service"}"#,
        "identifier: inline-yaml\nkind: service\n",
        file.to_str().expect("a UTF-8 path"),
    ] {
        let output = readyd()
            .args(["plugin", "run"])
            .arg(&manifest)
            .args(["--entity", entity])
            .output()
            .expect("run readyd plugin run");
        let (stdout, stderr) = said(&output);
        assert!(output.status.success(), "{entity}: {stdout}{stderr}");
        let outcome: serde_json::Value = serde_json::from_str(&stdout).expect("an outcome");
        assert_eq!(outcome["status"], "pass", "{stdout}");
    }
    let missing = readyd()
        .args(["plugin", "run"])
        .arg(&manifest)
        .args(["--entity", "no/such/entity.yaml"])
        .output()
        .expect("run readyd plugin run");
    let (stdout, stderr) = said(&missing);
    assert!(!missing.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("no such file"), "{stderr}");
}

/// Issue 17: the text log carried ANSI colour codes into files and pipes.
#[test]
fn the_log_has_no_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().expect("temporary directory");
    // A broken manifest makes the daemon log a warning at start, so the log is not empty.
    let plugins = dir.path().join("plugins");
    for sub in ["plugins", "catalog", "standards"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("daemon dir");
    }
    std::fs::write(plugins.join("broken.toml"), "name = \"broken\"\n").expect("manifest");
    std::fs::write(
        dir.path().join("readyd.toml"),
        "listen = \"127.0.0.1:0\"\ndata = \"readyd.redb\"\ncache_dir = \"cache\"\n\
         plugins_dir = \"plugins\"\nlog_level = \"info\"\nlog_format = \"text\"\n",
    )
    .expect("config");
    let log = dir.path().join("stderr.log");
    let mut daemon = Running(
        readyd()
            .arg("serve")
            .arg("--config")
            .arg(dir.path().join("readyd.toml"))
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start readyd serve"),
    );
    wait_for_address(&mut daemon.0);
    let deadline = std::time::Instant::now() + PATIENCE;
    let text = loop {
        let text = std::fs::read_to_string(&log).expect("read the log");
        if text.contains("broken.toml") {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "no log line: {text}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    drop(daemon);
    assert!(!text.contains("\x1b["), "escape codes in the log: {text:?}");
}

/// The plugin build command the documents give: the `cargo build` line of plugins/README.md's
/// "Building" block, which the SDK's crate docs must give too.
fn documented_build_command() -> String {
    let readme = std::fs::read_to_string(workspace().join("plugins/README.md")).expect("README");
    let building = &readme[readme.find("## Building").expect("a Building section")..];
    let command = building
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("cargo build"))
        .expect("a cargo build line")
        .split('#')
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let sdk = std::fs::read_to_string(workspace().join("plugin-sdk/src/lib.rs")).expect("SDK");
    assert!(
        sdk.lines()
            .any(|l| l.trim_start_matches("//!").trim() == command),
        "the SDK's docs do not give `{command}`"
    );
    command
}

/// `cargo` with the outer cargo's settings removed (they describe the test build), a target
/// directory kept between runs so that the registry crates are built once, and no network.
fn plugin_cargo(args: &[&str], dir: &Path) -> std::process::Output {
    let mut cargo = Command::new("cargo");
    cargo.args(args).current_dir(dir);
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if (key.starts_with("CARGO") && key != "CARGO_HOME")
            || key.starts_with("__CARGO")
            || key.starts_with("RUSTC")
            || matches!(key, "RUSTFLAGS" | "RUSTDOCFLAGS" | "RUSTUP_TOOLCHAIN")
        {
            cargo.env_remove(key);
        }
    }
    cargo
        .env(
            "CARGO_TARGET_DIR",
            workspace().join("target/plugin-build-test"),
        )
        .env("CARGO_NET_OFFLINE", "true")
        .output()
        .expect("run cargo")
}

/// `plugins/slo-budget/Cargo.toml` as a crate outside the workspace has it: every
/// `workspace = true` replaced by the workspace's value, `readyd-plugin-sdk` a path dependency.
fn standalone_manifest(plugin: &Path) -> String {
    let root: toml::Table = std::fs::read_to_string(workspace().join("Cargo.toml"))
        .expect("root Cargo.toml")
        .parse()
        .expect("root Cargo.toml parses");
    let ws = root["workspace"].as_table().expect("[workspace]");
    let mut manifest: toml::Table = std::fs::read_to_string(plugin.join("Cargo.toml"))
        .expect("plugin Cargo.toml")
        .parse()
        .expect("plugin Cargo.toml parses");
    manifest.remove("lints");
    let package = manifest["package"].as_table_mut().expect("[package]");
    for (key, value) in package.iter_mut() {
        if value.get("workspace").is_some() {
            *value = ws["package"][key.as_str()].clone();
        }
    }
    let dependencies = manifest["dependencies"]
        .as_table_mut()
        .expect("[dependencies]");
    for (name, value) in dependencies.iter_mut() {
        let mut resolved = match &ws["dependencies"][name.as_str()] {
            toml::Value::String(version) => {
                toml::Table::from_iter([("version".to_owned(), version.clone().into())])
            }
            toml::Value::Table(t) => t.clone(),
            other => panic!("{name}: {other}"),
        };
        if let Some(path) = resolved.get("path").and_then(toml::Value::as_str) {
            let path = workspace()
                .join(path)
                .canonicalize()
                .expect("path dependency");
            resolved.insert("path".into(), path.display().to_string().into());
        }
        if let Some(extra) = value.get("features").and_then(toml::Value::as_array) {
            let features = resolved
                .entry("features")
                .or_insert_with(|| toml::Value::Array(Vec::new()));
            features
                .as_array_mut()
                .unwrap()
                .extend(extra.iter().cloned());
        }
        *value = toml::Value::Table(resolved);
    }
    toml::to_string(&manifest).expect("serialize")
}

/// Issue 17: the SDK's docs said `--release`, plugins/README.md `--profile wasm`, which exists
/// only inside this workspace. The one documented command builds a shipped plugin both in the
/// workspace and copied outside it, and the component it makes loads.
#[test]
fn the_documented_plugin_build_works_inside_and_outside_the_workspace() {
    let command = documented_build_command();
    let args: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(args[0], "cargo", "{command}");
    let plugin = workspace().join("plugins/slo-budget");

    let outside = tempfile::tempdir().expect("temporary directory");
    copy_dir(&plugin.join("src"), &outside.path().join("src"));
    std::fs::write(
        outside.path().join("Cargo.toml"),
        standalone_manifest(&plugin),
    )
    .expect("write Cargo.toml");
    // The workspace's lock file keeps the versions already on this machine (cargo drops the
    // entries the crate does not use); the toolchain file is what a plugin repository has too.
    for file in ["Cargo.lock", "rust-toolchain.toml"] {
        std::fs::copy(workspace().join(file), outside.path().join(file)).expect("copy");
    }

    for (place, dir) in [("outside", outside.path()), ("inside", plugin.as_path())] {
        let built = plugin_cargo(&args[1..], dir);
        let (stdout, stderr) = said(&built);
        assert!(
            built.status.success(),
            "`{command}` {place} the workspace: {stdout}{stderr}"
        );
        let wasm =
            workspace().join("target/plugin-build-test/wasm32-wasip2/release/slo_budget.wasm");
        let bytes = std::fs::read(&wasm).expect("the documented output path");
        assert_eq!(
            &bytes[..8],
            b"\0asm\x0d\0\x01\0",
            "{place}: not a component"
        );
        assert!(bytes.len() < 1 << 20, "{place}: {} bytes", bytes.len());
        let plugins = plugins_dir(&[("slo-budget", "check", wasm.to_str().unwrap())]);
        let check = readyd()
            .args(["plugin", "check"])
            .arg(plugins.path())
            .output()
            .expect("run readyd plugin check");
        let (stdout, stderr) = said(&check);
        assert!(check.status.success(), "{place}: {stdout}{stderr}");
        assert!(stdout.contains("ok     slo-budget"), "{stdout}");
        std::fs::remove_file(&wasm).expect("remove, so the next build must write it");
    }
}
