//! The sandbox of one plugin instance: the `T` of its `Store<T>`.
//!
//! [`HostState`] holds the WASI context (no environment, no arguments, no sockets, no files
//! except the manifest's read-only `dirs`), the wasi-http context with the [`Egress`] allow
//! list, the [`PluginLimits`] resource limiter (memory cap, out-of-memory recorded so it is
//! reported as such), and the [`GuestLog`]: the `host.log` import and the guest's
//! stdout/stderr, forwarded to tracing with a line budget per call, long lines truncated, and
//! secret values redacted. [`SandboxSpec`] is what every instance of one plugin shares.
//!
//! This module must never grant anything the manifest does not name, and never let guest
//! output reach the log unbounded.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Result as WasmResult};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::plugin::bindings::host;
use crate::plugin::egress::Egress;
use crate::plugin::manifest::{DirGrant, HttpGrant};

/// Longest log line kept; the rest is cut (on a character boundary) and marked.
const MAX_LINE_BYTES: usize = 2048;

/// Where guest lines go in the daemon's log (`RUST_LOG=readyd::plugin::guest=debug`).
pub const GUEST_LOG_TARGET: &str = "readyd::plugin::guest";

/// What every instance of one plugin shares.
pub(crate) struct SandboxSpec {
    pub(crate) plugin: Arc<str>,
    pub(crate) http: Arc<[HttpGrant]>,
    pub(crate) dirs: Vec<DirGrant>,
    pub(crate) memory_bytes: usize,
    pub(crate) max_log_lines: usize,
    /// Secret values to blank out of guest output (a plugin may echo its config).
    pub(crate) secret_values: Vec<String>,
    /// Guest log lines dropped over the budget since load (reported in the status).
    pub(crate) log_lines_dropped: AtomicU64,
    /// How allowed requests are sent.
    pub(crate) net: crate::net::Net,
}

impl SandboxSpec {
    /// `text` with every secret value of the plugin blanked out. Applied to everything the
    /// daemon shows or logs on a plugin's behalf: log lines, error texts, messages.
    pub(crate) fn redact<'a>(&self, text: std::borrow::Cow<'a, str>) -> std::borrow::Cow<'a, str> {
        let mut text = text;
        for secret in &self.secret_values {
            if !secret.is_empty() && text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "[redacted]").into();
            }
        }
        text
    }
}

/// The data of a plugin's `Store`.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    egress: Egress,
    pub(crate) limits: PluginLimits,
    log: Arc<Mutex<GuestLog>>,
}

impl HostState {
    pub(crate) fn new(spec: &Arc<SandboxSpec>) -> Result<HostState, String> {
        let log = Arc::new(Mutex::new(GuestLog::new(spec.clone())));
        let mut wasi = WasiCtxBuilder::new();
        // The builder's defaults already grant no env, args, preopens or addresses; sockets
        // are switched off outright so that no later default change can open them.
        wasi.stdout(GuestOutput {
            log: log.clone(),
            stream: Stream::Stdout,
        })
        .stderr(GuestOutput {
            log: log.clone(),
            stream: Stream::Stderr,
        })
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
        for dir in &spec.dirs {
            wasi.preopened_dir(&dir.host, &dir.guest, FsPerms::ReadOnly)
                .map_err(|e| format!("cannot open {}: {e}", dir.host.display()))?;
        }
        Ok(HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            egress: Egress::new(spec.plugin.clone(), spec.http.clone(), spec.net.clone()),
            limits: PluginLimits::new(spec.memory_bytes),
            log,
        })
    }

    /// Start a call that must end by `deadline`: HTTP budgets and the log budget restart.
    pub(crate) fn begin_call(&mut self, deadline: Instant) {
        self.egress.deadline = deadline;
        self.guest_log().begin_call();
    }

    /// End of a call: flush partial output lines and report what was dropped.
    pub(crate) fn end_call(&mut self) {
        self.guest_log().end_call();
    }

    /// The current call's deadline (read by the epoch callback).
    pub(crate) fn deadline(&self) -> Instant {
        self.egress.deadline
    }

    fn guest_log(&self) -> MutexGuard<'_, GuestLog> {
        // A poisoned lock only means a panic while logging; the data is still usable.
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

