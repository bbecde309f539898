//! Native test doubles: canned HTTP responses and captured log lines (not in wasm builds).
//!
//! Plugin logic is unit-tested with plain `cargo test`: the SDK's HTTP client asks the
//! [`MockHttp`] installed on the current thread instead of the network, and log lines can be
//! captured with [`LogCapture`]. Both are per thread, so tests running in parallel do not see
//! each other's mocks. Nothing here exists in a wasm build.
//!
//! ```
//! use readyd_plugin_sdk::http::{Request, Response};
//! use readyd_plugin_sdk::testing::MockHttp;
//!
//! let mock = MockHttp::new()
//!     .on_get("http://127.0.0.1:8080/ok", Response::json_body(&serde_json::json!({"n": 1})));
//! let _installed = mock.install();
//! let response = Request::get("http://127.0.0.1:8080/ok").send().unwrap();
//! assert_eq!(response.status(), 200);
//! assert_eq!(mock.requests().len(), 1);
//! assert!(Request::get("http://127.0.0.1:8080/other").send().is_err());
//! ```

use std::cell::RefCell;
use std::rc::Rc;

use crate::http::{HttpError, Method, Request, Response};
use crate::log::Level;

#[derive(Debug)]
struct Route {
    method: Option<Method>,
    url: String,
    reply: Result<Response, HttpError>,
}

#[derive(Debug, Default)]
struct MockState {
    routes: Vec<Route>,
    requests: Vec<Request>,
}

/// Canned HTTP responses by exact URL, for native unit tests.
///
/// A request whose method and URL match no route fails with [`HttpError::Connection`], as a
/// request to a server that is not there would. Later routes for the same URL win.
#[derive(Debug, Clone, Default)]
pub struct MockHttp {
    state: Rc<RefCell<MockState>>,
}

/// The lines a [`LogCapture`] collects, shared between the capture and the thread's log sink.
type CapturedLines = Rc<RefCell<Vec<(Level, String)>>>;

thread_local! {
    static MOCK: RefCell<Option<MockHttp>> = const { RefCell::new(None) };
    static LOGS: RefCell<Option<CapturedLines>> = const { RefCell::new(None) };
}

impl MockHttp {
    /// A mock with no routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answer `method url` with `response`.
    pub fn on(self, method: Method, url: impl Into<String>, response: Response) -> Self {
        self.route(Some(method), url.into(), Ok(response))
    }

    /// Answer `GET url` with `response`.
    pub fn on_get(self, url: impl Into<String>, response: Response) -> Self {
        self.on(Method::Get, url, response)
    }

    /// Answer `POST url` with `response`.
    pub fn on_post(self, url: impl Into<String>, response: Response) -> Self {
        self.on(Method::Post, url, response)
    }

    /// Fail any request to `url` with `error` (a timeout, a denied host, ...).
    pub fn fail(self, url: impl Into<String>, error: HttpError) -> Self {
        self.route(None, url.into(), Err(error))
    }

    fn route(
        self,
        method: Option<Method>,
        url: String,
        reply: Result<Response, HttpError>,
    ) -> Self {
        self.state
            .borrow_mut()
            .routes
            .push(Route { method, url, reply });
        self
    }

    /// Make this mock answer the current thread's requests until the guard is dropped.
    pub fn install(&self) -> MockGuard {
        let previous = MOCK.with(|m| m.borrow_mut().replace(self.clone()));
        MockGuard { previous }
    }

    /// Every request this mock has seen, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.borrow().requests.clone()
    }

    fn answer(&self, request: Request) -> Result<Response, HttpError> {
        let mut state = self.state.borrow_mut();
        let reply = state
            .routes
            .iter()
            .rev()
            .find(|r| r.url == request.url() && r.method.is_none_or(|m| m == request.method()))
            .map(|r| r.reply.clone());
        let url = request.url().to_string();
        let method = request.method();
        state.requests.push(request);
        match reply {
            Some(Ok(response)) => Ok(response.with_url(&url)),
            Some(Err(error)) => Err(error),
            None => Err(HttpError::Connection {
                url,
                reason: format!("connection refused (MockHttp has no route for {method})"),
            }),
        }
    }
}

