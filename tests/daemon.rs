//! The daemon under test: the real readyd library server, started in-process on `127.0.0.1:0`
//! over a temporary copy of a fixture organisation (mini-redis style: the test owns the listener
//! and the shutdown signal), the test tokens, and the real `readyd` binary for tests that must
//! run or kill a separate process.
//!
//! [`start_daemon`] → [`TestDaemon`] (address, files, engine, `request`/`get`/`post`, `stop`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use readyd::config::{Config, Overrides};
use readyd::engine::Engine;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::http_client::{HttpResponse, send};

/// A token the test daemon accepts.
#[derive(Clone, Copy, Debug)]
pub struct TestToken {
    pub name: &'static str,
    pub role: &'static str,
    /// What a client sends.
    pub secret: &'static str,
    /// Configured as this SHA-256 digest instead of the plain secret.
    pub sha256: Option<&'static str>,
}

/// A `ci` token configured by its digest (`sha256 = "<hex>"`), not in plain.
pub const HASHED_CI: TestToken = TestToken {
    name: "hashed-ci",
    role: "ci",
    secret: "ci-hashed-secret-0001",
    // sha256("ci-hashed-secret-0001")
    sha256: Some("8200b3720993f172f95e95d206f417be6530b8fe1cef7c11748bf7b08beb2132"),
};

/// Every token of the test daemon, one per role (and a hashed one).
pub const TOKENS: &[TestToken] = &[
    TestToken {
        name: "vera",
        role: "viewer",
        secret: "viewer-secret-0001",
        sha256: None,
    },
    TestToken {
        name: "pipeline",
        role: "ci",
        secret: "ci-secret-0001",
        sha256: None,
    },
    TestToken {
        name: "pat",
        role: "owner:payments",
        secret: "payments-owner-secret-0001",
        sha256: None,
    },
    TestToken {
        name: "ines",
        role: "owner:identity",
        secret: "identity-owner-secret-0001",
        sha256: None,
    },
    TestToken {
        name: "sam",
        role: "approver",
        secret: "approver-secret-0001",
        sha256: None,
    },
    TestToken {
        name: "root",
        role: "admin",
        secret: "admin-secret-0001",
        sha256: None,
    },
    HASHED_CI,
];

/// A well-formed token that no daemon is configured with.
pub const UNKNOWN_TOKEN: &str = "not-a-configured-token";

/// The secret of the (first) test token with `role`.
pub fn token_for(role: &str) -> &'static str {
    TOKENS
        .iter()
        .find(|t| t.role == role)
        .unwrap_or_else(|| panic!("no test token has role {role}"))
        .secret
}

