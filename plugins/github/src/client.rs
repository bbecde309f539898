//! The GitHub REST client of the plugin: conditional requests, the rate limit, paging.
//!
//! [`Client`] sends every request with the token, `Accept: application/vnd.github+json` and
//! `X-GitHub-Api-Version`, remembers each answer's `ETag` with the small value the plugin
//! derived from it ([`Cache`]), and asks again with `If-None-Match`: a `304` hands back the
//! remembered value (and does not count against GitHub's rate limit). It reads
//! `X-RateLimit-Remaining`/`X-RateLimit-Reset` on every answer and `Retry-After` on `403`/`429`
//! answers; once the limit is spent (or down to the configured reserve) or GitHub asks it to
//! back off, every further request is refused locally with [`Halt::Deferred`] until the time
//! GitHub named, so the plugin defers work instead of failing. Paged lists follow the `Link`
//! header's `rel="next"` only while it stays on the configured API origin (the token is never
//! sent elsewhere). This module never logs or returns the token.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use readyd_plugin_sdk::http::{Request, Response};
use serde_json::Value;

/// The REST API version the plugin is written against (GitHub's `X-GitHub-Api-Version`).
pub(crate) const API_VERSION: &str = "2022-11-28";

/// How long to back off after a secondary rate limit that names no time: GitHub's docs say to
/// wait at least one minute.
const SECONDARY_BACKOFF_SECS: u64 = 60;

/// Why a request produced no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Halt {
    /// The rate limit is spent or GitHub asked to back off: nothing more until `until`
    /// (Unix seconds).
    Deferred { until: u64, why: String },
    /// GitHub refused the token (`401`): no request can succeed.
    Unauthorized(String),
    /// This request failed (transport error, unexpected status, bad JSON): the entity it was
    /// for is left out this round.
    Failed(String),
}

/// A usable answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// `2xx` (or `304`): the value derived from the body.
    Found(Value),
    /// `404`, with GitHub's `message` (`Branch not protected`, `Not Found`).
    NotFound(String),
    /// `403` that is not a rate limit: GitHub's `message`.
    Forbidden(String),
}

/// One remembered answer: its validator and the value derived from its body, as compact JSON
/// text (a fraction of a parsed value's memory; parsed again only on a `304`).
#[derive(Debug, Clone)]
struct Cached {
    etag: Box<str>,
    value: Box<str>,
    /// The round that last used it (entries no round used lately are evicted first).
    round: u64,
}

/// Remembered answers by URL, bounded. It lives as long as the plugin instance.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    entries: HashMap<String, Cached>,
    capacity: usize,
    round: u64,
}

impl Cache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
            round: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn get(&mut self, url: &str) -> Option<&Cached> {
        let round = self.round;
        let entry = self.entries.get_mut(url)?;
        entry.round = round;
        Some(entry)
    }

    fn put(&mut self, url: &str, etag: &str, value: &Value) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(url) {
            // Full: forget what earlier rounds used and this one did not; if the round itself
            // filled the cache, the answer is not remembered (it is simply asked for in full
            // next time).
            let round = self.round;
            self.entries.retain(|_, e| e.round == round);
            if self.entries.len() >= self.capacity {
                return;
            }
        }
        let round = self.round;
        let cached = Cached {
            etag: etag.into(),
            value: value.to_string().into(),
            round,
        };
        self.entries.insert(url.to_string(), cached);
    }

    fn forget(&mut self, url: &str) {
        self.entries.remove(url);
    }
}

/// Requests of one collection, for the log and the tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Requests sent.
    pub(crate) sent: u64,
    /// Of those, answered `304 Not Modified`.
    pub(crate) not_modified: u64,
}

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    /// API root without a trailing slash: `https://api.github.com`, `https://ghe/api/v3`.
    pub(crate) base: String,
    pub(crate) token: String,
    pub(crate) timeout: Duration,
    /// Stop sending once `X-RateLimit-Remaining` is at or below this.
    pub(crate) reserve: u64,
    pub(crate) cache_entries: usize,
    /// The most pages one list may take.
    pub(crate) max_pages: usize,
}

/// The GitHub client of one plugin instance.
pub(crate) struct Client {
    settings: ClientSettings,
    /// `scheme://host[:port]` of `base`: paging links must stay on it.
    origin: String,
    cache: RefCell<Cache>,
    /// Unix seconds before which no request is sent, and why.
    blocked: RefCell<Option<(u64, String)>>,
    counts: Cell<Counts>,
    /// Unix milliseconds now (the wall clock, or a test's clock).
    clock: Box<dyn Fn() -> u64>,
}

impl Client {
    pub(crate) fn new(settings: ClientSettings, clock: Box<dyn Fn() -> u64>) -> Self {
        let origin = origin_of(&settings.base).to_string();
        Self {
            cache: RefCell::new(Cache::new(settings.cache_entries)),
            settings,
            origin,
            blocked: RefCell::new(None),
            counts: Cell::new(Counts::default()),
            clock,
        }
    }

    /// Unix seconds now.
    pub(crate) fn now(&self) -> u64 {
        (self.clock)() / 1000
    }

