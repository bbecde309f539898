//! Hot reload: watches the plugins, standards and catalog directories and asks the engine to
//! reload the part that changed.
//!
//! File events are debounced (notify-debouncer-full); one debounced batch becomes at most one
//! reload per part. Editors' swap and temporary files are ignored. Writers should write a new
//! file under a temporary name and rename it into place; for writers that do not, the watcher
//! waits until the changed files stop changing (same size and modification time twice in a
//! row) before reloading, and a parse failure is superseded by the next event rather than
//! left as final. A watcher error or queue overflow (`need_rescan`) triggers a full rescan.
//!
//! This module never parses a file itself: loading and validation belong to the engine.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};

use crate::engine::Engine;

/// Which directory a change belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    Plugins,
    Standards,
    Catalog,
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("watching {dir}: {source}")]
    Watch { dir: PathBuf, source: notify::Error },
}

/// Whether a file name is an editor's swap, backup or temporary file (never loaded).
pub fn is_ignored(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return true;
    };
    name.starts_with('.')
        || name.starts_with('#')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".swo")
        || name.ends_with(".tmp")
        || name.ends_with(".part")
        || name.ends_with(".crdownload")
        || name == "4913" // vim's write test file
}

/// Start watching. The returned task ends when the engine shuts down.
pub fn spawn(engine: Engine) -> Result<tokio::task::JoinHandle<()>, WatchError> {
    let config = engine.config().clone();
    let dirs: Vec<(Part, PathBuf)> = [
        (Part::Plugins, config.plugins_dir.clone()),
        (Part::Standards, config.standards_dir.clone()),
        (Part::Catalog, config.catalog_dir.clone()),
    ]
    .into_iter()
    .filter(|(_, d)| d.is_dir())
    .map(|(p, d)| (p, d.canonicalize().unwrap_or(d)))
    .collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<DebounceEventResult>();
    let debounce = Duration::from_millis(config.watch.debounce_ms.max(10));
    let mut debouncer = new_debouncer(debounce, Some(debounce / 4), move |result| {
        let _ = tx.send(result);
    })
    .map_err(|source| WatchError::Watch {
        dir: PathBuf::new(),
        source,
    })?;
    for (_, dir) in &dirs {
        debouncer
            .watch(dir, RecursiveMode::Recursive)
            .map_err(|source| WatchError::Watch {
                dir: dir.clone(),
                source,
            })?;
    }
    // Plugin manifests name wasm files that may live elsewhere (the demo's build output):
    // watch those files' directories too, so a rebuilt plugin is picked up.
    let mut extra: BTreeSet<PathBuf> = BTreeSet::new();
    for status in engine.plugins().status() {
        if let Some(p) = engine.plugins().get(&status.name)
            && let Some(parent) = p.manifest.wasm.parent()
            && !dirs.iter().any(|(_, d)| parent.starts_with(d))
        {
            extra.insert(parent.canonicalize().unwrap_or_else(|_| parent.to_owned()));
        }
    }
    for dir in &extra {
        if let Err(err) = debouncer.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %err, "cannot watch plugin wasm directory");
        }
    }
    let mut stop = engine.shutdown_signal();
    Ok(tokio::spawn(async move {
        // Keep the debouncer alive as long as the task runs.
        let _debouncer = debouncer;
        loop {
            let first = tokio::select! {
                r = rx.recv() => match r { Some(r) => r, None => return },
                _ = stop.changed() => return,
            };
            // Coalesce whatever else is already queued into this batch.
            let mut results = vec![first];
            while let Ok(more) = rx.try_recv() {
                results.push(more);
            }
            let mut parts = BTreeSet::new();
            let mut rescan = false;
            let mut changed_files = Vec::new();
            for result in results {
                match result {
                    Err(errors) => {
                        for e in errors {
                            tracing::warn!(error = %e, "file watcher error; rescanning everything");
                        }
                        rescan = true;
                    }
                    Ok(events) => {
                        for event in events {
                            if event.need_rescan() {
                                rescan = true;
                            }
                            if matches!(event.kind, EventKind::Access(_)) {
                                continue;
                            }
                            for path in &event.paths {
                                if is_ignored(path) {
                                    continue;
                                }
                                if let Some(part) = part_of(&dirs, &extra, path) {
                                    parts.insert(part);
                                    changed_files.push(path.clone());
                                }
                            }
                        }
                    }
                }
            }
            if rescan {
                let report = engine.reload_all("watcher rescan").await;
                log_report(&report);
                continue;
            }
            if parts.is_empty() {
                continue;
            }
            wait_until_settled(&changed_files).await;
            // A newer batch supersedes this one: reload once with everything.
            for part in parts {
                let report = match part {
                    Part::Plugins => engine.reload_plugins("file changed").await,
                    Part::Standards => engine.reload_standards("file changed").await,
                    Part::Catalog => engine.reload_catalog("file changed").await,
                };
                log_report(&report);
            }
        }
    }))
}

fn part_of(dirs: &[(Part, PathBuf)], extra: &BTreeSet<PathBuf>, path: &Path) -> Option<Part> {
    dirs.iter()
        .find(|(_, d)| path.starts_with(d))
        .map(|(p, _)| *p)
        .or_else(|| {
            extra
                .iter()
                .any(|d| path.starts_with(d))
                .then_some(Part::Plugins)
        })
}

/// Wait (at most a second) until the files stop changing: a writer that writes in place is
/// given time to finish before the file is parsed.
async fn wait_until_settled(files: &[PathBuf]) {
    fn fingerprint(files: &[PathBuf]) -> Vec<Option<(u64, std::time::SystemTime)>> {
        files
            .iter()
            .map(|f| {
                std::fs::metadata(f)
                    .ok()
                    .and_then(|m| Some((m.len(), m.modified().ok()?)))
            })
            .collect()
    }
    // The debouncer already saw the directory quiet for its whole interval; this catches a
    // writer that pauses longer than that in the middle of a file.
    let mut last = fingerprint(files);
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let now = fingerprint(files);
        if now == last {
            return;
        }
        last = now;
    }
}

fn log_report(report: &crate::engine::ReloadReport) {
    for line in &report.changes {
        tracing::info!("{line}");
    }
    for line in &report.errors {
        tracing::warn!("refused: {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_and_temp_files_are_ignored() {
        for name in [
            ".x.yaml.swp",
            "x.yaml~",
            "#x.yaml#",
            ".#x.yaml",
            "x.tmp",
            "4913",
            "x.yaml.part",
        ] {
            assert!(is_ignored(Path::new(name)), "{name}");
        }
        for name in ["x.yaml", "security.json", "git-repo.toml", "git_repo.wasm"] {
            assert!(!is_ignored(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn paths_map_to_their_part() {
        let dirs = vec![
            (Part::Plugins, PathBuf::from("/o/plugins")),
            (Part::Standards, PathBuf::from("/o/standards")),
        ];
        let extra = BTreeSet::from([PathBuf::from("/build")]);
        assert_eq!(
            part_of(&dirs, &extra, Path::new("/o/standards/scorecards/a.yaml")),
            Some(Part::Standards)
        );
        assert_eq!(
            part_of(&dirs, &extra, Path::new("/build/x.wasm")),
            Some(Part::Plugins)
        );
        assert_eq!(part_of(&dirs, &extra, Path::new("/else/x")), None);
    }
}
