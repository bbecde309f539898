//! `readyd gate ID`: the deploy gate's command-line client, for CI pipelines.
//!
//! [`ask_gate`] asks a running daemon `GET /v1/gate/{id}` and returns its [`GateAnswer`];
//! [`gate_command`] prints the verdict and turns it into the exit code a pipeline acts on:
//! 0 allowed, 1 refused, 2 the question could not be answered (daemon unreachable, bad token,
//! unknown entity). It never retries: a gate that cannot be asked must fail the pipeline loudly,
//! not slow it down. Plain `http://` only; put a TLS-terminating proxy in front for `https://`.

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::engine::GateAnswer;

/// How long the whole question may take.
pub const GATE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the gate could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("`{url}` is not a usable daemon URL: {message}")]
    Url { url: String, message: String },
    #[error("`{0}` is not an entity identifier ([a-z0-9][a-z0-9._-]*)")]
    Identifier(String),
    #[error("cannot reach the daemon at {url}: {message}")]
    Transport { url: String, message: String },
    #[error("the daemon at {url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("the daemon refused ({status}, {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the daemon's answer is not a gate answer: {0}")]
    Malformed(String),
}

/// Ask the daemon at `url` (e.g. `http://127.0.0.1:7878`, optionally with a path prefix) whether
/// `id` may be deployed.
pub async fn ask_gate(url: &str, token: Option<&str>, id: &str) -> Result<GateAnswer, GateError> {
    if !crate::model::is_valid_identifier(id) {
        return Err(GateError::Identifier(id.to_owned()));
    }
    let bad_url = |message: String| GateError::Url {
        url: url.to_owned(),
        message,
    };
    if !url.starts_with("http://") {
        return Err(bad_url(
            "only http:// is supported (use a TLS proxy for https)".into(),
        ));
    }
    let target: Uri = format!("{}/v1/gate/{id}", url.trim_end_matches('/'))
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad_url(e.to_string()))?;
    let mut request = Request::get(target).header(ACCEPT, "application/json");
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| bad_url(e.to_string()))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| GateError::Transport {
                url: url.to_owned(),
                message: error_chain(&e),
            })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| GateError::Transport {
                url: url.to_owned(),
                message: e.to_string(),
            })?
            .to_bytes();
        Ok::<_, GateError>((status, body))
    };
    let (status, body) = tokio::time::timeout(GATE_TIMEOUT, exchange)
        .await
        .map_err(|_| GateError::Timeout {
            url: url.to_owned(),
            timeout: GATE_TIMEOUT,
        })??;
    if status != StatusCode::OK {
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let field = |name: &str| {
            error["error"][name]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect())
        };
        return Err(GateError::Refused {
            status: status.as_u16(),
            code: field("code"),
            message: field("message"),
        });
    }
    serde_json::from_slice(&body).map_err(|e| GateError::Malformed(e.to_string()))
}

/// `readyd gate ID --url URL [--token T]`: print the verdict; 0 allowed, 1 refused, 2 error.
pub async fn gate_command(url: &str, token: Option<&str>, id: &str) -> anyhow::Result<i32> {
    match ask_gate(url, token, id).await {
        Ok(answer) => {
            print!("{}", render(&answer));
            Ok(if answer.allowed { 0 } else { 1 })
        }
        Err(error) => {
            eprintln!("readyd gate: {error}");
            Ok(2)
        }
    }
}

/// The verdict as a pipeline log shows it.
fn render(answer: &GateAnswer) -> String {
    let mut out = format!(
        "{}: {}\n",
        answer.entity,
        if answer.allowed { "allowed" } else { "refused" }
    );
    for reason in &answer.reasons {
        out.push_str(&format!("  - {reason}\n"));
    }
    out
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_verdict_and_reasons() {
        let refused = GateAnswer {
            entity: "payments-api".into(),
            allowed: false,
            reasons: vec![
                "locked by pat: incident".into(),
                "security below Silver".into(),
            ],
            evaluated_at: None,
        };
        assert_eq!(
            render(&refused),
            "payments-api: refused\n  - locked by pat: incident\n  - security below Silver\n"
        );
        let allowed = GateAnswer {
            allowed: true,
            reasons: vec![],
            ..refused
        };
        assert_eq!(render(&allowed), "payments-api: allowed\n");
    }

    #[tokio::test]
    async fn bad_arguments_fail_before_any_connection() {
        assert!(matches!(
            ask_gate("http://127.0.0.1:1", None, "Bad/Id").await,
            Err(GateError::Identifier(_))
        ));
        assert!(matches!(
            ask_gate("https://example.invalid", None, "ok").await,
            Err(GateError::Url { .. })
        ));
        assert!(matches!(
            ask_gate("http://bad host", None, "ok").await,
            Err(GateError::Url { .. })
        ));
        assert_eq!(
            gate_command("ftp://x", None, "ok").await.unwrap(),
            2,
            "an unusable URL is an error, not a refusal"
        );
    }

    #[tokio::test]
    async fn an_unreachable_daemon_is_a_transport_error() {
        // Bind then drop, so the port is (almost certainly) closed.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        match ask_gate(&format!("http://127.0.0.1:{port}"), None, "x").await {
            Err(GateError::Transport { message, .. }) => assert!(!message.is_empty()),
            other => panic!("{other:?}"),
        }
    }
}
