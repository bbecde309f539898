//! A small blocking HTTP client over `wasi:http/outgoing-handler`.
//!
//! ```no_run
//! # use readyd_plugin_sdk::http::Request;
//! # use std::time::Duration;
//! # fn demo() -> Result<(), readyd_plugin_sdk::http::HttpError> {
//! let response = Request::get("http://127.0.0.1:8080/oncall/payments")
//!     .bearer_auth("token")
//!     .timeout(Duration::from_secs(2))
//!     .send()?;
//! let body: serde_json::Value = response.json()?;
//! # Ok(()) }
//! ```
//!
//! In a wasm build requests go to the daemon, which sends them only to hosts on the manifest's
//! allow list (anything else fails with [`HttpError::Denied`]). In a native build (unit tests)
//! requests are answered by the [`testing::MockHttp`](crate::testing::MockHttp) installed on the
//! current thread, so plugin logic is tested without a network. The client never retries and
//! never follows redirects: what the plugin sees is what the server said.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::PluginError;

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
    /// `HEAD`
    Head,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
        })
    }
}

/// Why a request produced no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The URL cannot be sent (not `http`/`https`, no host, ...).
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The daemon refused the request: the host is not on the manifest's allow list.
    #[error("request to {url} denied: host not allowed by the plugin's manifest")]
    Denied {
        /// The URL that was refused.
        url: String,
    },
    /// No complete response within the request's timeout.
    #[error("request to {url} timed out")]
    Timeout {
        /// The URL that timed out.
        url: String,
    },
    /// The connection failed or the server broke the protocol.
    #[error("request to {url} failed: {reason}")]
    Connection {
        /// The URL that failed.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The response body could not be decoded as asked (not UTF-8, not the expected JSON).
    #[error("response from {url} could not be decoded: {reason}")]
    Decode {
        /// The URL whose response was bad.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

impl From<HttpError> for PluginError {
    fn from(error: HttpError) -> Self {
        match error {
            HttpError::InvalidUrl { .. } => PluginError::InvalidConfig(error.to_string()),
            HttpError::Decode { .. } => PluginError::Failed(error.to_string()),
            _ => PluginError::Unavailable(error.to_string()),
        }
    }
}

/// An outgoing request, built with the methods below and sent with [`Request::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
}

impl Request {
    /// A request with this method and URL, no headers, no body, no timeout.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::Post, url)
    }

    /// This request with a header added.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// This request with `Authorization: Bearer <token>`.
    pub fn bearer_auth(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// This request with a raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// This request with `value` as a JSON body and `content-type: application/json`.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, HttpError> {
        let body = serde_json::to_vec(value).map_err(|e| HttpError::Decode {
            url: self.url.clone(),
            reason: format!("request body: {e}"),
        })?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// This request bounded by `timeout`: connect, first byte and the whole body together.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The headers, in the order they were added.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first header called `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// The timeout, if one was set.
    pub fn timeout_value(&self) -> Option<Duration> {
        self.timeout
    }

    /// Send the request and wait for the whole response.
    ///
    /// Any status is a response (a `404` is `Ok`); only a request that got no response is an
    /// error.
    pub fn send(self) -> Result<Response, HttpError> {
        let url = ParsedUrl::parse(&self.url)?;
        #[cfg(target_arch = "wasm32")]
        return wasi::send(&self, &url);
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = url;
            crate::testing::dispatch(self)
        }
    }
}

/// A complete HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    url: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// A response with this status and nothing else (tests build canned responses with it).
    pub fn new(status: u16) -> Self {
        Self {
            url: String::new(),
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `200` response with `value` as its JSON body.
    pub fn json_body(value: &serde_json::Value) -> Self {
        Self::new(200)
            .with_header("content-type", "application/json")
            .with_body(value.to_string())
    }

    /// This response with a header added.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// This response with this body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn with_url(mut self, url: &str) -> Self {
        self.url = url.to_string();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// All headers.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, HttpError> {
        std::str::from_utf8(&self.body).map_err(|e| HttpError::Decode {
            url: self.url.clone(),
            reason: format!("body is not UTF-8: {e}"),
        })
    }

    /// The body parsed as JSON into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::Decode {
            url: self.url.clone(),
            reason: format!("body is not the expected JSON: {e}"),
        })
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Percent-encode `text` for use inside a URL query value or path segment.
///
/// Everything but the RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`) is encoded, so the
/// result is safe anywhere in a URL: `up{job="api"}` becomes `up%7Bjob%3D%22api%22%7D`.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The parts of a URL that `wasi:http` wants separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedUrl {
    pub(crate) https: bool,
    pub(crate) authority: String,
    pub(crate) path_with_query: String,
}