/// Keeps a [`MockHttp`] installed on this thread; dropping it restores the previous one.
#[derive(Debug)]
#[must_use = "the mock is uninstalled when the guard is dropped"]
pub struct MockGuard {
    previous: Option<MockHttp>,
}

impl Drop for MockGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        MOCK.with(|m| *m.borrow_mut() = previous);
    }
}

/// The native transport of [`Request::send`].
pub(crate) fn dispatch(request: Request) -> Result<Response, HttpError> {
    match MOCK.with(|m| m.borrow().clone()) {
        Some(mock) => mock.answer(request),
        None => Err(HttpError::Connection {
            url: request.url().to_string(),
            reason: "native builds have no network: install a testing::MockHttp".into(),
        }),
    }
}

/// Captures this thread's log lines instead of printing them, until dropped.
#[derive(Debug)]
#[must_use = "logs are captured only while the capture is alive"]
pub struct LogCapture {
    lines: CapturedLines,
    previous: Option<CapturedLines>,
}

impl LogCapture {
    /// Start capturing the current thread's log lines.
    pub fn install() -> Self {
        let lines = Rc::new(RefCell::new(Vec::new()));
        let previous = LOGS.with(|l| l.borrow_mut().replace(lines.clone()));
        Self { lines, previous }
    }

    /// The lines logged so far.
    pub fn lines(&self) -> Vec<(Level, String)> {
        self.lines.borrow().clone()
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        let previous = self.previous.take();
        LOGS.with(|l| *l.borrow_mut() = previous);
    }
}

/// The native sink of [`crate::log::log`].
pub(crate) fn record_log(level: Level, message: &str) {
    let captured = LOGS.with(|l| l.borrow().clone());
    match captured {
        Some(lines) => lines.borrow_mut().push((level, message.to_string())),
        None => eprintln!("[plugin {level}] {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_method_and_url_and_records_requests() {
        let mock = MockHttp::new()
            .on_get("http://h/a", Response::new(200).with_body("get"))
            .on_post("http://h/a", Response::new(201))
            .fail(
                "http://h/slow",
                HttpError::Timeout {
                    url: "http://h/slow".into(),
                },
            );
        let _guard = mock.install();
        assert_eq!(
            Request::get("http://h/a").send().unwrap().text().unwrap(),
            "get"
        );
        assert_eq!(Request::post("http://h/a").send().unwrap().status(), 201);
        assert!(matches!(
            Request::get("http://h/slow").send(),
            Err(HttpError::Timeout { .. })
        ));
        assert!(matches!(
            Request::get("http://h/b").send(),
            Err(HttpError::Connection { .. })
        ));
        let seen: Vec<_> = mock
            .requests()
            .iter()
            .map(|r| r.url().to_string())
            .collect();
        assert_eq!(
            seen,
            ["http://h/a", "http://h/a", "http://h/slow", "http://h/b"]
        );
    }

    #[test]
    fn no_mock_means_no_network() {
        assert!(matches!(
            Request::get("http://h/").send(),
            Err(HttpError::Connection { .. })
        ));
    }

    #[test]
    fn guards_restore_the_previous_mock() {
        let outer = MockHttp::new().on_get("http://h/", Response::new(200));
        let _outer = outer.install();
        {
            let inner = MockHttp::new().on_get("http://h/", Response::new(500));
            let _inner = inner.install();
            assert_eq!(Request::get("http://h/").send().unwrap().status(), 500);
        }
        assert_eq!(Request::get("http://h/").send().unwrap().status(), 200);
    }

    #[test]
    fn log_capture_collects_lines() {
        let capture = LogCapture::install();
        crate::info!("collected {} entities", 3);
        crate::log::error("boom");
        assert_eq!(
            capture.lines(),
            [
                (Level::Info, "collected 3 entities".to_string()),
                (Level::Error, "boom".to_string())
            ]
        );
    }
}
