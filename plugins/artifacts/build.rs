//! Compiles every plugin and test fixture under `plugins/` for `wasm32-wasip2` with one nested
//! `cargo build`, and writes `$OUT_DIR/artifacts.rs` with one path constant per component.
//!
//! The pattern is wasmtime's `crates/test-programs/artifacts`: the nested cargo runs with the
//! outer build's environment scrubbed (a `RUSTC_WORKSPACE_WRAPPER` set by clippy, the outer
//! `RUSTFLAGS` or `CARGO_TARGET_DIR` must not leak into a wasm build) and its own target
//! directory, `<workspace>/target/plugins`, so it never waits on the outer build's lock and the
//! components land at a stable path that examples and manifests can name. Guests are discovered
//! from the folder tree (`plugins/<name>/`, `plugins/fixtures/<name>/`), so adding a plugin
//! needs no edit here. This script never writes outside `OUT_DIR` and that target directory.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
/// The cargo profile the guests are built with (the root `Cargo.toml`'s `[profile.wasm]`: size-
/// optimised, LTO, no debug info, so components are ~200 KB rather than ~3 MB and the daemon
/// compiles them fast); the components land in `target/plugins/wasm32-wasip2/<PROFILE>/`.
const PROFILE: &str = "wasm";
/// The first eight bytes of every WebAssembly component (magic, then version 0x0d layer 1).
const COMPONENT_MAGIC: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// One guest crate to build.
struct Guest {
    /// The cargo package name (`repo-scan`, `fixture-noop-check`).
    package: String,
    /// The file stem cargo gives the component (`repo_scan`).
    artifact: String,
}

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("plugins/artifacts sits two levels below the workspace root")
        .to_path_buf();
    for watched in ["plugin-sdk", "plugins", "wit", "Cargo.toml", "Cargo.lock"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    let guests = discover(&workspace);
    ensure_target_installed();
    let target_dir = workspace.join("target").join("plugins");
    build(&workspace, &target_dir, &guests);

    let profile_dir = target_dir.join(TARGET).join(PROFILE);
    let mut source = String::new();
    let mut all = String::new();
    for guest in &guests {
        let path = profile_dir.join(format!("{}.wasm", guest.artifact));
        check_component(&path, &guest.package);
        let constant = guest.package.to_uppercase().replace('-', "_");
        let path = path.display().to_string();
        writeln!(source, "/// The `{}` component: `{path}`.", guest.package).unwrap();
        writeln!(source, "pub const {constant}: &str = {path:?};").unwrap();
        writeln!(all, "    ({:?}, {constant}),", guest.package).unwrap();
    }
    writeln!(
        source,
        "/// Every component as `(package name, path)`, sorted by name."
    )
    .unwrap();
    writeln!(source, "pub const ALL: &[(&str, &str)] = &[\n{all}];").unwrap();
    writeln!(source, "/// The directory all components are built into.").unwrap();
    writeln!(
        source,
        "pub const PLUGINS_DIR: &str = {:?};",
        profile_dir.display().to_string()
    )
    .unwrap();
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("artifacts.rs");
    fs::write(&out, source).expect("write artifacts.rs");
}

/// Every guest crate under `plugins/<name>/` and `plugins/fixtures/<name>/`, sorted by package.
fn discover(workspace: &Path) -> Vec<Guest> {
    let plugins = workspace.join("plugins");
    let mut dirs = Vec::new();
    for parent in [plugins.clone(), plugins.join("fixtures")] {
        for entry in fs::read_dir(&parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display())) {
            let dir = entry.expect("read plugins dir").path();
            if dir.join("Cargo.toml").is_file() && dir != plugins.join("artifacts") {
                dirs.push(dir);
            }
        }
    }
    let mut guests: Vec<Guest> = dirs.iter().map(|dir| read_guest(dir)).collect();
    guests.sort_by(|a, b| a.package.cmp(&b.package));
    guests
}

fn read_guest(dir: &Path) -> Guest {
    let path = dir.join("Cargo.toml");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let manifest: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let package = manifest
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(toml::Value::as_str)
        .unwrap_or_else(|| panic!("{}: no [package] name", path.display()))
        .to_string();
    // A `[[bin]]` guest (a wasi command, like the wrong-world fixture) is named after its binary;
    // a library guest after its (possibly renamed) lib target.
    let bin = manifest
        .get("bin")
        .and_then(toml::Value::as_array)
        .and_then(|bins| bins.first())
        .and_then(|bin| bin.get("name"))
        .and_then(toml::Value::as_str);
    let lib = manifest
        .get("lib")
        .and_then(|l| l.get("name"))
        .and_then(toml::Value::as_str);
    let artifact = match (bin, lib) {
        (Some(bin), _) => bin.to_string(),
        (None, Some(lib)) => lib.to_string(),
        (None, None) => package.replace('-', "_"),
    };
    Guest { package, artifact }
}

/// Make sure the standard library for `wasm32-wasip2` is installed, installing it with rustup
/// when possible.
fn ensure_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .expect("run rustc --print sysroot");
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .is_dir()
    {
        return;
    }
    let installed = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|status| status.success());
    if !installed {
        panic!(
            "the {TARGET} target is not installed for the toolchain at {sysroot} and \
             `rustup target add {TARGET}` failed; install it with `rustup target add {TARGET}` \
             (rust-toolchain.toml lists it, so a rustup-managed checkout gets it automatically)"
        );
    }
}

/// One nested `cargo build` of every guest.
fn build(workspace: &Path, target_dir: &Path, guests: &[Guest]) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--target", TARGET, "--profile", PROFILE])
        .arg("--target-dir")
        .arg(target_dir);
    for guest in guests {
        command.args(["-p", &guest.package]);
    }
    // The outer build's settings describe the host build (and, under clippy, wrap rustc in
    // clippy-driver); none of them may reach the wasm build.
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let scrub = (key.starts_with("CARGO") && key != "CARGO_HOME")
            || key.starts_with("__CARGO")
            || matches!(
                key,
                "RUSTFLAGS"
                    | "RUSTDOCFLAGS"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "RUSTC_BOOTSTRAP"
            );
        if scrub {
            command.env_remove(key);
        }
    }
    let status = command.status().expect("run the nested cargo build");
    assert!(
        status.success(),
        "building the plugins for {TARGET} failed ({status}); run \
         `cargo build --target {TARGET} --profile {PROFILE} -p <plugin>` for the compiler's message"
    );
}

fn check_component(path: &Path, package: &str) {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{package}: {}: {e}", path.display()));
    assert!(
        bytes.starts_with(&COMPONENT_MAGIC),
        "{package}: {} is a core wasm module, not a component",
        path.display()
    );
}
