//! The HTTP layer: the only code in readyd that knows hyper. It serves the `/v1` JSON API, the
//! probes, `/metrics`, `/openapi.json` and the dashboard, and turns every request into at most
//! one [`Engine`] call.
//!
//! # Layout
//!
//! - [`serve`] (here): the accept loop, one task per connection, timeouts, graceful shutdown.
//! - [`router`]: the route table ([`router::ROUTES`]) — method, pattern, permission, query, body,
//!   answer — and path matching. Everything else that lists routes is derived from it.
//! - [`query`]: strict query strings. [`auth`]: bearer tokens, roles, permissions.
//! - [`handlers`]: one arm per endpoint, translating to engine calls.
//! - [`errors`]: [`ApiError`] and [`errors::status_of`], the one place a status is chosen.
//! - [`openapi`]: the OpenAPI 3.0 document. [`dashboard`]: the embedded dashboard files.
//! - [`client`]: `readyd gate`, the command-line client of the gate (it connects through
//!   [`crate::net`]).
//! - [`tls`]: HTTPS when `tls_cert_file` and `tls_key_file` are set, renewed certificates picked
//!   up for new connections without a restart.
//!
//! # A request's way through
//!
//! route (404, or 405 with `Allow`) → authenticate (401: unknown token, whatever the route) →
//! authorize (401 for anonymous callers, 403 for a role without the permission) → query string
//! (400) → body: declared size (413), media type (415), read within the body timeout (408) and
//! the size limit (413) → handler → engine. Every answer is counted in
//! `readyd_http_requests_total` and `readyd_http_request_seconds` under the route *pattern*,
//! never the raw path.
//!
//! # Permissions
//!
//! | class          | anonymous           | viewer | ci  | `owner:<team>`       | approver | admin |
//! |----------------|---------------------|--------|-----|----------------------|----------|-------|
//! | `public`       | yes                 | yes    | yes | yes                  | yes      | yes   |
//! | `read`         | if `anonymous_read` | yes    | yes | yes                  | yes      | yes   |
//! | `gate`         | if `anonymous_read` | yes    | yes | yes                  | yes      | yes   |
//! | `owner-action` | 401                 | 403    | 403 | its team's entities¹ | 403      | yes   |
//! | `decide`       | 401                 | 403    | 403 | 403                  | yes²     | yes²  |
//! | `admin`        | 401                 | 403    | 403 | 403                  | 403      | yes   |
//!
//! ¹ The HTTP layer admits every owner; the engine answers 403 for another team's entity.
//! ² Never one's own request: the engine answers 403.
//!
//! | class          | routes                                                                   |
//! |----------------|--------------------------------------------------------------------------|
//! | `public`       | `GET /livez`, `/readyz`, `/metrics`, `/openapi.json`, `/`, `/assets/{file}` |
//! | `read`         | every other `GET /v1/...`                                                |
//! | `gate`         | `GET /v1/gate/{id}`                                                      |
//! | `owner-action` | `POST /v1/exemptions`, `POST /v1/tier-requests`, `POST /v1/entities/{id}/lock`, `/unlock`, `/refresh`, `/nudge` |
//! | `decide`       | `POST /v1/exemptions/{id}/approve`, `/deny`, `/revoke`; `POST /v1/tier-requests/{id}/approve`, `/deny` |
//! | `admin`        | `PUT /v1/entities/{id}`, `DELETE /v1/entities/{id}`, `POST /v1/reload`   |
//!
//! A request carrying an `Authorization` header that is not a configured bearer token gets 401 on
//! every route, public ones included. Anonymous callers act as `anonymous` with the `viewer` role.
//! `/metrics` is public like the probes: scrapers and probes rarely carry tokens; keep the port
//! on a trusted network.
//!
//! This module must never touch redb or wasmtime, and never decide a business rule: it checks the
//! role *class*; the engine checks teams, self-approval and state.

pub mod auth;
pub mod client;
pub mod dashboard;
pub mod errors;
pub mod handlers;
pub mod openapi;
pub mod query;
pub mod router;
pub mod tls;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

pub use client::{ask_gate, ask_gate_via, gate_command, gate_command_with};
pub use errors::{ApiError, error_response};
pub use router::{Permission, ROUTES, Route};

use crate::engine::Engine;
use crate::metrics::{RequestLabels, metrics};
use auth::Authenticator;
use handlers::{Context, Reply};
use query::Query;
use router::{BodySpec, Resolution};

/// The media type of `/metrics`: prometheus-client's text encoder writes OpenMetrics 1.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long in-flight requests may run on after shutdown begins. Beyond it the server returns and
/// the remaining connections are dropped, so a stuck client cannot hold the process open.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection task shares.
struct Server {
    engine: Engine,
    auth: Authenticator,
    /// `limits.body_bytes`.
    body_limit: usize,
    /// `limits.body_timeout_ms`; `None` when 0 (no limit).
    body_timeout: Option<Duration>,
    /// The certificate pair when serving HTTPS.
    tls: Option<Arc<tls::TlsFiles>>,
}

