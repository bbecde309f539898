//! Outgoing connections: the only code in readyd that opens one. Outbox delivery (Slack, Teams,
//! webhooks), `readyd gate` and the plugins' `wasi:http` egress all connect through [`Net`].
//!
//! [`Net`] speaks `http://` and `https://` (rustls with ring, HTTP/1.1), verifies certificates
//! against the operating system's roots plus the optional PEM bundle `tls_ca_file`
//! ([`tls`]), and goes through the proxies of a [`ProxySettings`] ([`proxy`]): a CONNECT tunnel
//! for `https://` targets, absolute-form requests for `http://` ones, `NO_PROXY` honoured.
//! [`Net::connect`] opens one connection (the plugins' egress drives it itself, with its own
//! timeouts); [`Net::client`] is a pooled hyper client over the same connector (delivery, the
//! gate client). Failures are a [`NetError`] that says what the operator must fix (unknown CA,
//! wrong name, expired, refused, timeout) and names only the host and port.
//!
//! [`redact`] turns a URL into scheme + host[:port]: chat webhook URLs carry their credential in
//! the path, so every place that shows a channel URL (errors, dead letters, logs) shows it
//! through [`redact`] or [`redact_text`].
//!
//! This module must never switch certificate verification off (there is no option for it),
//! never decide *whether* a request may go (the plugin host's allow list and the channel
//! configuration do), and never put a URL's path, query or user information in an error.

pub mod proxy;
pub(crate) mod tls;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use http::uri::Scheme;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection as LegacyConnection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub use proxy::{NoProxy, ProxyError, ProxySettings, ProxyUrl};

/// Connect timeout of [`Net::client`]'s connections (the caller bounds the whole exchange too).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle pooled connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest CONNECT response head read from a proxy.
const PROXY_HEAD_LIMIT: usize = 16 * 1024;

/// Why a connection could not be made. Names hosts and ports only, never a path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    #[error("{url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot resolve {host}: {reason}")]
    Dns { host: String, reason: String },
    #[error("connection to {target} refused")]
    Refused { target: String },
    #[error("no connection to {target} within {timeout_ms} ms")]
    Timeout { target: String, timeout_ms: u64 },
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error(
        "TLS: the certificate of {host} is not signed by a trusted CA (unknown CA; add the CA to tls_ca_file)"
    )]
    UnknownCa { host: String },
    #[error("TLS: the certificate of {host} is not valid for that name (name mismatch)")]
    NameMismatch { host: String },
    #[error("TLS: the certificate of {host} has expired")]
    Expired { host: String },
    #[error("TLS: the certificate of {host} is not usable: {reason}")]
    Certificate { host: String, reason: String },
    #[error("TLS handshake with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("proxy {proxy}: {reason}")]
    Proxy { proxy: String, reason: String },
    #[error("tls_ca_file {file}: {reason}")]
    CaFile { file: String, reason: String },
}

impl NetError {
    /// A short, stable name of the failure (for logs and metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            NetError::BadUrl { .. } => "bad_url",
            NetError::Dns { .. } => "dns",
            NetError::Refused { .. } => "refused",
            NetError::Timeout { .. } => "timeout",
            NetError::Connect { .. } => "connect",
            NetError::UnknownCa { .. } => "unknown_ca",
            NetError::NameMismatch { .. } => "name_mismatch",
            NetError::Expired { .. } => "expired",
            NetError::Certificate { .. } => "certificate",
            NetError::Tls { .. } => "tls",
            NetError::Proxy { .. } => "proxy",
            NetError::CaFile { .. } => "ca_file",
        }
    }

    /// The first [`NetError`] in `error`'s source chain (hyper's client wraps the connector's).
    pub fn find<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e NetError> {
        let mut current = Some(error);
        while let Some(e) = current {
            if let Some(net) = e.downcast_ref::<NetError>() {
                return Some(net);
            }
            current = e.source();
        }
        None
    }
}

/// The outgoing side of readyd: trusted roots and proxies. Cheap to clone.
#[derive(Clone)]
pub struct Net {
    inner: Arc<Inner>,
}

struct Inner {
    tls: TlsConnector,
    proxy: ProxySettings,
    ca_file: Option<PathBuf>,
}

impl fmt::Debug for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Net")
            .field("ca_file", &self.inner.ca_file)
            .field("proxy", &self.inner.proxy)
            .finish_non_exhaustive()
    }
}

