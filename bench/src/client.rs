//! A small HTTP/1.1 client for the daemon's API on loopback (hyper-util's pooled client), and
//! the open-loop load generator that keeps a fixed request rate whatever the answers' latency.
//!
//! Open loop: request `i` is sent at `start + i / rate`, on its own task, never waiting for
//! earlier answers — so a slow server meets the same offered load instead of a politely slowed
//! client (closed-loop tools such as plain wrk hide queueing that way). Latency is measured
//! from the moment a request is handed to the client; how late the sender was against its
//! schedule is reported apart, so a client that could not keep up is visible. Only 127.0.0.1
//! is ever a target.
//!
//! Over HTTPS ([`Http::new_tls`]) the client is readyd's own outgoing client (`readyd::net`,
//! rustls through a hyper-util connector, the one `readyd gate --ca-file` uses in CI) trusting
//! the run's throwaway CA besides the system roots. Both kinds pool and keep connections alive, as a CI runner's HTTP
//! client would: a TLS handshake is paid once per pooled connection, not per request
//! ([`Http::fresh`] gives a client with an empty pool, to measure that cost apart).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::stats::Samples;

/// A client of one daemon.
#[derive(Clone)]
pub struct Http {
    pool: Pool,
    base: String,
}

#[derive(Clone)]
enum Pool {
    Plain(Client<HttpConnector, Full<Bytes>>),
    /// The `Net` is kept to make [`Http::fresh`] clients with the same trust.
    Tls(readyd::net::HttpClient<Full<Bytes>>, readyd::net::Net),
}

fn plain_pool() -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        Http {
            pool: Pool::Plain(plain_pool()),
            base: format!("http://{addr}"),
        }
    }

    /// HTTPS to `addr`, trusting the CA in `ca_file` as `readyd gate --ca-file` does; never
    /// through a proxy, whatever the environment says (loopback only).
    pub fn new_tls(addr: SocketAddr, ca_file: &std::path::Path) -> anyhow::Result<Http> {
        let net = readyd::net::Net::new(Some(ca_file), readyd::net::ProxySettings::direct())
            .map_err(|e| anyhow!("the HTTPS client: {e}"))?;
        Ok(Http {
            pool: Pool::Tls(net.client(), net),
            base: format!("https://{addr}"),
        })
    }

    /// The same kind of client with an empty pool: its first request opens a new connection
    /// (TCP, and the TLS handshake over HTTPS).
    pub fn fresh(&self) -> Http {
        Http {
            pool: match &self.pool {
                Pool::Plain(_) => Pool::Plain(plain_pool()),
                Pool::Tls(_, net) => Pool::Tls(net.client(), net.clone()),
            },
            base: self.base.clone(),
        }
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        match self.pool {
            Pool::Plain(_) => "http",
            Pool::Tls(..) => "https",
        }
    }

    /// Sends one request; the status and the whole body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(v) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(serde_json::to_vec(v)?))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body)?;
        let response = match &self.pool {
            Pool::Plain(client) => client.request(request).await,
            Pool::Tls(client, _) => client.request(request).await,
        }
        .with_context(|| format!("requesting {path}"))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the answer to {path}"))?
            .to_bytes();
        Ok((status, bytes))
    }

    /// `GET path` → JSON; a status other than 2xx is an error with the body.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self.send(Method::GET, path, None, None).await?;
        json_answer(path, status, &body)
    }

    /// `GET path` → text.
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let (status, body) = self.send(Method::GET, path, None, None).await?;
        if !status.is_success() {
            return Err(anyhow!(
                "GET {path}: {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// `POST path` with a JSON body and a bearer token → JSON; a status other than 2xx is an
    /// error with the body.
    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> anyhow::Result<Value> {
        let (status, answer) = self
            .send(Method::POST, path, Some(token), Some(body))
            .await?;
        json_answer(path, status, &answer)
    }
}

fn json_answer(path: &str, status: StatusCode, body: &[u8]) -> anyhow::Result<Value> {
    if !status.is_success() {
        return Err(anyhow!(
            "{path}: {status}: {}",
            String::from_utf8_lossy(body)
        ));
    }
    serde_json::from_slice(body).with_context(|| format!("{path}: the answer is not JSON"))
}

/// What an open-loop run observed.
#[derive(Debug)]
pub struct LoadRun {
    /// Latency of each answered request, µs.
    pub latency_us: Samples,
    pub sent: usize,
    /// Answers with a 2xx status.
    pub ok: usize,
    /// Transport errors and non-2xx answers.
    pub failed: usize,
    /// Answers per second actually achieved.
    pub achieved_rate: f64,
    /// Largest delay of a send behind its schedule.
    pub max_lag: Duration,
}

/// Sends `GET paths[i % paths.len()]` at `rate` per second for `duration`.
pub async fn open_loop(
    http: &Http,
    paths: Arc<Vec<String>>,
    rate: f64,
    duration: Duration,
) -> LoadRun {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = (duration.as_secs_f64() * rate) as usize;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<Duration>>();
    let start = tokio::time::Instant::now();
    let mut max_lag = Duration::ZERO;
    for i in 0..total {
        let at = start + interval * i as u32;
        tokio::time::sleep_until(at).await;
        max_lag = max_lag.max(tokio::time::Instant::now().saturating_duration_since(at));
        let http = http.clone();
        let tx = tx.clone();
        let paths = paths.clone();
        tokio::spawn(async move {
            let path = &paths[i % paths.len()];
            let sent = Instant::now();
            let answer = http.send(Method::GET, path, None, None).await;
            let elapsed = sent.elapsed();
            let _ = tx.send(match answer {
                Ok((status, _)) if status.is_success() => Some(elapsed),
                _ => None,
            });
        });
    }
    drop(tx);
    let mut run = LoadRun {
        latency_us: Samples::new(),
        sent: total,
        ok: 0,
        failed: 0,
        achieved_rate: 0.0,
        max_lag,
    };
    while let Some(answer) = rx.recv().await {
        match answer {
            Some(latency) => {
                run.ok += 1;
                run.latency_us.push(latency.as_secs_f64() * 1e6);
            }
            None => run.failed += 1,
        }
    }
    run.achieved_rate = run.ok as f64 / start.elapsed().as_secs_f64();
    run
}