impl ParsedUrl {
    pub(crate) fn parse(url: &str) -> Result<Self, HttpError> {
        let invalid = |reason: &str| HttpError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("no scheme"))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            _ => return Err(invalid("only http and https are supported")),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty()
            || authority.contains('@')
            || authority.contains(char::is_whitespace)
        {
            return Err(invalid("missing or unsupported host"));
        }
        if path.contains(char::is_whitespace) {
            return Err(invalid("spaces must be percent-encoded"));
        }
        let path_with_query = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok(Self {
            https,
            authority: authority.to_string(),
            path_with_query,
        })
    }
}

#[cfg(target_arch = "wasm32")]
mod wasi {
    //! The `wasi:http` transport: one outgoing request, polled against a deadline.

    use super::{HttpError, Method, ParsedUrl, Request, Response};
    use wasip2::clocks::monotonic_clock;
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{
        ErrorCode, Fields, IncomingBody, Method as WasiMethod, OutgoingBody, OutgoingRequest,
        RequestOptions, Scheme,
    };
    use wasip2::io::poll;
    use wasip2::io::streams::StreamError;

    /// Largest chunk written to or read from a stream in one call.
    const CHUNK: u64 = 64 * 1024;

    pub(super) fn send(request: &Request, url: &ParsedUrl) -> Result<Response, HttpError> {
        let fail = |reason: String| HttpError::Connection {
            url: request.url.clone(),
            reason,
        };
        let entries: Vec<(String, Vec<u8>)> = request
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
            .collect();
        let headers = Fields::from_list(&entries).map_err(|e| HttpError::InvalidUrl {
            url: request.url.clone(),
            reason: format!("bad header: {e:?}"),
        })?;
        let outgoing = OutgoingRequest::new(headers);
        let method = match request.method {
            Method::Get => WasiMethod::Get,
            Method::Post => WasiMethod::Post,
            Method::Put => WasiMethod::Put,
            Method::Patch => WasiMethod::Patch,
            Method::Delete => WasiMethod::Delete,
            Method::Head => WasiMethod::Head,
        };
        let scheme = if url.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let invalid = |what: &str| HttpError::InvalidUrl {
            url: request.url.clone(),
            reason: format!("the host rejected the {what}"),
        };
        outgoing
            .set_method(&method)
            .map_err(|()| invalid("method"))?;
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|()| invalid("scheme"))?;
        outgoing
            .set_authority(Some(&url.authority))
            .map_err(|()| invalid("authority"))?;
        outgoing
            .set_path_with_query(Some(&url.path_with_query))
            .map_err(|()| invalid("path"))?;