    /// Unix milliseconds now.
    pub(crate) fn now_ms(&self) -> u64 {
        (self.clock)()
    }

    /// Start a collection: reset the counts, mark cache use with a new round.
    pub(crate) fn begin_round(&self) {
        self.counts.set(Counts::default());
        self.cache.borrow_mut().round += 1;
    }

    pub(crate) fn counts(&self) -> Counts {
        self.counts.get()
    }

    pub(crate) fn cached_entries(&self) -> usize {
        self.cache.borrow().len()
    }

    /// `Err(Deferred)` while a rate limit holds.
    pub(crate) fn check_blocked(&self) -> Result<(), Halt> {
        let now = self.now();
        let mut blocked = self.blocked.borrow_mut();
        match blocked.as_ref() {
            Some((until, why)) if now < *until => Err(Halt::Deferred {
                until: *until,
                why: why.clone(),
            }),
            Some(_) => {
                *blocked = None;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn block(&self, until: u64, why: String) {
        let mut blocked = self.blocked.borrow_mut();
        // Keep the later of two holds.
        if blocked.as_ref().is_none_or(|(u, _)| until > *u) {
            *blocked = Some((until, why));
        }
    }

    /// `GET <base><path>`; `derive` turns a `2xx` answer into the value kept (and reused on a
    /// `304`).
    pub(crate) fn get(
        &self,
        path: &str,
        derive: impl Fn(&Response) -> Result<Value, String>,
    ) -> Result<Answer, Halt> {
        let url = format!("{}{path}", self.settings.base);
        self.get_url(&url, derive)
    }

    /// Every page of a list, starting at `<base><path>`: `derive` turns one page into a value
    /// (kept per page URL and reused on a `304`); the values come back in page order. `None`
    /// when the first page is `404`; a `403` that is not a rate limit is `Forbidden`.
    pub(crate) fn get_pages(
        &self,
        path: &str,
        derive: impl Fn(&Response) -> Result<Value, String>,
    ) -> Result<Answer, Halt> {
        let mut url = format!("{}{path}", self.settings.base);
        let mut pages = Vec::new();
        loop {
            if pages.len() >= self.settings.max_pages {
                return Err(Halt::Failed(format!(
                    "{path}: more than {} pages",
                    self.settings.max_pages
                )));
            }
            // The page's value is stored with its `next` link, so a `304` knows where to go on.
            let answer = self.get_url(&url, |response| {
                let value = derive(response)?;
                let next = response.header("link").and_then(next_link);
                Ok(serde_json::json!({ "page": value, "next": next }))
            })?;
            let page = match answer {
                Answer::Found(page) => page,
                other if pages.is_empty() => return Ok(other),
                other => {
                    return Err(Halt::Failed(format!(
                        "{path}: a later page answered {other:?}"
                    )));
                }
            };
            pages.push(page["page"].clone());
            match page["next"].as_str() {
                None => break,
                Some(next) if next.starts_with(&format!("{}/", self.origin)) => {
                    url = next.to_string();
                }
                Some(next) => {
                    return Err(Halt::Failed(format!(
                        "{path}: the next page {:?} is not on {}; not followed",
                        origin_of(next),
                        self.origin
                    )));
                }
            }
        }
        Ok(Answer::Found(Value::Array(pages)))
    }

    fn get_url(
        &self,
        url: &str,
        derive: impl Fn(&Response) -> Result<Value, String>,
    ) -> Result<Answer, Halt> {
        self.check_blocked()?;
        let mut request = Request::get(url)
            .bearer_auth(&self.settings.token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", API_VERSION)
            .header("user-agent", "readyd-github")
            .timeout(self.settings.timeout);
        let cached_etag = self.cache.borrow_mut().get(url).map(|c| c.etag.to_string());
        if let Some(etag) = &cached_etag {
            request = request.header("if-none-match", etag.as_str());
        }
        let mut counts = self.counts.get();
        counts.sent += 1;
        self.counts.set(counts);
        let response = request.send().map_err(|e| Halt::Failed(e.to_string()))?;
        let status = response.status();
        let path = path_of(url);
        self.note_rate_limit(&response);

        if status == 304 {
            let mut counts = self.counts.get();
            counts.not_modified += 1;
            self.counts.set(counts);
            let remembered = self.cache.borrow_mut().get(url).map(|c| c.value.clone());
            return match remembered.map(|text| serde_json::from_str(&text)) {
                Some(Ok(value)) => Ok(Answer::Found(value)),
                Some(Err(e)) => Err(Halt::Failed(format!("GET {path}: remembered value: {e}"))),
                None => Err(Halt::Failed(format!(
                    "GET {path} answered 304 to a request that was not conditional"
                ))),
            };
        }
        if (200..300).contains(&status) {
            let value = derive(&response).map_err(|e| Halt::Failed(format!("GET {path}: {e}")))?;
            match response.header("etag") {
                Some(etag) => self.cache.borrow_mut().put(url, etag, &value),
                None => self.cache.borrow_mut().forget(url),
            }
            return Ok(Answer::Found(value));
        }
        self.cache.borrow_mut().forget(url);
        match status {
            404 => Ok(Answer::NotFound(message_of(&response))),
            401 => Err(Halt::Unauthorized(format!(
                "GET {path} answered 401 ({}): the token is missing, expired or revoked",
                message_of(&response)
            ))),
            403 | 429 => match self.rate_limit_hold(&response) {
                Some((until, why)) => {
                    self.block(until, why.clone());
                    Err(Halt::Deferred { until, why })
                }
                None if status == 429 => {
                    let until = self.now() + SECONDARY_BACKOFF_SECS;
                    let why = "429 Too Many Requests".to_string();
                    self.block(until, why.clone());
                    Err(Halt::Deferred { until, why })
                }
                None => Ok(Answer::Forbidden(message_of(&response))),
            },
            _ => Err(Halt::Failed(format!(
                "GET {path} answered {status} ({})",
                message_of(&response)
            ))),
        }
    }

    /// After any answer: once the remaining budget is down to the reserve, hold until reset.
    fn note_rate_limit(&self, response: &Response) {
        let remaining = header_u64(response, "x-ratelimit-remaining");
        let reset = header_u64(response, "x-ratelimit-reset");
        if let (Some(remaining), Some(reset)) = (remaining, reset)
            && remaining <= self.settings.reserve
            && reset > self.now()
        {
            self.block(
                reset,
                format!(
                    "{remaining} requests left of the rate limit (reserve {})",
                    self.settings.reserve
                ),
            );
        }
    }

    /// A `403`/`429` that is a rate limit: until when, and why. `Retry-After` first (secondary
    /// limits), then a spent primary limit (`X-RateLimit-Remaining: 0` until
    /// `X-RateLimit-Reset`), then GitHub's "secondary rate limit" message without headers.
    fn rate_limit_hold(&self, response: &Response) -> Option<(u64, String)> {
        let now = self.now();
        if let Some(seconds) = header_u64(response, "retry-after") {
            return Some((
                now + seconds.max(1),
                format!("{} with Retry-After: {seconds}", response.status()),
            ));
        }
        if header_u64(response, "x-ratelimit-remaining") == Some(0) {
            let reset = header_u64(response, "x-ratelimit-reset")
                .filter(|reset| *reset > now)
                .unwrap_or(now + SECONDARY_BACKOFF_SECS);
            return Some((reset, format!("{}: rate limit exceeded", response.status())));
        }
        let message = message_of(response).to_ascii_lowercase();
        if message.contains("secondary rate limit") || message.contains("abuse") {
            return Some((
                now + SECONDARY_BACKOFF_SECS,
                format!("{}: secondary rate limit", response.status()),
            ));
        }
        None
    }
}

fn header_u64(response: &Response, name: &str) -> Option<u64> {
    response.header(name)?.trim().parse().ok()
}

/// GitHub's `message` from an error body, or the status alone.
fn message_of(response: &Response) -> String {
    serde_json::from_slice::<Value>(response.body())
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .map(|m| m.chars().take(200).collect())
        .unwrap_or_else(|| format!("status {}", response.status()))
}

/// `scheme://authority` of a URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// The path and query of a URL, for messages (never the host's credentials: there are none in
/// URLs here, the token travels in a header).
fn path_of(url: &str) -> &str {
    let origin = origin_of(url);
    &url[origin.len()..]
}

/// The `rel="next"` target of a `Link` header:
/// `<https://api.github.com/repositories/1/dependabot/alerts?after=Y3Vy>; rel="next", <…>; rel="last"`.
pub(crate) fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim();
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_next_link_among_others() {
        let header = "<https://api.github.com/repositories/1296269/dependabot/alerts?per_page=2&after=MjAy>; rel=\"next\", <https://api.github.com/repositories/1296269/dependabot/alerts?per_page=2&before=MjAx>; rel=\"prev\"";
        assert_eq!(
            next_link(header).as_deref(),
            Some(
                "https://api.github.com/repositories/1296269/dependabot/alerts?per_page=2&after=MjAy"
            )
        );
        assert_eq!(
            next_link(
                "<https://api.github.com/x?page=1>; rel=\"prev\", <https://api.github.com/x?page=1>; rel=\"first\""
            ),
            None
        );
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn origins_and_paths() {
        assert_eq!(
            origin_of("https://ghe.example/api/v3/repos/a/b"),
            "https://ghe.example"
        );
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(
            path_of("http://127.0.0.1:8080/repos/a/b?x=1"),
            "/repos/a/b?x=1"
        );
    }

    #[test]
    fn a_full_cache_drops_what_this_round_did_not_use() {
        let mut cache = Cache::new(2);
        cache.round = 1;
        cache.put("a", "1", &Value::Null);
        cache.put("b", "2", &Value::Null);
        cache.round = 2;
        assert!(cache.get("a").is_some());
        cache.put("c", "3", &Value::Null);
        assert!(cache.get("b").is_none(), "b was not used this round");
        assert!(cache.get("a").is_some() && cache.get("c").is_some());
        cache.put("d", "4", &Value::Null);
        assert_eq!(
            cache.len(),
            2,
            "a round that fills the cache stores no more"
        );
    }
}