impl Net {
    /// Trust the system's roots plus every certificate in `ca_file`; go through `proxy`.
    pub fn new(ca_file: Option<&Path>, proxy: ProxySettings) -> Result<Net, NetError> {
        let config = tls::client_config(ca_file)?;
        Ok(Net {
            inner: Arc::new(Inner {
                tls: TlsConnector::from(Arc::new(config)),
                proxy,
                ca_file: ca_file.map(Path::to_path_buf),
            }),
        })
    }

    /// The daemon's: `tls_ca_file` and the proxy settings read with the configuration.
    pub fn from_config(config: &crate::config::Config) -> Result<Net, NetError> {
        Net::new(config.tls_ca_file.as_deref(), config.proxy.clone())
    }

    /// System roots only, no proxy (tools and tests that need nothing else).
    pub fn system() -> Net {
        Net::new(None, ProxySettings::direct()).expect("the system roots need no file")
    }

    pub fn proxy_settings(&self) -> &ProxySettings {
        &self.inner.proxy
    }

    /// One connection to `target`'s scheme, host and port (through a proxy when the settings
    /// say so), TLS-verified for `https`. `timeout` bounds each step (TCP, CONNECT, handshake).
    pub async fn connect(&self, target: &Uri, timeout: Duration) -> Result<Connection, NetError> {
        let (https, host, port) = parts(target)?;
        let authority = proxy::join_host_port(&host, port);
        let proxy = self.inner.proxy.for_target(https, &host).cloned();
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let bounded = |target: String| move |_| NetError::Timeout { target, timeout_ms };
        let tcp = match &proxy {
            Some(p) => {
                let shown = p.to_string();
                tokio::time::timeout(timeout, tcp_connect(&p.host, p.port))
                    .await
                    .map_err(bounded(format!("proxy {shown}")))?
                    .map_err(|e| NetError::Proxy {
                        proxy: shown,
                        reason: e.to_string(),
                    })?
            }
            None => tokio::time::timeout(timeout, tcp_connect(&host, port))
                .await
                .map_err(bounded(authority.clone()))??,
        };
        let _ = tcp.set_nodelay(true);
        let (tcp, via_proxy) = match (&proxy, https) {
            (Some(p), true) => {
                let tunnel = tokio::time::timeout(timeout, connect_tunnel(tcp, p, &authority))
                    .await
                    .map_err(bounded(format!("{authority} via proxy {p}")))??;
                (tunnel, false)
            }
            (Some(_), false) => (tcp, true),
            (None, _) => (tcp, false),
        };
        if !https {
            return Ok(Connection {
                io: TokioIo::new(Stream::Plain(tcp)),
                via_proxy,
            });
        }
        let name = server_name(&host)?;
        let tls = tokio::time::timeout(timeout, self.inner.tls.connect(name, tcp))
            .await
            .map_err(bounded(authority.clone()))?
            .map_err(|e| tls::classify_handshake(&authority, &e))?;
        Ok(Connection {
            io: TokioIo::new(Stream::Tls(Box::new(tls))),
            via_proxy: false,
        })
    }

    /// A pooled HTTP/1.1 client whose connections come from [`Net::connect`]. The `Host`
    /// header is set from the request's URI; redirects are not followed.
    pub fn client<B>(&self) -> HttpClient<B>
    where
        B: hyper::body::Body + Send + 'static + Unpin,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(Connector {
                net: self.clone(),
                timeout: CONNECT_TIMEOUT,
            })
    }
}

/// The pooled client of [`Net::client`].
pub type HttpClient<B> = Client<Connector, B>;

/// `(https, host without brackets, port)` of an absolute `http(s)://` URI.
fn parts(target: &Uri) -> Result<(bool, String, u16), NetError> {
    let bad = |reason: &str| NetError::BadUrl {
        url: redact(&target.to_string()),
        reason: reason.to_owned(),
    };
    let https = match target.scheme() {
        Some(s) if *s == Scheme::HTTPS => true,
        Some(s) if *s == Scheme::HTTP => false,
        _ => return Err(bad("the scheme must be http or https")),
    };
    let authority = target.authority().ok_or_else(|| bad("no host"))?;
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    Ok((https, host.to_ascii_lowercase(), port))
}

fn server_name(host: &str) -> Result<ServerName<'static>, NetError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::from(ip));
    }
    ServerName::try_from(host.to_owned()).map_err(|e| NetError::BadUrl {
        url: host.to_owned(),
        reason: format!("not a valid TLS server name: {e}"),
    })
}