impl host::Host for HostState {
    fn log(&mut self, level: host::Level, message: String) {
        self.guest_log().line(Stream::Log(level), &message);
    }
}

/// Memory and table limits of one store; remembers that memory was refused so the failure is
/// reported as out-of-memory whatever the guest does next (trap, abort, garbage).
pub(crate) struct PluginLimits {
    memory_bytes: usize,
    pub(crate) memory_refused: bool,
}

/// Core instances, tables and memories one component may create (a Rust wasip2 component
/// has a handful); a component needing more is refused at instantiation.
const MAX_INSTANCES: usize = 32;
const MAX_TABLES: usize = 32;
const MAX_MEMORIES: usize = 8;
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl PluginLimits {
    fn new(memory_bytes: usize) -> PluginLimits {
        PluginLimits {
            memory_bytes,
            memory_refused: false,
        }
    }
}

impl ResourceLimiter for PluginLimits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> WasmResult<bool> {
        if desired > self.memory_bytes {
            self.memory_refused = true;
            // Trap rather than let `memory.grow` return -1: a Rust guest would abort with an
            // anonymous `unreachable`, hiding the cause.
            wasmtime::bail!("memory limit of {} bytes reached", self.memory_bytes);
        }
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> WasmResult<()> {
        self.memory_refused = true;
        Err(error)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> WasmResult<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Log(host::Level),
    Stdout,
    Stderr,
}

/// Guest output on its way to tracing, bounded per call.
struct GuestLog {
    spec: Arc<SandboxSpec>,
    lines_left: usize,
    dropped: u64,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl GuestLog {
    fn new(spec: Arc<SandboxSpec>) -> GuestLog {
        let lines_left = spec.max_log_lines;
        GuestLog {
            spec,
            lines_left,
            dropped: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    fn begin_call(&mut self) {
        self.lines_left = self.spec.max_log_lines;
        self.dropped = 0;
    }

    fn end_call(&mut self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let buf = std::mem::take(self.buffer(stream));
            if !buf.is_empty() {
                self.line(stream, &String::from_utf8_lossy(&buf));
            }
        }
        if self.dropped > 0 {
            self.spec
                .log_lines_dropped
                .fetch_add(self.dropped, Ordering::Relaxed);
            tracing::warn!(
                target: GUEST_LOG_TARGET,
                plugin = %self.spec.plugin,
                dropped = self.dropped,
                "plugin log lines dropped: over the budget of {} lines per call",
                self.spec.max_log_lines,
            );
            self.dropped = 0;
        }
    }

    fn buffer(&mut self, stream: Stream) -> &mut Vec<u8> {
        match stream {
            Stream::Stderr => &mut self.stderr,
            _ => &mut self.stdout,
        }
    }

    /// Bytes written to stdout/stderr: complete lines are logged, a partial one is kept.
    fn write(&mut self, stream: Stream, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.lines_left == 0 {
                // Over budget: count what would have been lines, keep nothing.
                self.dropped += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
                self.buffer(stream).clear();
                return;
            }
            match bytes.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    let mut line = std::mem::take(self.buffer(stream));
                    line.extend_from_slice(&bytes[..end]);
                    self.line(stream, &String::from_utf8_lossy(&line));
                    bytes = &bytes[end + 1..];
                }
                None => {
                    let buf = self.buffer(stream);
                    let room = MAX_LINE_BYTES.saturating_sub(buf.len());
                    buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
                    if buf.len() >= MAX_LINE_BYTES {
                        let line = std::mem::take(buf);
                        self.line(stream, &String::from_utf8_lossy(&line));
                    }
                    return;
                }
            }
        }
    }

