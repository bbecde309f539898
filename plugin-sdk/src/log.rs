//! Logging to the daemon's log through the WIT `host.log` import.
//!
//! Use the crate-level macros (`readyd_plugin_sdk::info!("collected {n} entities")`) or these
//! functions. In a wasm build a line goes to the daemon, which tags it with the plugin's name and
//! rate-limits it; in a native build (unit tests) it goes to stderr, or into a
//! [`testing::LogCapture`](crate::testing::LogCapture) when one is installed. Never log secrets.

use std::fmt;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging information.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the plugin worked around.
    Warn,
    /// Something failed.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        })
    }
}

/// Write `message` at `level`.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::check::readyd::plugin::host;
        let level = match level {
            Level::Trace => host::Level::Trace,
            Level::Debug => host::Level::Debug,
            Level::Info => host::Level::Info,
            Level::Warn => host::Level::Warn,
            Level::Error => host::Level::Error,
        };
        host::log(level, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::record_log(level, message);
}

/// Write `message` at trace level.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Write `message` at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Write `message` at info level.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Write `message` at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Write `message` at error level.
pub fn error(message: &str) {
    log(Level::Error, message);
}

/// Log a formatted line at trace level: `trace!("x = {x}")`.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => { $crate::log::trace(&::std::format!($($arg)*)) };
}

/// Log a formatted line at debug level: `debug!("x = {x}")`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::debug(&::std::format!($($arg)*)) };
}

/// Log a formatted line at info level: `info!("collected {n} entities")`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::info(&::std::format!($($arg)*)) };
}

/// Log a formatted line at warn level: `warn!("retrying {url}")`.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::warn(&::std::format!($($arg)*)) };
}

/// Log a formatted line at error level: `error!("giving up on {url}")`.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::error(&::std::format!($($arg)*)) };
}