/// TCP to `host:port`, resolving first so a name that does not resolve says so.
async fn tcp_connect(host: &str, port: u16) -> Result<TcpStream, NetError> {
    let target = proxy::join_host_port(host, port);
    let addrs: Vec<std::net::SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![(ip, port).into()],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| NetError::Dns {
                host: host.to_owned(),
                reason: e.to_string(),
            })?
            .collect(),
    };
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) if e.kind() == io::ErrorKind::ConnectionRefused => NetError::Refused { target },
        Some(e) => NetError::Connect {
            target,
            reason: e.to_string(),
        },
        None => NetError::Dns {
            host: host.to_owned(),
            reason: "no address".into(),
        },
    })
}

/// `CONNECT authority` through the proxy on `tcp`; the stream is the tunnel once it answers 2xx.
async fn connect_tunnel(
    mut tcp: TcpStream,
    proxy: &ProxyUrl,
    authority: &str,
) -> Result<TcpStream, NetError> {
    let failed = |reason: String| NetError::Proxy {
        proxy: proxy.to_string(),
        reason,
    };
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = proxy.authorization() {
        head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes())
        .await
        .map_err(|e| failed(format!("cannot send CONNECT: {e}")))?;
    // Read byte by byte up to the end of the head: nothing of the tunnel may be consumed.
    let mut answer = Vec::with_capacity(256);
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() >= PROXY_HEAD_LIMIT {
            return Err(failed("its CONNECT answer is too large".into()));
        }
        let mut byte = [0u8; 1];
        let n = tcp
            .read(&mut byte)
            .await
            .map_err(|e| failed(format!("reading its CONNECT answer: {e}")))?;
        if n == 0 {
            return Err(failed(
                "closed the connection before answering CONNECT".into(),
            ));
        }
        answer.push(byte[0]);
    }
    let status_line = String::from_utf8_lossy(&answer);
    let status_line = status_line.lines().next().unwrap_or_default();
    let code = status_line.split_whitespace().nth(1).unwrap_or_default();
    if !code.starts_with('2') || code.len() != 3 {
        return Err(failed(format!(
            "refused CONNECT to {authority}: {}",
            status_line.chars().take(120).collect::<String>()
        )));
    }
    Ok(tcp)
}

/// A TCP or TLS stream.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One open connection, ready for HTTP/1.1 (hyper's IO traits).
pub struct Connection {
    io: TokioIo<Stream>,
    via_proxy: bool,
}

impl Connection {
    /// Whether requests on it go to an HTTP proxy, and so must be in absolute form.
    pub fn via_proxy(&self) -> bool {
        self.via_proxy
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("via_proxy", &self.via_proxy)
            .finish_non_exhaustive()
    }
}

impl hyper::rt::Read for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl LegacyConnection for Connection {
    fn connected(&self) -> Connected {
        // `proxy(true)` makes hyper write absolute-form request targets.
        Connected::new().proxy(self.via_proxy)
    }
}

/// The connector of [`Net::client`].
#[derive(Clone)]
pub struct Connector {
    net: Net,
    timeout: Duration,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector").field("net", &self.net).finish()
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Connection;
    type Error = NetError;
    type Future = Pin<Box<dyn Future<Output = Result<Connection, NetError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), NetError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, target: Uri) -> Self::Future {
        let (net, timeout) = (self.net.clone(), self.timeout);
        Box::pin(async move { net.connect(&target, timeout).await })
    }
}

/// `scheme://host[:port]` of `url`: what may be shown of a URL whose path or query may be a
/// credential (a chat webhook's). User information is dropped too. Something that is not a URL
/// shows as `<invalid url>`.
pub fn redact(url: &str) -> String {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<invalid url>".into();
    };
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return "<invalid url>".into();
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.is_empty() {
        return format!("{}://", scheme.to_ascii_lowercase());
    }
    format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        hostport.to_ascii_lowercase()
    )
}

/// `text` with every `http://` and `https://` URL in it [`redact`]ed: for texts written before
/// redaction existed (stored dead-letter reasons) and texts from elsewhere.
pub fn redact_text(text: &str) -> Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    if !lower.contains("http://") && !lower.contains("https://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut at = 0;
    while let Some(found) = next_url(&lower[at..]) {
        let start = at + found;
        let len = text[start..]
            .find(|c: char| c.is_whitespace() || "\"'<>`()[]{}|\\^,;".contains(c))
            .unwrap_or(text.len() - start);
        // A sentence's full stop after a URL is not part of it.
        let token = text[start..start + len].trim_end_matches(['.', ':', '!']);
        out.push_str(&text[rest..start]);
        out.push_str(&redact(token));
        rest = start + token.len();
        at = start + len.max(1);
    }
    out.push_str(&text[rest..]);
    Cow::Owned(out)
}

/// `error` and its causes, `: `-separated (hyper's top-level message alone says little).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn next_url(lower: &str) -> Option<usize> {
    match (lower.find("http://"), lower.find("https://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests;
