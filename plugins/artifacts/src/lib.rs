//! Paths of the compiled plugin components, for tests, benchmarks and examples.
//!
//! Building this crate compiles every plugin under `plugins/` and every fixture under
//! `plugins/fixtures/` for `wasm32-wasip2` (see `build.rs`), into
//! `<workspace>/target/plugins/wasm32-wasip2/wasm/` (the `wasm` cargo profile of the root
//! `Cargo.toml`). Each component gets a constant named
//! after its package in upper case: `REPO_SCAN` for `repo-scan`, `FIXTURE_NOOP_CHECK` for
//! `fixture-noop-check`; [`ALL`] lists them all and [`PLUGINS_DIR`] is their directory. The
//! constants are absolute paths; this crate has no code besides them.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_artifact_is_a_component_in_the_plugins_dir() {
        assert!(ALL.iter().any(|(name, _)| *name == "fixture-noop-check"));
        for (name, path) in ALL {
            let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{name}: {path}: {e}"));
            assert_eq!(
                &bytes[..8],
                b"\0asm\x0d\x00\x01\x00",
                "{name} is not a component"
            );
            assert!(path.starts_with(PLUGINS_DIR), "{name}: {path}");
        }
    }
}
