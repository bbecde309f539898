//! The on-disk cache of compiled plugins.
//!
//! Compiling a component takes tens of milliseconds; loading the precompiled artifact takes a
//! fraction of one. [`ArtifactCache`] keys an artifact by the SHA-256 of the wasm and the
//! engine's `precompile_compatibility_hash()` (a new wasmtime or other engine settings miss the
//! cache instead of loading incompatible code), writes it under a temporary name and renames it
//! into place (a reader never sees half a file; a mapped file is never rewritten), and prunes
//! artifacts of other engines when it opens.
//!
//! Loading an artifact is `unsafe` in wasmtime: it is machine code. This module must never load
//! a file it did not write itself: only `<key>.cwasm` files in its own directory, created with
//! owner-only permissions.

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const EXTENSION: &str = "cwasm";

pub(crate) struct ArtifactCache {
    dir: PathBuf,
    /// Hex digest of the engine's compatibility hash: the suffix of every artifact name.
    engine_key: String,
}

impl ArtifactCache {
    /// Open (creating it if needed) a cache directory for `engine`.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> std::io::Result<ArtifactCache> {
        create_private_dir(dir)?;
        let mut hasher = Sha256Hasher(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..8]);
        let cache = ArtifactCache {
            dir: dir.to_path_buf(),
            engine_key,
        };
        cache.prune();
        Ok(cache)
    }

    fn path_for(&self, wasm_sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{wasm_sha256}-{}.{EXTENSION}", self.engine_key))
    }

    /// The compiled component for `wasm` (whose SHA-256 hex is `wasm_sha256`), and whether it
    /// came from the cache. Blocking: call from a blocking thread.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        wasm_sha256: &str,
    ) -> Result<(Component, bool), String> {
        let path = self.path_for(wasm_sha256);
        if path.is_file() {
            match load_own_artifact(engine, &path) {
                Ok(component) => return Ok((component, true)),
                Err(e) => {
                    // Corrupt or truncated by a crash: recompile over it.
                    tracing::warn!(path = %path.display(), error = %e, "discarding unreadable plugin artifact");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let artifact = engine
            .precompile_component(wasm)
            .map_err(|e| format!("{e:#}"))?;
        self.store(&path, &artifact)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let component = load_own_artifact(engine, &path).map_err(|e| format!("{e:#}"))?;
        Ok((component, false))
    }

    /// Write to a temporary file in the same directory, then rename: atomic for readers, and
    /// an artifact that another process has mapped is replaced, never modified.
    fn store(&self, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!(".tmp-{}-{n}", std::process::id()));
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            file.write_all(artifact)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// Remove artifacts of other engines and temporaries left by a crash.
    fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let suffix = format!("-{}.{EXTENSION}", self.engine_key);
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let stale = name.starts_with(".tmp-")
                || (name.ends_with(&format!(".{EXTENSION}")) && !name.ends_with(&suffix));
            if stale {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Map a precompiled artifact that this process (or an earlier run of it) wrote.
#[allow(unsafe_code)]
fn load_own_artifact(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `path` is a `<sha256>-<engine>.cwasm` file inside the cache directory, which
    // the daemon created owner-only and into which it writes only the output of
    // `Engine::precompile_component` (temporary file + rename, never rewritten in place).
    // wasmtime additionally checks the artifact's header against this engine's settings.
    if std::env::var_os("READYD_WASM_PERFMAP").is_some_and(|v| v == "1") {
        // Profiling (see `PluginHost`): code copied into anonymous memory, which the perf map
        // names; a file mapping would be attributed to the file.
        let bytes = std::fs::read(path)?;
        // SAFETY: as below, the same file's bytes.
        return unsafe { Component::deserialize(engine, &bytes) };
    }
    unsafe { Component::deserialize_file(engine, path) }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Feeds `Hash` output into SHA-256, for a digest that is stable across processes (unlike
/// `DefaultHasher`, which is only stable within one build).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// SHA-256 of `bytes`, lower-case hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The short form of a wasm hash shown as a plugin's version.
pub(crate) fn short_version(sha256_hex: &str) -> String {
    sha256_hex[..12.min(sha256_hex.len())].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_prunes_other_engines_artifacts_and_crash_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let cache = ArtifactCache::open(dir.path(), &engine).unwrap();
        let ours = cache.path_for(&sha256_hex(b"wasm"));
        std::fs::write(&ours, b"x").unwrap();
        std::fs::write(dir.path().join("abc-0123456789abcdef.cwasm"), b"x").unwrap();
        std::fs::write(dir.path().join(".tmp-1-2"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();

        ArtifactCache::open(dir.path(), &engine).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let ours = ours.file_name().unwrap().to_string_lossy().into_owned();
        let mut expected = vec!["notes.txt".to_string(), ours];
        expected.sort();
        assert_eq!(left, expected);
    }

    #[test]
    fn the_engine_key_is_stable_and_names_artifacts() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let a = ArtifactCache::open(dir.path(), &engine).unwrap();
        let b = ArtifactCache::open(dir.path(), &Engine::default()).unwrap();
        assert_eq!(a.engine_key, b.engine_key);
        let name = a
            .path_for("f00d")
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(name, format!("f00d-{}.cwasm", a.engine_key));
        assert_eq!(short_version(&sha256_hex(b"")), "e3b0c44298fc");
    }
}
