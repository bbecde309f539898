//! Outgoing HTTP for plugins: the `wasi:http` hook that enforces a manifest's allow list.
//!
//! wasi-http has no allow list of its own, so [`Egress`] implements
//! [`WasiHttpHooks::send_request`]: the request's final scheme and authority are matched against
//! `capabilities.http`; anything else is refused with `HttpRequestDenied` before a socket is
//! opened. The `Host` header is rebuilt from the checked authority (a guest cannot route a
//! request to one host while naming another — the class of Spin's CVE-2024-32980), and every
//! timeout is clamped to what is left of the call's budget.
//!
//! An allowed request is sent through [`crate::net::Net`], like every other connection readyd
//! opens: the same roots (system plus `tls_ca_file`) and the same proxies. The allow list is
//! matched on the request's own target before `net` picks a proxy, so a proxy is never what a
//! grant is checked against, and a proxy cannot widen what a plugin may reach.
//!
//! This module must never send a request whose authority it did not check, and never open a
//! connection except through [`crate::net`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::uri::{Authority, Scheme, Uri};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::net::{Net, NetError};
use crate::plugin::manifest::HttpGrant;

/// The per-store HTTP policy: who may be called, and until when.
pub(crate) struct Egress {
    plugin: Arc<str>,
    allow: Arc<[HttpGrant]>,
    net: Net,
    /// End of the current call's budget; requests never outlive it.
    pub(crate) deadline: Instant,
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

impl Egress {
    pub(crate) fn new(plugin: Arc<str>, allow: Arc<[HttpGrant]>, net: Net) -> Egress {
        Egress {
            plugin,
            allow,
            net,
            deadline: Instant::now(),
        }
    }

