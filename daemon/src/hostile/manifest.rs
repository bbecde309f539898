//! Plugin manifests (`plugins/<name>.toml`): [`Manifest::parse`], [`Manifest::from_file`],
//! [`load_manifests`] and the `capabilities.http` entries ([`HttpGrant`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::plugin::manifest::{HttpGrant, Manifest, ManifestError, PluginKind, load_manifests};

const TOP_KEYS: &[&str] = &[
    "name",
    "kind",
    "wasm",
    "interval",
    "timeout_ms",
    "memory_mb",
    "capabilities",
    "config",
];
const CAPABILITY_KEYS: &[&str] = &["http", "dirs", "secrets"];

/// A plugins directory with a wasm file and a directory to grant.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("p.wasm"), b"\0asm").expect("wasm");
        std::fs::create_dir(dir.path().join("data")).expect("data dir");
        Fixture { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Secrets' variables as the environment gives them.
fn env(vars: &BTreeSet<String>) -> impl Fn(&str) -> Option<String> + '_ {
    move |var| vars.contains(var).then(|| format!("value-of-{var}"))
}

/// A valid manifest, and what it must parse to.
#[derive(Clone, Debug)]
struct GenManifest {
    name: String,
    kind: PluginKind,
    interval: Option<(String, Duration)>,
    timeout_ms: Option<u64>,
    memory_mb: Option<u64>,
    /// (as written, host, port).
    http: Vec<(String, String, Option<u16>)>,
    /// Guest paths, each granted `data`.
    dirs: BTreeSet<String>,
    /// Secret name → variable.
    secrets: BTreeMap<String, String>,
    config: toml::Table,
}

impl GenManifest {
    fn table(&self) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("name".into(), self.name.clone().into());
        t.insert("kind".into(), self.kind.world().into());
        t.insert("wasm".into(), "p.wasm".into());
        if let Some((text, _)) = &self.interval {
            t.insert("interval".into(), text.clone().into());
        }
        if let Some(ms) = self.timeout_ms {
            t.insert("timeout_ms".into(), toml::Value::Integer(ms as i64));
        }
        if let Some(mb) = self.memory_mb {
            t.insert("memory_mb".into(), toml::Value::Integer(mb as i64));
        }
        let mut caps = toml::Table::new();
        if !self.http.is_empty() {
            let hosts: Vec<toml::Value> =
                self.http.iter().map(|(w, _, _)| w.clone().into()).collect();
            caps.insert("http".into(), toml::Value::Array(hosts));
        }
        if !self.dirs.is_empty() {
            let dirs: toml::Table = self
                .dirs
                .iter()
                .map(|g| (g.clone(), toml::Value::from("data")))
                .collect();
            caps.insert("dirs".into(), toml::Value::Table(dirs));
        }
        if !self.secrets.is_empty() {
            let secrets: toml::Table = self
                .secrets
                .iter()
                .map(|(n, v)| (n.clone(), toml::Value::from(v.clone())))
                .collect();
            caps.insert("secrets".into(), toml::Value::Table(secrets));
        }
        if !caps.is_empty() {
            t.insert("capabilities".into(), toml::Value::Table(caps));
        }
        if !self.config.is_empty() {
            t.insert("config".into(), toml::Value::Table(self.config.clone()));
        }
        t
    }

    fn vars(&self) -> BTreeSet<String> {
        self.secrets.values().cloned().collect()
    }
}

fn toml_text(table: &toml::Table) -> String {
    toml::to_string(table).expect("a table serialises")
}

fn http_grant() -> impl Strategy<Value = (String, String, Option<u16>)> {
    prop_oneof![
        (
            "[a-z][a-z0-9-]{0,8}(\\.[a-z]{2,5}){0,2}",
            prop::option::of(1u16..),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(host, port, upper, dot)| {
                let mut written = if upper {
                    host.to_uppercase()
                } else {
                    host.clone()
                };
                if dot {
                    written.push('.');
                }
                if let Some(p) = port {
                    written.push_str(&format!(":{p}"));
                }
                (written, host, port)
            }),
        (any::<[u8; 4]>(), 1u16..).prop_map(|(ip, port)| {
            let host = format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3]);
            (format!("{host}:{port}"), host, Some(port))
        }),
        Just(("[::1]:9000".to_owned(), "[::1]".to_owned(), Some(9000))),
    ]
}