/// `tests/fixtures/<name>`.
pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A daemon serving the real API in this process. Dropping it signals shutdown; `stop`
/// also waits for the drain and the engine.
pub struct TestDaemon {
    /// Where the API listens (`127.0.0.1:<port>`).
    pub addr: SocketAddr,
    /// The daemon's files: `readyd.toml`, `catalog/`, `standards/`, `plugins/`, `state/`.
    /// Deleted when the daemon is dropped.
    pub dir: TempDir,
    /// The engine behind the API, for tests that look at state directly.
    pub engine: Engine,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for TestDaemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDaemon")
            .field("addr", &self.addr)
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// Start a daemon on the `api` fixture organisation (`tests/fixtures/api`): anonymous reads
/// off, file watching off, the tokens of [`TOKENS`]. `tweak` changes the configuration
/// before the engine starts.
pub async fn start_daemon(tweak: impl FnOnce(&mut Config)) -> TestDaemon {
    start_daemon_in(&fixture_dir("api"), tweak).await
}

/// Like [`start_daemon`], on a copy of `fixture` (a folder with `catalog/`, `standards/`
/// and optionally `plugins/`).
pub async fn start_daemon_in(fixture: &Path, tweak: impl FnOnce(&mut Config)) -> TestDaemon {
    let dir = tempfile::tempdir().expect("temporary directory");
    copy_dir(fixture, dir.path());
    for sub in ["catalog", "standards", "plugins", "state"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("create daemon directory");
    }
    let file = dir.path().join("readyd.toml");
    std::fs::write(&file, config_text()).expect("write readyd.toml");
    // No process environment: a developer's READYD_* variables must not change the tests.
    let mut config = Config::load(Some(&file), &BTreeMap::new(), &Overrides::default())
        .expect("the test configuration is valid");
    tweak(&mut config);
    let engine = Engine::start(config).await.expect("the engine starts");
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(readyd::http::serve(engine.clone(), listener, async {
        // A dropped sender (the test ended) is a shutdown too.
        let _ = rx.await;
    }));
    TestDaemon {
        addr,
        dir,
        engine,
        handle: Some(handle),
        shutdown: Some(tx),
    }
}

fn config_text() -> String {
    let mut text = String::from(
        "# Written by readyd-tests' start_daemon.\n\
         listen = \"127.0.0.1:0\"\n\
         data = \"state/readyd.redb\"\n\
         cache_dir = \"state/cache\"\n\
         catalog_dir = \"catalog\"\n\
         standards_dir = \"standards\"\n\
         plugins_dir = \"plugins\"\n\
         anonymous_read = false\n\
         log_level = \"warn\"\n\
         [watch]\n\
         enabled = false\n",
    );
    for token in TOKENS {
        text.push_str(&format!(
            "[[tokens]]\nname = \"{}\"\nrole = \"{}\"\n",
            token.name, token.role
        ));
        match token.sha256 {
            Some(digest) => text.push_str(&format!("sha256 = \"{digest}\"\n")),
            None => text.push_str(&format!("token = \"{}\"\n", token.secret)),
        }
    }
    text
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("read fixture {}: {e}", from.display()))
    {
        let entry = entry.expect("fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            std::fs::create_dir_all(&target).expect("create fixture copy");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy fixture file");
        }
    }
}

impl TestDaemon {
    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Send a request with an optional bearer token and an optional JSON body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> HttpResponse {
        let authorization = token.map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if let Some(value) = &authorization {
            headers.push(("authorization", value.as_str()));
        }
        let bytes = match body {
            Some(json) => {
                headers.push(("content-type", "application/json"));
                json.to_string().into_bytes()
            }
            None => Vec::new(),
        };
        send(self.addr, method, path, &headers, bytes).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str, token: Option<&str>) -> HttpResponse {
        self.request("GET", path, token, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> HttpResponse {
        self.request("POST", path, token, Some(&body)).await
    }

    /// Signal shutdown without waiting (the server stops accepting and drains).
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Shut down: stop accepting, drain, then stop the engine. The server's own result.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.begin_shutdown();
        let handle = self.handle.take().expect("a running server");
        let result = handle.await.expect("the server task does not panic");
        self.engine.shutdown().await;
        result
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

/// The real `readyd` binary of this build profile (`target/<profile>/readyd`), for tests that
/// need a separate process (kill -9). Once per test process it runs
/// `cargo test --workspace --no-run`, a no-op when everything is up to date, so the binary is
/// never older than the sources. That command, not `cargo build -p readyd`, because it unifies
/// features exactly as the test build did: `-p readyd` selects other features and would
/// rebuild wasmtime inside the test run. The binary exists because the `readyd` package has an
/// integration test (`daemon/tests/cli.rs`).
pub fn readyd_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        // The test binary is target/<profile>/deps/all-<hash>.
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_path_buf();
        let target_dir = profile_dir.parent().expect("target/").to_path_buf();
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a profile directory name")
            .to_owned();
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the workspace root");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .current_dir(workspace)
            .args([
                "test",
                "--workspace",
                "--locked",
                "--no-run",
                "--quiet",
                "--target-dir",
            ])
            .arg(&target_dir);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                build.arg("--release");
            }
            other => {
                build.args(["--profile", other]);
            }
        }
        let status = build.status().expect("run cargo test --workspace --no-run");
        assert!(
            status.success(),
            "cargo test --workspace --no-run failed: {status}"
        );
        let bin = profile_dir.join(format!("readyd{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
    .clone()
}
