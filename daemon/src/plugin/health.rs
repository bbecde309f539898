//! The circuit breaker of one loaded plugin, and its counters.
//!
//! [`Health`] counts calls and failures and decides [`PluginState`]: `active`; `failed` (the
//! last call failed through the plugin's fault); `parked` after `park_after` consecutive
//! faults, when calls are refused without running. A parked plugin gets one trial call after
//! `retry_after`: success closes the breaker, a fault parks it again. A guest's own
//! `plugin-error` (e.g. `unavailable`) is an expected failure: it is reported as the last error
//! but is not a fault, so it neither counts toward parking nor keeps the breaker open.
//!
//! The success path is two relaxed atomic operations; the lock is taken only after a failure.
//! This module must never block a call on anything slower than that lock.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::model::Timestamp;
use crate::plugin::error::PluginError;

/// Where a plugin stands.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PluginState {
    /// Loaded and answering.
    Active,
    /// Not usable, or its last call failed through its own fault: why, and when.
    Failed { reason: String, at: Timestamp },
    /// Refused without running since `since`, after `failures` consecutive faults.
    Parked { failures: u32, since: Timestamp },
}

pub(crate) struct Health {
    park_after: AtomicU32,
    retry_after: Duration,
    calls: AtomicU64,
    failures: AtomicU64,
    consecutive: AtomicU32,
    parked: AtomicBool,
    /// Set whenever `detail` holds something a success must clear; spares the lock otherwise.
    dirty: AtomicBool,
    detail: Mutex<Detail>,
}

#[derive(Default)]
struct Detail {
    last_error: Option<(String, Timestamp)>,
    last_call_failed: bool,
    parked_since: Option<(Timestamp, Instant)>,
    probing: bool,
}

/// Counters for the status report.
pub(crate) struct HealthReport {
    pub(crate) state: PluginState,
    pub(crate) last_error: Option<String>,
    pub(crate) calls: u64,
    pub(crate) failures: u64,
}

impl Health {
    pub(crate) fn new(park_after: u32, retry_after: Duration) -> Health {
        Health {
            park_after: AtomicU32::new(park_after.max(1)),
            retry_after,
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            consecutive: AtomicU32::new(0),
            parked: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
            detail: Mutex::new(Detail::default()),
        }
    }

    /// Change the number of consecutive faults that parks the plugin.
    pub(crate) fn set_park_after(&self, park_after: u32) {
        self.park_after.store(park_after.max(1), Ordering::Relaxed);
    }

    fn detail(&self) -> MutexGuard<'_, Detail> {
        self.detail.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// May a call run now? A parked plugin is refused, except for one trial call once
    /// `retry_after` has passed.
    pub(crate) fn admit(&self, plugin: &str) -> Result<(), PluginError> {
        if !self.parked.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut detail = self.detail();
        match detail.parked_since {
            Some((_, at)) if !detail.probing && at.elapsed() >= self.retry_after => {
                detail.probing = true;
                Ok(())
            }
            Some(_) => Err(PluginError::Parked {
                plugin: plugin.to_string(),
                failures: self.consecutive.load(Ordering::Relaxed),
            }),
            // Unparked between the flag and the lock.
            None => Ok(()),
        }
    }

    /// Record the outcome of a call that was admitted and ran.
    pub(crate) fn record(&self, plugin: &str, result: Result<(), &PluginError>) {
        match result {
            Err(PluginError::Parked { .. } | PluginError::Capacity { .. }) => {}
            Err(e) if e.is_plugin_fault() => {
                self.calls.fetch_add(1, Ordering::Relaxed);
                self.fault(plugin, e);
            }
            Err(e) => {
                self.calls.fetch_add(1, Ordering::Relaxed);
                self.healthy(plugin);
                let mut detail = self.detail();
                detail.last_error = Some((e.to_string(), chrono::Utc::now()));
            }
            Ok(()) => {
                self.calls.fetch_add(1, Ordering::Relaxed);
                self.healthy(plugin);
            }
        }
    }