        let options = request.timeout.map(|timeout| {
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            let options = RequestOptions::new();
            // A host that does not support one of these still gets the overall deadline below.
            let _ = options.set_connect_timeout(Some(nanos));
            let _ = options.set_first_byte_timeout(Some(nanos));
            let _ = options.set_between_bytes_timeout(Some(nanos));
            options
        });
        let deadline = request.timeout.map(|timeout| {
            monotonic_clock::subscribe_duration(
                u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX),
            )
        });

        let body = outgoing
            .body()
            .map_err(|()| fail("request body unavailable".into()))?;
        let pending =
            outgoing_handler::handle(outgoing, options).map_err(|code| map_error(request, code))?;
        {
            let stream = body
                .write()
                .map_err(|()| fail("request body unavailable".into()))?;
            for chunk in request.body.chunks(4096) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| fail(format!("writing the request body: {e:?}")))?;
            }
        }
        OutgoingBody::finish(body, None).map_err(|code| map_error(request, code))?;

        let response = loop {
            if let Some(result) = pending.get() {
                break result
                    .map_err(|()| fail("response already taken".into()))?
                    .map_err(|code| map_error(request, code))?;
            }
            wait(&pending.subscribe(), deadline.as_ref(), request)?;
        };

        let status = response.status();
        let headers = {
            let fields = response.headers();
            fields
                .entries()
                .into_iter()
                .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
                .collect()
        };
        let incoming = response
            .consume()
            .map_err(|()| fail("response body unavailable".into()))?;
        let mut bytes = Vec::new();
        {
            let stream = incoming
                .stream()
                .map_err(|()| fail("response body unavailable".into()))?;
            loop {
                match stream.read(CHUNK) {
                    Ok(chunk) if chunk.is_empty() => {
                        wait(&stream.subscribe(), deadline.as_ref(), request)?
                    }
                    Ok(chunk) => bytes.extend_from_slice(&chunk),
                    Err(StreamError::Closed) => break,
                    Err(StreamError::LastOperationFailed(e)) => {
                        return Err(fail(format!("reading the body: {}", e.to_debug_string())));
                    }
                }
            }
        }
        drop(IncomingBody::finish(incoming));
        Ok(Response {
            url: request.url.clone(),
            status,
            headers,
            body: bytes,
        })
    }

    /// Block until `ready` fires, or fail with a timeout when `deadline` fires first.
    fn wait(
        ready: &poll::Pollable,
        deadline: Option<&poll::Pollable>,
        request: &Request,
    ) -> Result<(), HttpError> {
        match deadline {
            None => {
                ready.block();
                Ok(())
            }
            Some(deadline) => {
                let fired = poll::poll(&[ready, deadline]);
                if fired.contains(&0) {
                    Ok(())
                } else {
                    Err(HttpError::Timeout {
                        url: request.url.clone(),
                    })
                }
            }
        }
    }

    fn map_error(request: &Request, code: ErrorCode) -> HttpError {
        let url = request.url.clone();
        match code {
            ErrorCode::HttpRequestDenied => HttpError::Denied { url },
            ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::HttpResponseTimeout
            | ErrorCode::DnsTimeout => HttpError::Timeout { url },
            ErrorCode::HttpRequestUriInvalid => HttpError::InvalidUrl {
                url,
                reason: "rejected by the host".into(),
            },
            other => HttpError::Connection {
                url,
                reason: format!("{other:?}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_into_wasi_parts() {
        let url = ParsedUrl::parse("http://127.0.0.1:9090/api/v1/query?query=up#frag").unwrap();
        assert!(!url.https);
        assert_eq!(url.authority, "127.0.0.1:9090");
        assert_eq!(url.path_with_query, "/api/v1/query?query=up");
        let url = ParsedUrl::parse("HTTPS://example.com").unwrap();
        assert!(url.https);
        assert_eq!(url.path_with_query, "/");
        assert_eq!(
            ParsedUrl::parse("http://h?x=1").unwrap().path_with_query,
            "/?x=1"
        );
    }

    #[test]
    fn rejects_unsendable_urls() {
        for bad in [
            "ftp://x/",
            "127.0.0.1/x",
            "http:///x",
            "http://u@h/",
            "http://h/a b",
        ] {
            assert!(
                matches!(ParsedUrl::parse(bad), Err(HttpError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn encodes_query_components() {
        assert_eq!(
            encode_component(r#"up{job="api"}[5m]"#),
            "up%7Bjob%3D%22api%22%7D%5B5m%5D"
        );
        assert_eq!(encode_component("a b/c~d"), "a%20b%2Fc~d");
        assert_eq!(encode_component("é"), "%C3%A9");
    }

    #[test]
    fn http_errors_map_to_plugin_errors() {
        let e: PluginError = HttpError::Timeout {
            url: "http://h/".into(),
        }
        .into();
        assert!(matches!(e, PluginError::Unavailable(_)));
        let e: PluginError = HttpError::InvalidUrl {
            url: "x".into(),
            reason: "r".into(),
        }
        .into();
        assert!(matches!(e, PluginError::InvalidConfig(_)));
    }

    #[test]
    fn json_bodies_set_content_type() {
        let request = Request::post("http://h/")
            .json(&serde_json::json!({"a": 1}))
            .unwrap();
        assert_eq!(
            request.header_value("Content-Type"),
            Some("application/json")
        );
        assert_eq!(request.body_bytes(), br#"{"a":1}"#);
    }
}