fn config_value() -> impl Strategy<Value = toml::Value> {
    let leaf = prop_oneof![
        "\\PC{0,12}".prop_map(toml::Value::String),
        any::<i64>().prop_map(toml::Value::Integer),
        any::<bool>().prop_map(toml::Value::Boolean),
        (-1.0e6f64..1.0e6).prop_map(toml::Value::Float),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(toml::Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

fn gen_manifest() -> impl Strategy<Value = GenManifest> {
    let interval = prop_oneof![
        (
            1u64..120,
            prop::sample::select(&[("s", 1u64), ("m", 60), ("h", 3600)][..])
        )
            .prop_map(|(n, (unit, secs))| (format!("{n}{unit}"), Duration::from_secs(n * secs))),
        (1u64..60, 1u64..60)
            .prop_map(|(m, s)| { (format!("{m}m {s}s"), Duration::from_secs(m * 60 + s)) }),
    ];
    (
        "[a-z0-9][a-z0-9_-]{0,20}",
        any::<bool>(),
        prop::option::of(interval),
        prop::option::of(1u64..=600_000),
        prop::option::of(1u64..4096),
        prop::collection::vec(http_grant(), 0..4),
        prop::collection::btree_set("/[a-z]{1,8}(/[a-z]{1,8})?", 0..3),
        prop::collection::btree_map("[a-z]{1,8}", "HOSTILE_[A-Z]{1,8}", 0..3),
        prop::collection::btree_map("cfg_[a-z]{1,6}", config_value(), 0..4),
    )
        .prop_map(
            |(name, source, interval, timeout_ms, memory_mb, http, dirs, secrets, config)| {
                let kind = if source {
                    PluginKind::DataSource
                } else {
                    PluginKind::Check
                };
                GenManifest {
                    name,
                    kind,
                    interval: interval.filter(|_| source),
                    timeout_ms,
                    memory_mb,
                    http,
                    dirs,
                    secrets,
                    config: config.into_iter().collect(),
                }
            },
        )
}

/// What `[config]` becomes for the plugin (JSON).
fn config_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => json!(s),
        toml::Value::Integer(i) => json!(i),
        toml::Value::Float(f) => json!(f),
        toml::Value::Boolean(b) => json!(b),
        toml::Value::Datetime(d) => json!(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(config_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.iter().map(|(k, v)| (k.clone(), config_json(v))).collect())
        }
    }
}

/// A fault put into a valid manifest, with the tokens its error must contain.
#[derive(Clone, Debug)]
enum ManifestFaultGen {
    UnknownTopKey(String),
    UnknownCapabilityKey(String),
    Missing(&'static str),
    TimeoutNotANumber(String),
    BadKind(String),
    BadName(String),
    MissingWasm(String),
    BadInterval(&'static str),
    ShortInterval(&'static str),
    IntervalOnCheck,
    BadTimeout(u64),
    ZeroMemory,
    BadHttp(&'static str),
    BadGuest(&'static str),
    MissingHostDir(String),
    MissingSecret(String),
    SecretShadowsConfig,
}

fn manifest_fault() -> impl Strategy<Value = ManifestFaultGen> {
    use ManifestFaultGen::*;
    prop_oneof![
        unknown_key(TOP_KEYS).prop_map(UnknownTopKey),
        unknown_key(CAPABILITY_KEYS).prop_map(UnknownCapabilityKey),
        prop::sample::select(&["name", "kind", "wasm"][..]).prop_map(Missing),
        "[a-z]{3,8}".prop_map(TimeoutNotANumber),
        "[a-z]{2,10}"
            .prop_filter("not a kind", |k| k != "check" && k != "data-source")
            .prop_map(BadKind),
        prop_oneof![
            "[A-Z][a-z]{1,8}",
            "[a-z]{1,4}\\.[a-z]{1,4}",
            "-[a-z]{1,4}",
            "[a-z]{65,70}"
        ]
        .prop_map(BadName),
        "missing-[a-z]{1,6}\\.wasm".prop_map(MissingWasm),
        prop::sample::select(&["5 parsecs", "soon", "-1m", "", "99999999999999999999h"][..])
            .prop_map(BadInterval),
        prop::sample::select(&["10ms", "999ms", "0s"][..]).prop_map(ShortInterval),
        Just(IntervalOnCheck),
        prop_oneof![Just(0u64), 600_001u64..u32::MAX as u64].prop_map(BadTimeout),
        Just(ZeroMemory),
        prop::sample::select(
            &[
                "https://api.github.com",
                "x/y",
                "u@x",
                "*.github.com",
                "x:notaport",
                "",
                "x:99999"
            ][..]
        )
        .prop_map(BadHttp),
        prop::sample::select(&["repos", "/a/../b", "/./x", "relative/x"][..]).prop_map(BadGuest),
        "nope-[a-z]{1,6}".prop_map(MissingHostDir),
        "UNSET_HOSTILE_[A-Z]{1,6}".prop_map(MissingSecret),
        Just(SecretShadowsConfig),
    ]
}

/// Applies `fault` to the manifest table; returns the tokens the error must contain.
fn apply_manifest_fault(
    fault: &ManifestFaultGen,
    m: &GenManifest,
    t: &mut toml::Table,
) -> Vec<String> {
    use ManifestFaultGen::*;
    fn caps(t: &mut toml::Table) -> &mut toml::Table {
        t.entry("capabilities")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("capabilities is a table")
    }
    match fault {
        UnknownTopKey(k) => {
            t.insert(k.clone(), 1.into());
            vec![format!("unknown key `{k}`")]
        }
        UnknownCapabilityKey(k) => {
            caps(t).insert(k.clone(), true.into());
            vec![format!("unknown key `{k}`")]
        }
        Missing(k) => {
            t.remove(*k);
            vec![format!("missing field `{k}`")]
        }
        TimeoutNotANumber(w) => {
            t.insert("timeout_ms".into(), w.clone().into());
            vec!["invalid type".into(), format!("\"{w}\"")]
        }
        BadKind(k) => {
            t.insert("kind".into(), k.clone().into());
            vec![format!("bad kind `{k}`")]
        }
        BadName(n) => {
            t.insert("name".into(), n.clone().into());
            vec![format!("bad name `{n}`")]
        }
        MissingWasm(w) => {
            t.insert("wasm".into(), w.clone().into());
            vec![format!("{w} does not exist")]
        }
        BadInterval(text) => {
            t.insert("kind".into(), "data-source".into());
            t.insert("interval".into(), (*text).into());
            vec![format!("bad interval `{text}`")]
        }
        ShortInterval(text) => {
            t.insert("kind".into(), "data-source".into());
            t.insert("interval".into(), (*text).into());
            vec![format!("bad interval `{text}`"), "at least 1s".into()]
        }
        IntervalOnCheck => {
            t.insert("kind".into(), "check".into());
            t.insert("interval".into(), "5m".into());
            vec!["`interval` is only meaningful for a data-source plugin".into()]
        }
        BadTimeout(ms) => {
            t.insert("timeout_ms".into(), toml::Value::Integer(*ms as i64));
            vec![format!("bad timeout_ms {ms}")]
        }
        ZeroMemory => {
            t.insert("memory_mb".into(), toml::Value::Integer(0));
            vec!["bad memory_mb 0".into()]
        }
        BadHttp(entry) => {
            caps(t).insert("http".into(), toml::Value::Array(vec![(*entry).into()]));
            vec![format!("bad capabilities.http entry `{entry}`")]
        }
        BadGuest(guest) => {
            let dirs = toml::Table::from_iter([((*guest).to_owned(), "data".into())]);
            caps(t).insert("dirs".into(), toml::Value::Table(dirs));
            vec![format!("bad capabilities.dirs entry `{guest}`")]
        }
        MissingHostDir(host) => {
            let dirs = toml::Table::from_iter([("/mnt".to_owned(), host.clone().into())]);
            caps(t).insert("dirs".into(), toml::Value::Table(dirs));
            vec!["bad capabilities.dirs entry `/mnt`".into(), host.clone()]
        }
        MissingSecret(var) => {
            let secrets = toml::Table::from_iter([("zz_token".to_owned(), var.clone().into())]);
            caps(t).insert("secrets".into(), toml::Value::Table(secrets));
            vec![format!("environment variable {var} is not set")]
        }
        SecretShadowsConfig => {
            let var = m
                .secrets
                .values()
                .next()
                .cloned()
                .unwrap_or_else(|| "HOSTILE_SET".into());
            let secrets = toml::Table::from_iter([("cfg_shadow".to_owned(), var.into())]);
            caps(t).insert("secrets".into(), toml::Value::Table(secrets));
            t.entry("config")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .expect("config is a table")
                .insert("cfg_shadow".into(), 1.into());
            vec!["secret `cfg_shadow` has the same name as a [config] key".into()]
        }
    }
}

/// A JSON tree as TOML (nulls dropped; integers out of range as floats).
fn json_to_toml(value: &Value) -> Option<toml::Value> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(items) => toml::Value::Array(items.iter().filter_map(json_to_toml).collect()),
        Value::Object(map) => toml::Value::Table(
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), json_to_toml(v)?)))
                .collect(),
        ),
    })
}