    /// The request's target rewritten as `scheme://host:port/path`, if the allow list covers it.
    fn authorize(&self, uri: &Uri) -> Result<Uri, String> {
        let scheme = uri.scheme().ok_or("no scheme")?;
        let default_port = if *scheme == Scheme::HTTPS {
            443
        } else if *scheme == Scheme::HTTP {
            80
        } else {
            return Err(format!("scheme {scheme} is not allowed"));
        };
        let authority = uri.authority().ok_or("no host")?;
        if authority.as_str().contains('@') {
            return Err("user information in the authority is not allowed".into());
        }
        let host = authority.host().to_ascii_lowercase();
        let port = authority.port_u16().unwrap_or(default_port);
        if !self
            .allow
            .iter()
            .any(|grant| grant.allows(&host, port, default_port))
        {
            return Err(format!(
                "{host}:{port} is not on the plugin's http allow list"
            ));
        }
        let authority: Authority = format!("{host}:{port}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| e.to_string())?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        Uri::builder()
            .scheme(scheme.clone())
            .authority(authority)
            .path_and_query(path)
            .build()
            .map_err(|e| e.to_string())
    }
}

/// Each timeout the guest asked for (or the default), but never past `remaining`.
fn clamp(options: Option<RequestOptions>, remaining: Duration) -> RequestOptions {
    let options = options.unwrap_or_default();
    let clamp = |t: Option<Duration>| Some(t.map_or(remaining, |t| t.min(remaining)));
    RequestOptions {
        connect_timeout: clamp(options.connect_timeout),
        first_byte_timeout: clamp(options.first_byte_timeout),
        between_bytes_timeout: clamp(options.between_bytes_timeout),
    }
}

impl WasiHttpHooks for Egress {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let target = self.authorize(request.uri());
        let plugin = self.plugin.clone();
        let net = self.net.clone();
        Box::new(async move {
            let uri = match target {
                Ok(uri) => uri,
                Err(reason) => {
                    tracing::warn!(plugin = %plugin, %reason, "outgoing HTTP request refused");
                    return Err(HttpError::HttpRequestDenied);
                }
            };
            if remaining.is_zero() {
                return Err(HttpError::ConnectionTimeout);
            }
            let host = uri
                .authority()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default();
            let host =
                http::HeaderValue::try_from(host).map_err(|_| HttpError::HttpRequestUriInvalid)?;
            request.headers_mut().insert(http::header::HOST, host);
            *request.uri_mut() = uri;
            // Scheme and authority only: a plugin's query string may carry its secrets.
            let shown = crate::net::redact(&request.uri().to_string());
            tracing::debug!(plugin = %plugin, target = %shown, "outgoing HTTP request");
            let sent = send(&net, request, clamp(options, remaining));
            let (response, io) = match tokio::time::timeout(remaining, sent).await {
                Ok(Ok(sent)) => sent,
                Ok(Err(error)) => {
                    tracing::warn!(plugin = %plugin, target = %shown, %error, "outgoing HTTP request failed");
                    return Err(error);
                }
                Err(_) => return Err(HttpError::HttpResponseTimeout),
            };
            Ok((response, io))
        })
    }
}

/// What a connection failure is called in `wasi:http`'s error codes.
fn wasi_error(error: &NetError) -> HttpError {
    match error {
        NetError::BadUrl { .. } => HttpError::HttpRequestUriInvalid,
        NetError::Dns { .. } => HttpError::DnsError {
            rcode: Some("address not available".into()),
            info_code: None,
        },
        NetError::Refused { .. } => HttpError::ConnectionRefused,
        NetError::Timeout { .. } => HttpError::ConnectionTimeout,
        NetError::Connect { .. } => HttpError::DestinationUnavailable,
        NetError::UnknownCa { .. }
        | NetError::NameMismatch { .. }
        | NetError::Expired { .. }
        | NetError::Certificate { .. } => HttpError::TlsCertificateError,
        NetError::Tls { .. } => HttpError::TlsProtocolError,
        NetError::Proxy { .. } | NetError::CaFile { .. } => HttpError::InternalError(Some(
            // The guest sees why (proxy host and port, never credentials).
            error.to_string(),
        )),
    }
}

/// Send one checked request on a fresh connection from `net`, honouring the guest's timeouts
/// (connect, first byte, between bytes), as `wasmtime_wasi_http::default_send_request` does
/// for its own sockets. Returns the response and the future that drives the connection.
async fn send(
    net: &Net,
    mut request: http::Request<WasiBody>,
    options: RequestOptions,
) -> Result<(http::Response<WasiBody>, IoFuture), HttpError> {
    let forever = Duration::from_secs(600);
    let connect_timeout = options.connect_timeout.unwrap_or(forever);
    let first_byte_timeout = options.first_byte_timeout.unwrap_or(forever);
    let between_bytes_timeout = options
        .between_bytes_timeout
        .unwrap_or(forever)
        .max(Duration::from_nanos(1));
    let connection = net
        .connect(request.uri(), connect_timeout)
        .await
        .map_err(|e| wasi_error(&e))?;
    let via_proxy = connection.via_proxy();
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(connection),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;
    if !via_proxy {
        // Origin-form on the wire, unless an HTTP proxy needs the absolute form.
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        *request.uri_mut() = Uri::builder()
            .path_and_query(path)
            .build()
            .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    }
    let mut conn = Box::pin(conn);
    let mut exchange = Box::pin(tokio::time::timeout(
        first_byte_timeout,
        sender.send_request(request),
    ));
    // Drive the connection while waiting for the response head.
    let mut conn_done = false;
    let response = std::future::poll_fn(|cx| {
        if let Poll::Ready(result) = exchange.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        if !conn_done && let Poll::Ready(result) = conn.as_mut().poll(cx) {
            conn_done = true;
            if let Err(e) = result {
                return Poll::Ready(Ok(Err(e)));
            }
            return exchange.as_mut().poll(cx);
        }
        Poll::Pending
    })
    .await
    .map_err(|_| HttpError::ConnectionReadTimeout)?
    .map_err(HttpError::from)?;
    let io: IoFuture = Box::new(async move {
        if conn_done {
            return Ok(());
        }
        conn.await.map_err(|e| {
            if e.is_timeout() {
                HttpError::HttpResponseTimeout
            } else {
                HttpError::from(e)
            }
        })
    });
    let response = response.map(|incoming| {
        let mut timer = tokio::time::interval(between_bytes_timeout);
        timer.reset();
        IncomingBody { incoming, timer }.boxed_unsync()
    });
    Ok((response, io))
}

/// A response body that fails when no frame arrives within the between-bytes timeout.
struct IncomingBody {
    incoming: hyper::body::Incoming,
    timer: tokio::time::Interval,
}

impl hyper::body::Body for IncomingBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(if e.is_timeout() {
                HttpError::HttpResponseTimeout
            } else {
                HttpError::from(e)
            }))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timer.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match self.timer.poll_tick(cx) {
                Poll::Ready(_) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        hyper::body::Body::is_end_stream(&self.incoming)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::Body::size_hint(&self.incoming)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn egress(grants: &[&str]) -> Egress {
        let allow: Vec<HttpGrant> = grants.iter().map(|g| g.parse().unwrap()).collect();
        Egress::new("t".into(), allow.into(), Net::system())
    }

    #[test]
    fn authorizes_only_listed_authorities_and_normalises_them() {
        let e = egress(&["api.example.com", "127.0.0.1:8080"]);
        let ok = e
            .authorize(&"https://API.example.com/v1?q=1".parse().unwrap())
            .unwrap();
        assert_eq!(ok.to_string(), "https://api.example.com:443/v1?q=1");
        let ok = e
            .authorize(&"http://127.0.0.1:8080".parse().unwrap())
            .unwrap();
        assert_eq!(ok.to_string(), "http://127.0.0.1:8080/");
        for refused in [
            "https://api.example.com:8443/",
            "http://127.0.0.1:8081/",
            "http://localhost:8080/",
            "https://other.example.com/",
            "http://api.example.com@evil.test/",
            "ftp://api.example.com/",
        ] {
            assert!(
                e.authorize(&refused.parse().unwrap()).is_err(),
                "{refused} allowed"
            );
        }
        assert!(
            egress(&[])
                .authorize(&"https://api.example.com/".parse().unwrap())
                .is_err()
        );
    }

    #[test]
    fn timeouts_are_clamped_to_the_budget() {
        let budget = Duration::from_millis(300);
        let asked = RequestOptions {
            connect_timeout: Some(Duration::from_secs(60)),
            first_byte_timeout: Some(Duration::from_millis(100)),
            between_bytes_timeout: None,
        };
        let got = clamp(Some(asked), budget);
        assert_eq!(got.connect_timeout, Some(budget));
        assert_eq!(got.first_byte_timeout, Some(Duration::from_millis(100)));
        assert_eq!(got.between_bytes_timeout, Some(budget));
        assert_eq!(clamp(None, budget).connect_timeout, Some(budget));
    }

    #[tokio::test]
    async fn a_refused_request_never_connects() {
        // A listener that is not on the allow list must see no connection at all.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut e = egress(&["127.0.0.1:1"]);
        e.deadline = Instant::now() + Duration::from_secs(5);
        let body = http_body_util::Empty::<bytes::Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = http::Request::builder()
            .uri(format!("http://{addr}/"))
            .header(http::header::HOST, "127.0.0.1:1")
            .body(body)
            .unwrap();
        let result = Box::into_pin(e.send_request(request, None, Box::new(async { Ok(()) }))).await;
        assert!(matches!(result, Err(HttpError::HttpRequestDenied)));
        let accepted = tokio::time::timeout(Duration::from_millis(50), listener.accept())
            .await
            .is_ok();
        assert!(!accepted, "the refused request reached the listener");
    }
}