    fn healthy(&self, plugin: &str) {
        // Read before writing: calls on every core record successes of the same plugin, and a
        // store on every call would move the counter's cache line between them.
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
        if self.dirty.load(Ordering::Acquire) {
            let mut detail = self.detail();
            detail.last_call_failed = false;
            detail.probing = false;
            if detail.parked_since.take().is_some() {
                tracing::info!(plugin, "plugin unparked after a successful trial call");
            }
            self.parked.store(false, Ordering::Release);
            self.dirty.store(false, Ordering::Release);
        }
    }

    fn fault(&self, plugin: &str, error: &PluginError) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let consecutive = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        let now = chrono::Utc::now();
        let mut detail = self.detail();
        detail.last_error = Some((error.to_string(), now));
        detail.last_call_failed = true;
        self.dirty.store(true, Ordering::Release);
        if consecutive >= self.park_after.load(Ordering::Relaxed) || detail.probing {
            if detail.parked_since.is_none() {
                tracing::warn!(plugin, consecutive, error = %error, "plugin parked");
            }
            detail.parked_since = Some((now, Instant::now()));
            detail.probing = false;
            self.parked.store(true, Ordering::Release);
        }
    }

    pub(crate) fn report(&self) -> HealthReport {
        let detail = self.detail();
        let consecutive = self.consecutive.load(Ordering::Relaxed);
        let state = match (&detail.parked_since, &detail.last_error) {
            (Some((since, _)), _) => PluginState::Parked {
                failures: consecutive,
                since: *since,
            },
            (None, Some((reason, at))) if detail.last_call_failed => PluginState::Failed {
                reason: reason.clone(),
                at: *at,
            },
            _ => PluginState::Active,
        };
        HealthReport {
            state,
            last_error: detail.last_error.as_ref().map(|(e, _)| e.clone()),
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trap() -> PluginError {
        PluginError::Trap {
            plugin: "p".into(),
            reason: "unreachable".into(),
        }
    }

    #[test]
    fn parks_after_n_consecutive_faults_and_refuses() {
        let h = Health::new(3, Duration::from_secs(3600));
        h.record("p", Err(&trap()));
        h.record("p", Ok(()));
        h.record("p", Err(&trap()));
        h.record("p", Err(&trap()));
        assert!(h.admit("p").is_ok(), "two in a row is not three");
        assert!(matches!(h.report().state, PluginState::Failed { .. }));
        h.record("p", Err(&trap()));
        assert_eq!(
            h.admit("p"),
            Err(PluginError::Parked {
                plugin: "p".into(),
                failures: 3
            })
        );
        let report = h.report();
        assert!(matches!(
            report.state,
            PluginState::Parked { failures: 3, .. }
        ));
        assert_eq!((report.calls, report.failures), (5, 4));
    }

    #[test]
    fn guest_errors_do_not_count_toward_parking() {
        let h = Health::new(2, Duration::from_secs(3600));
        let unavailable = PluginError::Plugin {
            plugin: "p".into(),
            error: "unavailable: x".into(),
        };
        for _ in 0..5 {
            h.record("p", Err(&unavailable));
        }
        assert!(h.admit("p").is_ok());
        let report = h.report();
        assert_eq!(report.state, PluginState::Active);
        assert_eq!(
            report.last_error.as_deref(),
            Some("plugin `p`: unavailable: x")
        );
    }

    #[test]
    fn a_trial_call_after_the_cooldown_closes_or_reopens_the_breaker() {
        let h = Health::new(1, Duration::ZERO);
        h.record("p", Err(&trap()));
        assert!(h.admit("p").is_ok(), "cooldown over: one trial");
        assert!(h.admit("p").is_err(), "only one trial at a time");
        h.record("p", Err(&trap()));
        assert!(matches!(h.report().state, PluginState::Parked { .. }));
        assert!(h.admit("p").is_ok());
        h.record("p", Ok(()));
        assert_eq!(h.report().state, PluginState::Active);
        assert!(h.admit("p").is_ok() && h.admit("p").is_ok());
    }
}