/// Pieces the TOML lexer reacts to.
const TOML_PIECES: &[&str] = &[
    "name = \"x\"\n",
    "kind = \"check\"\n",
    "wasm = \"p.wasm\"\n",
    "[capabilities]\n",
    "[config]\n",
    "[[config.list]]\n",
    "[config.a.b]\n",
    "http = [",
    "]",
    "{",
    "}",
    "\"",
    "'''",
    "\"\"\"",
    "=",
    " = ",
    ",",
    ".",
    "\n",
    "# c\n",
    "1979-05-27T07:32:00Z",
    "1e999",
    "nan",
    "-inf",
    "0x7fffffffffffffff",
    "99999999999999999999",
    "true",
    "\\u0000",
    "\\",
    "é",
    "\0",
    "\u{feff}",
];

fn toml_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            6 => prop::sample::select(TOML_PIECES).prop_map(str::to_owned),
            1 => "\\PC{0,6}",
        ],
        0..40,
    )
    .prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(config(512))]

    /// Arbitrary text, TOML token soup and JSON trees written as TOML never make the manifest
    /// parser panic, and every error names the manifest.
    #[test]
    fn manifest_text_never_panics(
        text in prop_oneof![
            any::<String>(),
            toml_soup(),
            json_object().prop_map(|v| {
                json_to_toml(&v)
                    .and_then(|t| t.as_table().cloned())
                    .and_then(|t| toml::to_string(&t).ok())
                    .unwrap_or_default()
            }),
        ],
    ) {
        let f = Fixture::new();
        let path = f.path("hostile.toml");
        match Manifest::parse(&text, &path, &|_| Some("v".into())) {
            Ok(m) => prop_assert_eq!(m.path, path),
            Err(e) => {
                prop_assert_eq!(&e.path, &path);
                prop_assert!(e.to_string().starts_with(&path.display().to_string()), "{}", e);
            }
        }
    }

    /// A manifest's fields with random values (right keys, random TOML) never panic.
    #[test]
    fn manifest_shaped_tables_never_panic(
        fields in prop::collection::vec(
            (prop::sample::select(TOP_KEYS), json_value()),
            0..8,
        ),
        caps in prop::collection::vec(
            (prop::sample::select(CAPABILITY_KEYS), json_value()),
            0..3,
        ),
    ) {
        let mut table = toml::Table::new();
        for (k, v) in fields {
            if let Some(v) = json_to_toml(&v) {
                table.insert(k.to_owned(), v);
            }
        }
        let caps: toml::Table = caps
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), json_to_toml(&v)?)))
            .collect();
        table.insert("capabilities".into(), toml::Value::Table(caps));
        let text = toml::to_string(&table);
        prop_assume!(text.is_ok(), "TOML cannot write this table");
        let f = Fixture::new();
        let text = text.unwrap_or_default();
        let _ = Manifest::parse(&text, &f.path("shaped.toml"), &|_| Some("v".into()));
    }

    /// `capabilities.http` entries: any text parses or is refused; valid hosts read back
    /// lower-cased, without a trailing dot, with their port.
    #[test]
    fn http_grants_parse_or_refuse(any_text in any::<String>(), grant in http_grant()) {
        let _ = any_text.parse::<HttpGrant>();
        let (written, host, port) = grant;
        let parsed: HttpGrant = written
            .parse()
            .map_err(|e| TestCaseError::fail(format!("{written}: {e}")))?;
        prop_assert_eq!(&parsed.host, &host);
        prop_assert_eq!(parsed.port, port);
        let default_port = port.unwrap_or(443);
        prop_assert!(parsed.allows(&host.to_uppercase(), default_port, 443));
        let evil = format!("evil.{host}");
        prop_assert!(!parsed.allows(&evil, default_port, 443));
    }

    /// A valid manifest parses to what was generated.
    #[test]
    fn valid_manifests_round_trip(m in gen_manifest()) {
        let f = Fixture::new();
        let path = f.path("plugin.toml");
        let text = toml_text(&m.table());
        let vars = m.vars();
        let parsed = Manifest::parse(&text, &path, &env(&vars))
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&parsed.name, &m.name);
        prop_assert_eq!(parsed.kind, m.kind);
        prop_assert_eq!(&parsed.wasm, &f.path("p.wasm"));
        prop_assert_eq!(parsed.interval, m.interval.as_ref().map(|(_, d)| *d));
        prop_assert_eq!(parsed.timeout_ms, m.timeout_ms);
        prop_assert_eq!(parsed.memory_mb, m.memory_mb);
        let hosts: Vec<(String, Option<u16>)> =
            parsed.capabilities.http.iter().map(|g| (g.host.clone(), g.port)).collect();
        let want: Vec<(String, Option<u16>)> =
            m.http.iter().map(|(_, h, p)| (h.clone(), *p)).collect();
        prop_assert_eq!(hosts, want);
        let guests: BTreeSet<String> =
            parsed.capabilities.dirs.iter().map(|d| d.guest.clone()).collect();
        prop_assert_eq!(&guests, &m.dirs);
        let data = f.path("data").canonicalize().expect("data dir");
        prop_assert!(parsed.capabilities.dirs.iter().all(|d| d.host == data));
        let secrets: BTreeMap<String, (String, String)> = parsed
            .capabilities
            .secrets
            .iter()
            .map(|s| (s.name.clone(), (s.env_var.clone(), s.value.expose().to_owned())))
            .collect();
        let want: BTreeMap<String, (String, String)> = m
            .secrets
            .iter()
            .map(|(n, v)| (n.clone(), (v.clone(), format!("value-of-{v}"))))
            .collect();
        prop_assert_eq!(secrets, want);
        let config: serde_json::Map<String, Value> =
            m.config.iter().map(|(k, v)| (k.clone(), config_json(v))).collect();
        prop_assert_eq!(&parsed.config, &config);
        // Secrets never show in what is printed or served.
        let shown = format!("{parsed:?}{}", serde_json::to_string(&parsed).expect("json"));
        for v in vars {
            let value = format!("value-of-{v}");
            prop_assert!(!shown.contains(&value), "{}", shown);
        }
    }

    /// One fault in a valid manifest is refused with an error that names the file and the fault
    /// (and the line, for what the TOML parser finds).
    #[test]
    fn a_fault_in_a_manifest_is_named(m in gen_manifest(), fault in manifest_fault()) {
        let f = Fixture::new();
        let path = f.path("plugin.toml");
        let mut table = m.table();
        let tokens = apply_manifest_fault(&fault, &m, &mut table);
        let text = toml_text(&table);
        let vars = m.vars();
        let error: ManifestError = match Manifest::parse(&text, &path, &env(&vars)) {
            Ok(_) => return Err(TestCaseError::fail(format!("{fault:?} accepted:\n{text}"))),
            Err(e) => e,
        };
        let message = error.to_string();
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        some_names(std::slice::from_ref(&message), &path.display().to_string(), &tokens)?;
        let key_line = |key: &str| {
            text.lines()
                .position(|l| l.starts_with(&format!("{key} =")))
                .map(|i| i + 1)
        };
        match &fault {
            ManifestFaultGen::UnknownTopKey(k) | ManifestFaultGen::UnknownCapabilityKey(k) => {
                let line = key_line(k).expect("the key is written");
                prop_assert!(message.contains(&format!("line {line}: ")), "{}\n{}", message, text);
            }
            ManifestFaultGen::TimeoutNotANumber(_) => {
                let line = key_line("timeout_ms").expect("the key is written");
                prop_assert!(message.contains(&format!("line {line}: ")), "{}\n{}", message, text);
            }
            _ => {}
        }
    }

    /// Bytes that are not UTF-8 in a manifest file are a read error naming the file.
    #[test]
    fn manifest_files_of_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let f = Fixture::new();
        let path = f.path("bytes.toml");
        std::fs::write(&path, &bytes).expect("write");
        if let Err(e) = Manifest::from_file(&path) {
            prop_assert_eq!(&e.path, &path);
            if std::str::from_utf8(&bytes).is_err() {
                prop_assert!(e.to_string().contains("cannot read"), "{}", e);
            }
        }
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// `load_manifests` is documented to keep the good manifests and report the bad ones (one
    /// bad file must not unload the others): N valid + 1 broken gives the N and one error naming
    /// the broken file; a second manifest taking a name is refused naming the first.
    #[test]
    fn load_manifests_keeps_good_and_names_bad(
        manifests in prop::collection::vec(gen_manifest(), 1..5),
        fault in manifest_fault().prop_filter("secrets come from the process environment", |f| {
            !matches!(f, ManifestFaultGen::SecretShadowsConfig)
        }),
    ) {
        let f = Fixture::new();
        let mut names = Vec::new();
        for (i, m) in manifests.iter().enumerate() {
            let mut m = m.clone();
            m.name = format!("p{i}-{}", m.name);
            // From a file, secrets come from the real environment: none here.
            m.secrets.clear();
            write(f.dir.path(), &format!("p{i}.toml"), &toml_text(&m.table()));
            names.push(m.name);
        }
        let mut broken = manifests[0].clone();
        broken.secrets.clear();
        broken.name = "zz-broken".into();
        let mut table = broken.table();
        apply_manifest_fault(&fault, &broken, &mut table);
        write(f.dir.path(), "zz-broken.toml", &toml_text(&table));
        write(f.dir.path(), ".zz-hidden.toml", "garbage = [");
        let copy = std::fs::read_to_string(f.path("p0.toml")).expect("read");
        write(f.dir.path(), "zz-copy.toml", &copy);

        let (loaded, errors) = load_manifests(f.dir.path());
        let got: Vec<&str> = loaded.iter().map(|m| m.name.as_str()).collect();
        prop_assert_eq!(got, names.iter().map(String::as_str).collect::<Vec<_>>());
        prop_assert_eq!(errors.len(), 2, "{:?}", errors);
        prop_assert_eq!(&errors[0].path, &f.path("zz-broken.toml"));
        prop_assert_eq!(&errors[1].path, &f.path("zz-copy.toml"));
        let duplicate = errors[1].to_string();
        prop_assert!(duplicate.contains(&format!("`{}` is already used by", names[0])), "{}", duplicate);
        prop_assert!(duplicate.contains(&f.path("p0.toml").display().to_string()), "{}", duplicate);
    }
}

/// The demo's manifests survive having any one line removed: no panic, errors name the file.
#[test]
fn demo_manifests_survive_line_removal() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/plugins");
    let mut seen = 0;
    for entry in std::fs::read_dir(&root).expect("examples/plugins") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        for skip in 0..lines.len() {
            let cut = super::without_line(&lines, skip);
            if let Err(e) = Manifest::parse(&cut, &path, &|_| None) {
                assert_eq!(e.path, path, "{e}");
            }
        }
    }
    assert!(seen > 0, "the demo has plugin manifests");
}
