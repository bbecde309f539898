//! Every way a request can fail, and the one place ([`status_of`]) that turns a failure into an
//! HTTP status.
//!
//! [`ApiError`] wraps the engine's [`EngineError`] and adds the HTTP layer's own refusals
//! (malformed JSON, wrong media type, body too large or too slow, missing or unknown token, role
//! not allowed, no such route). [`error_response`] renders any of them as
//! `{"error": {"code": "...", "message": "..."}}` with the headers the status calls for
//! (`WWW-Authenticate`, `Allow`, `Connection: close`). Internal errors are logged here with their
//! message; the client gets the message too, since readyd's errors carry no secrets.

use bytes::Bytes;
use http::header::{ALLOW, CONNECTION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use crate::engine::EngineError;

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The engine refused or failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The body is not valid JSON for the endpoint (serde's message, with line and column).
    #[error("invalid JSON body: {0}")]
    InvalidJson(String),
    /// A body is missing, or was sent to an endpoint that takes none.
    #[error("{0}")]
    InvalidBody(String),
    /// The query string names an unknown parameter or carries a bad value.
    #[error("{0}")]
    InvalidQuery(String),
    /// The body is not `application/json`.
    #[error("unsupported content type `{0}`: send application/json")]
    UnsupportedMediaType(String),
    /// The body is larger than `limits.body_bytes`.
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body did not arrive within `limits.body_timeout_ms`.
    #[error("request body not received within {ms} ms")]
    RequestTimeout { ms: u64 },
    /// No token where one is needed, or a token that matches none configured.
    #[error("{message}")]
    Unauthenticated {
        message: String,
        /// A token was presented and is unknown (RFC 6750 `invalid_token`).
        invalid_token: bool,
    },
    /// The caller's role does not allow the route.
    #[error("{0}")]
    Forbidden(String),
    /// No route has this path (code `no_route`, so that clients can tell a mistyped URL from a
    /// missing item).
    #[error("no route for {0}")]
    RouteNotFound(String),
    /// A static file that does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The path exists with other methods.
    #[error("method not allowed (allowed: {})", allowed_list(.allow))]
    MethodNotAllowed { allow: Vec<Method> },
    /// `/readyz` before the first evaluation is committed.
    #[error("not ready: the first evaluation has not been committed yet")]
    NotReady,
    /// The connection failed while the body was read.
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    /// A bug in the HTTP layer (it is logged).
    #[error("{0}")]
    Internal(String),
}

fn allowed_list(allow: &[Method]) -> String {
    allow
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl ApiError {
    /// Stable machine-readable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Engine(e) => e.code(),
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidBody(_) => "invalid_body",
            ApiError::InvalidQuery(_) => "invalid_query",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::RequestTimeout { .. } => "request_timeout",
            ApiError::Unauthenticated { .. } => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::RouteNotFound(_) => "no_route",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::NotReady => "not_ready",
            ApiError::BodyRead(_) => "bad_request",
            ApiError::Internal(_) => "internal",
        }
    }
}

/// The HTTP status of every failure: the only place readyd chooses one for an error.
pub fn status_of(error: &ApiError) -> StatusCode {
    match error {
        ApiError::Engine(e) => match e {
            EngineError::BadRequest(_) => StatusCode::BAD_REQUEST,
            EngineError::Forbidden(_) => StatusCode::FORBIDDEN,
            EngineError::NotFound(_) => StatusCode::NOT_FOUND,
            EngineError::Conflict(_) => StatusCode::CONFLICT,
            EngineError::Unavailable(_) | EngineError::NotReady(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            EngineError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        },
        ApiError::InvalidJson(_)
        | ApiError::InvalidBody(_)
        | ApiError::InvalidQuery(_)
        | ApiError::BodyRead(_) => StatusCode::BAD_REQUEST,
        ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
        ApiError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
        ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
        ApiError::RouteNotFound(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
        ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
        ApiError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON error answer for `error`, with the headers its status calls for.
pub fn error_response(error: ApiError) -> Response<Full<Bytes>> {
    let status = status_of(&error);
    // Not being ready is a state, not a failure: probes and CI poll it, so it is not logged
    // per request (the engine logs why, once).
    let not_ready = matches!(
        error,
        ApiError::NotReady | ApiError::Engine(EngineError::NotReady(_))
    );
    if status.is_server_error() && !not_ready {
        match &error {
            ApiError::Engine(EngineError::Unavailable(m)) => {
                tracing::warn!(message = %m, "unavailable")
            }
            other => tracing::error!(error = %other, code = other.code(), "request failed"),
        }
    }
    let body = serde_json::json!({
        "error": { "code": error.code(), "message": error.to_string() }
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    match &error {
        ApiError::Unauthenticated { invalid_token, .. } => {
            let challenge = if *invalid_token {
                r#"Bearer realm="readyd", error="invalid_token""#
            } else {
                r#"Bearer realm="readyd""#
            };
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        ApiError::MethodNotAllowed { allow } => {
            if let Ok(value) = HeaderValue::from_str(&allowed_list(allow)) {
                headers.insert(ALLOW, value);
            }
        }
        // The rest of the body may still be on the wire: reading it to keep the connection
        // would defeat the limit, so the connection ends with this answer.
        ApiError::PayloadTooLarge { .. }
        | ApiError::RequestTimeout { .. }
        | ApiError::BodyRead(_) => {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        _ => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn body_of(response: Response<Full<Bytes>>) -> serde_json::Value {
        let bytes = futures::executor::block_on(response.into_body().collect())
            .unwrap()
            .to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn engine_errors_map_to_their_status() {
        for (error, status) in [
            (EngineError::BadRequest("b".into()), 400),
            (EngineError::Forbidden("f".into()), 403),
            (EngineError::NotFound("n".into()), 404),
            (EngineError::Conflict("c".into()), 409),
            (EngineError::Unavailable("u".into()), 503),
            (EngineError::NotReady("r".into()), 503),
            (EngineError::Internal("i".into()), 500),
        ] {
            let code = error.code();
            let response = error_response(error.into());
            assert_eq!(response.status().as_u16(), status);
            let body = body_of(response);
            assert_eq!(body["error"]["code"], code);
        }
    }

    #[test]
    fn http_errors_carry_their_headers() {
        let r = error_response(ApiError::Unauthenticated {
            message: "unknown token".into(),
            invalid_token: true,
        });
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let challenge = r.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(challenge.contains("invalid_token"));

        let r = error_response(ApiError::MethodNotAllowed {
            allow: vec![Method::GET, Method::PUT],
        });
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[ALLOW], "GET, PUT");

        let r = error_response(ApiError::PayloadTooLarge { limit: 10 });
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(r.headers()[CONNECTION], "close");
        let body = body_of(r);
        assert_eq!(body["error"]["code"], "payload_too_large");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("10 bytes")
        );

        assert_eq!(
            error_response(ApiError::RequestTimeout { ms: 5 }).status(),
            StatusCode::REQUEST_TIMEOUT
        );
        assert_eq!(
            error_response(ApiError::UnsupportedMediaType("text/plain".into())).status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            error_response(ApiError::NotReady).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
