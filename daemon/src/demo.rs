//! The demo's local stand-in for the outside systems the example organisation's plugins ask:
//! a paging system (`GET /oncall/{id}`) and Prometheus (`GET /api/v1/query`), answering in those
//! APIs' real response formats from the JSON files in `examples/stand-in/`, plus a sink for the
//! demo's notification channels (`POST /hooks/...`, listed by `GET /received`).
//!
//! It exists so that `readyd demo` never reaches an address off the machine. It is not part of
//! the daemon's API and is started only by `readyd demo` (and by tests that need the same thing).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// A running stand-in; stops when dropped.
#[derive(Debug)]
pub struct StandIn {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Notifications received so far (channel path, headers, body).
    pub received: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Data {
    oncall: BTreeMap<String, Value>,
    prometheus: BTreeMap<String, Value>,
    received: Arc<Mutex<Vec<Value>>>,
}

/// Start the stand-in on `addr` with data from `dir` (`oncall.json`, `prometheus.json`).
pub async fn start_stand_in(addr: SocketAddr, dir: PathBuf) -> anyhow::Result<StandIn> {
    let read = |name: &str| -> anyhow::Result<BTreeMap<String, Value>> {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?),
            Err(_) => Ok(BTreeMap::new()),
        }
    };
    let received = Arc::new(Mutex::new(Vec::new()));
    let data = Arc::new(Data {
        oncall: read("oncall.json")?,
        prometheus: read("prometheus.json")?,
        received: received.clone(),
    });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let data = data.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let data = data.clone();
                    async move { Ok::<_, Infallible>(answer(&data, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(StandIn {
        addr,
        received,
        task,
    })
}

fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .expect("static response parts")
}

async fn answer(data: &Data, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let method = req.method().clone();
    if method == hyper::Method::POST && path.starts_with("/hooks/") {
        let headers: BTreeMap<String, String> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut received = data.received.lock().unwrap_or_else(|e| e.into_inner());
        received.push(json!({"path": path, "headers": headers, "body": body}));
        return json_response(StatusCode::OK, &json!({"ok": true}));
    }
    if path == "/received" {
        let received = data.received.lock().unwrap_or_else(|e| e.into_inner());
        return json_response(StatusCode::OK, &Value::Array(received.clone()));
    }
    if let Some(id) = path.strip_prefix("/oncall/") {
        return match data.oncall.get(id) {
            Some(v) => json_response(StatusCode::OK, v),
            None => json_response(StatusCode::NOT_FOUND, &json!({"error": "no such service"})),
        };
    }
    if path == "/api/v1/query" {
        let q: String = form_decode(&query, "query").unwrap_or_default();
        return json_response(StatusCode::OK, &prometheus_answer(&data.prometheus, &q));
    }
    json_response(StatusCode::NOT_FOUND, &json!({"error": "not found"}))
}

/// A Prometheus instant-query answer for the service named in the query's `service="..."`.
fn prometheus_answer(data: &BTreeMap<String, Value>, query: &str) -> Value {
    let service = query
        .split("service=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("");
    let metric = if query.contains("histogram_quantile") {
        "latency_p99_ms"
    } else if query.contains("http_requests_total") {
        "error_ratio"
    } else {
        "availability"
    };
    let result = match data
        .get(service)
        .and_then(|s| s.get(metric))
        .and_then(Value::as_f64)
    {
        Some(v) => {
            vec![json!({"metric": {"service": service}, "value": [1_764_000_000.0, v.to_string()]})]
        }
        None => Vec::new(),
    };
    json!({"status": "success", "data": {"resultType": "vector", "result": result}})
}

fn form_decode(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) if hex.len() == 2 => {
                        out.push(b);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_answers_in_the_real_format() {
        let mut data = BTreeMap::new();
        data.insert(
            "pay".to_owned(),
            json!({"availability": 0.999, "error_ratio": 0.001}),
        );
        let q = "avg_over_time(up{service=\"pay\"}[30d])";
        let a = prometheus_answer(&data, q);
        assert_eq!(a["status"], "success");
        assert_eq!(a["data"]["result"][0]["value"][1], "0.999");
        let q = "sum(rate(http_requests_total{service=\"nope\"}[30d]))";
        assert_eq!(prometheus_answer(&data, q)["data"]["result"], json!([]));
    }

    #[test]
    fn decodes_query_strings() {
        assert_eq!(
            form_decode("a=1&query=up%7Bservice%3D%22x%22%7D+1", "query").unwrap(),
            "up{service=\"x\"} 1"
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