/// Serve the API on `listener` until `shutdown` completes, then stop accepting, let in-flight
/// requests finish (at most [`DRAIN_TIMEOUT`]) and return. The caller owns the engine's own
/// shutdown, which comes after this returns.
pub async fn serve(
    engine: Engine,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = engine.config();
    let auth = Authenticator::new(&config.tokens, config.anonymous_read)
        .context("cannot use the configured tokens")?;
    let tls = match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(cert), Some(key)) => Some(Arc::new(
            tls::TlsFiles::load(cert, key).context("cannot serve HTTPS")?,
        )),
        _ => None,
    };
    let limits = &config.limits;
    // A client gets as long for its TLS handshake as for its request headers.
    let handshake_timeout = Duration::from_millis(match limits.header_timeout_ms {
        0 => 10_000,
        ms => ms,
    });
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new());
    // hyper also applies it to idle keep-alive connections waiting for their next request,
    // which bounds how long an idle client holds a connection.
    builder.header_read_timeout(
        (limits.header_timeout_ms > 0).then(|| Duration::from_millis(limits.header_timeout_ms)),
    );
    let server = Arc::new(Server {
        body_limit: limits.body_bytes,
        body_timeout: (limits.body_timeout_ms > 0)
            .then(|| Duration::from_millis(limits.body_timeout_ms)),
        auth,
        engine,
        tls,
    });
    let address = listener.local_addr().ok();
    tracing::info!(address = ?address, https = server.tls.is_some(), "HTTP API listening");

    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little rather than spin, and
                    // keep serving the connections already open.
                    tracing::error!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, %peer, "cannot set TCP_NODELAY");
        }
        let tls = server.tls.clone();
        let server = server.clone();
        let service = service_fn(move |request| {
            let server = server.clone();
            async move { Ok::<_, Infallible>(handle(&server, request).await) }
        });
        if let Some(files) = tls {
            let (watcher, builder) = (graceful.watcher(), builder.clone());
            tokio::spawn(async move {
                // Looked up per connection, so a renewed certificate serves the next one.
                let acceptor = tokio_rustls::TlsAcceptor::from(files.current());
                let stream =
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            tracing::debug!(%error, %peer, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                let connection =
                    watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
                if let Err(error) = connection.await {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
            });
            continue;
        }
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // Client resets and header timeouts are routine; they are not the server's fault.
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "HTTP API stopped accepting; draining"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("HTTP API drained"),
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!(
                timeout = ?DRAIN_TIMEOUT,
                "connections still open after the drain timeout"
            );
        }
    }
    Ok(())
}

/// Answer one request, and count it.
async fn handle(server: &Server, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let method = request.method().clone();
    let (label, response) = match router::resolve(&method, request.uri().path()) {
        Resolution::Found(route, params) => {
            let response = match respond(server, route, params, request).await {
                Ok(reply) => into_response(reply),
                Err(error) => error_response(error),
            };
            (route.pattern, response)
        }
        Resolution::MethodNotAllowed(allow) => (
            "unmatched",
            error_response(ApiError::MethodNotAllowed { allow }),
        ),
        Resolution::NotFound => {
            let path = request.uri().path().to_owned();
            ("unmatched", error_response(ApiError::RouteNotFound(path)))
        }
    };
    let labels = RequestLabels {
        route: label.to_owned(),
        method: method_label(&method).to_owned(),
        status: response.status().as_u16(),
    };
    let metrics = metrics();
    metrics.http_requests.get_or_create(&labels).inc();
    metrics
        .http_request_seconds
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    tracing::debug!(
        method = %method,
        route = label,
        status = labels.status,
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// The method as a metrics label: arbitrary extension methods would make unbounded label sets.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// The checks of the route's row, then the handler.
async fn respond(
    server: &Server,
    route: &'static Route,
    params: router::PathParams,
    request: Request<Incoming>,
) -> Result<Reply, ApiError> {
    let caller = server.auth.authenticate(request.headers())?;
    let actor = server.auth.authorize(route.permission, caller)?;
    let query = Query::parse(request.uri().query(), route.query)?;
    let body = read_body(server, route.body, request).await?;
    handlers::dispatch(
        route.endpoint,
        Context {
            engine: &server.engine,
            tls: server.tls.as_deref(),
            actor,
            params,
            query,
            body,
        },
    )
    .await
}

/// Read the whole body within the size and time limits; check that a non-empty one is JSON and
/// that the route takes one.
async fn read_body(
    server: &Server,
    spec: BodySpec,
    request: Request<Incoming>,
) -> Result<Bytes, ApiError> {
    let limit = server.body_limit;
    let headers = request.headers();
    // A declared length over the limit is refused before a byte of the body is read.
    if let Some(length) = headers.get(CONTENT_LENGTH)
        && length
            .to_str()
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > limit as u64)
    {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("<not ASCII>").to_owned());
    if let Some(content_type) = &content_type
        && spec != BodySpec::None
        && !is_json(content_type)
    {
        return Err(ApiError::UnsupportedMediaType(content_type.clone()));
    }
    let collect = Limited::new(request.into_body(), limit).collect();
    let collected =
        match server.body_timeout {
            Some(timeout) => tokio::time::timeout(timeout, collect).await.map_err(|_| {
                ApiError::RequestTimeout {
                    ms: timeout.as_millis() as u64,
                }
            })?,
            None => collect.await,
        };
    let body = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        Err(error) => return Err(ApiError::BodyRead(error.to_string())),
    };
    if body.is_empty() {
        return Ok(body);
    }
    match (spec, content_type) {
        (BodySpec::None, _) => Err(ApiError::InvalidBody(
            "this endpoint takes no request body".into(),
        )),
        (_, None) => Err(ApiError::UnsupportedMediaType("(none)".into())),
        (_, Some(_)) => Ok(body),
    }
}

/// `application/json`, with or without parameters such as `charset`.
fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

fn into_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(reply.body));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    if reply.status != StatusCode::NO_CONTENT {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    }
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    for (name, value) in reply.headers {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/jsonx"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }

    #[test]
    fn method_labels_are_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "OTHER");
    }
}