    fn line(&mut self, stream: Stream, text: &str) {
        if self.lines_left == 0 {
            self.dropped += 1;
            return;
        }
        self.lines_left -= 1;
        let text = self
            .spec
            .redact(truncate(text.trim_end_matches('\r'), MAX_LINE_BYTES));
        let plugin = &*self.spec.plugin;
        use host::Level;
        match stream {
            Stream::Log(Level::Trace) => {
                tracing::trace!(target: GUEST_LOG_TARGET, plugin, "{text}")
            }
            Stream::Log(Level::Debug) => {
                tracing::debug!(target: GUEST_LOG_TARGET, plugin, "{text}")
            }
            Stream::Log(Level::Info) => tracing::info!(target: GUEST_LOG_TARGET, plugin, "{text}"),
            Stream::Log(Level::Warn) => tracing::warn!(target: GUEST_LOG_TARGET, plugin, "{text}"),
            Stream::Log(Level::Error) => {
                tracing::error!(target: GUEST_LOG_TARGET, plugin, "{text}")
            }
            Stream::Stdout => {
                tracing::info!(target: GUEST_LOG_TARGET, plugin, stream = "stdout", "{text}")
            }
            Stream::Stderr => {
                tracing::warn!(target: GUEST_LOG_TARGET, plugin, stream = "stderr", "{text}")
            }
        }
    }
}

fn truncate(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [truncated {} bytes]", &text[..end], text.len() - end).into()
}

/// The guest's stdout or stderr.
struct GuestOutput {
    log: Arc<Mutex<GuestLog>>,
    stream: Stream,
}

impl GuestOutput {
    fn write(&self, bytes: &[u8]) {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write(self.stream, bytes);
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(GuestOutput {
            log: self.log.clone(),
            stream: self.stream,
        })
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(GuestOutput {
            log: self.log.clone(),
            stream: self.stream,
        })
    }
}

/// Always ready, never blocks: output is consumed synchronously into the bounded log.
#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

/// How much the guest may write in one `write` call.
const WRITE_PERMIT: usize = 64 * 1024;

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        GuestOutput::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        GuestOutput::write(&self, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(max_log_lines: usize) -> Arc<SandboxSpec> {
        Arc::new(SandboxSpec {
            plugin: "p".into(),
            http: Arc::from(Vec::new()),
            dirs: Vec::new(),
            memory_bytes: 1 << 20,
            max_log_lines,
            secret_values: vec!["s3cr3t".into()],
            log_lines_dropped: AtomicU64::new(0),
            net: crate::net::Net::system(),
        })
    }

    #[test]
    fn output_is_split_into_lines_and_bounded_per_call() {
        let spec = spec(3);
        let mut log = GuestLog::new(spec.clone());
        log.begin_call();
        log.write(Stream::Stdout, b"one\ntw");
        log.write(Stream::Stdout, b"o\nthree\nfour\nfive\n");
        log.end_call();
        assert_eq!(spec.log_lines_dropped.load(Ordering::Relaxed), 2);
        // The budget restarts with each call.
        log.begin_call();
        log.line(Stream::Log(host::Level::Info), "again");
        log.end_call();
        assert_eq!(spec.log_lines_dropped.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn endless_lines_without_newline_are_cut() {
        let spec = spec(1000);
        let mut log = GuestLog::new(spec.clone());
        log.begin_call();
        for _ in 0..100 {
            log.write(Stream::Stderr, &[b'x'; 1000]);
        }
        assert!(
            log.stderr.len() < MAX_LINE_BYTES,
            "partial line buffer must stay bounded"
        );
        log.end_call();
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let text = "é".repeat(2000);
        let cut = truncate(&text, 2047);
        assert!(cut.contains("[truncated"));
        assert!(truncate("short", 10) == "short");
    }
}
