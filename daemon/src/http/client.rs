//! `readyd gate ID`: the deploy gate's command-line client, for CI pipelines.
//!
//! [`ask_gate`] asks a running daemon `GET /v1/gate/{id}` and returns its [`GateAnswer`];
//! [`gate_command`] prints the verdict and turns it into the exit code a pipeline acts on:
//! 0 allowed, 1 refused, 2 the question could not be answered (daemon unreachable, bad token,
//! unknown entity). It never retries: a gate that cannot be asked must fail the pipeline loudly,
//! not slow it down. It speaks `http://` and `https://` through [`crate::net`]: the system's
//! roots plus `--ca-file` are trusted, and `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` of its
//! environment are honoured (a CI runner behind a proxy, a daemon behind a TLS ingress).

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};

use crate::engine::GateAnswer;
use crate::net::{Net, NetError, ProxySettings, redact};

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
    #[error("cannot reach the daemon at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: NetError,
    },
    #[error("cannot set up the client: {0}")]
    Setup(String),
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

/// The client of `readyd gate`: the system's roots plus `ca_file`, the process's proxies.
pub fn gate_net(ca_file: Option<&std::path::Path>) -> Result<Net, GateError> {
    let proxy = ProxySettings::from_process_env().map_err(|e| GateError::Setup(e.to_string()))?;
    Net::new(ca_file, proxy).map_err(|e| GateError::Setup(e.to_string()))
}

/// Ask the daemon at `url` (e.g. `http://127.0.0.1:7878`, optionally with a path prefix) whether
/// `id` may be deployed: directly, trusting the system's roots.
pub async fn ask_gate(url: &str, token: Option<&str>, id: &str) -> Result<GateAnswer, GateError> {
    ask_gate_via(&Net::system(), url, token, id).await
}

/// [`ask_gate`] connecting through `net` (`https://` against its roots, its proxies).
pub async fn ask_gate_via(
    net: &Net,
    url: &str,
    token: Option<&str>,
    id: &str,
) -> Result<GateAnswer, GateError> {
    if !crate::model::is_valid_identifier(id) {
        return Err(GateError::Identifier(id.to_owned()));
    }
    let shown = redact(url);
    let bad_url = |message: String| GateError::Url {
        url: shown.clone(),
        message,
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(bad_url(
            "the URL must start with http:// or https://".into(),
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
    let client = net.client::<Empty<Bytes>>();
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| match NetError::find(&e) {
                Some(source) => GateError::Connect {
                    url: shown.clone(),
                    source: source.clone(),
                },
                None => GateError::Transport {
                    url: shown.clone(),
                    message: crate::net::error_chain(&e),
                },
            })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| GateError::Transport {
                url: shown.clone(),
                message: e.to_string(),
            })?
            .to_bytes();
        Ok::<_, GateError>((status, body))
    };
    let (status, body) = tokio::time::timeout(GATE_TIMEOUT, exchange)
        .await
        .map_err(|_| GateError::Timeout {
            url: shown.clone(),
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
    gate_command_with(url, token, None, id).await
}

/// [`gate_command`] with `--ca-file`, and the proxies of the process's environment.
pub async fn gate_command_with(
    url: &str,
    token: Option<&str>,
    ca_file: Option<&std::path::Path>,
    id: &str,
) -> anyhow::Result<i32> {
    let asked = match gate_net(ca_file) {
        Ok(net) => ask_gate_via(&net, url, token, id).await,
        Err(e) => Err(e),
    };
    match asked {
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
        let net = Net::system();
        assert!(matches!(
            ask_gate_via(&net, "http://127.0.0.1:1", None, "Bad/Id").await,
            Err(GateError::Identifier(_))
        ));
        assert!(matches!(
            ask_gate_via(&net, "ftp://example.invalid", None, "ok").await,
            Err(GateError::Url { .. })
        ));
        assert!(matches!(
            ask_gate_via(&net, "http://bad host", None, "ok").await,
            Err(GateError::Url { .. })
        ));
        assert_eq!(
            gate_command("ftp://x", None, "ok").await.unwrap(),
            2,
            "an unusable URL is an error, not a refusal"
        );
        let missing = std::path::Path::new("/nonexistent/ca.pem");
        assert_eq!(
            gate_command_with("https://127.0.0.1:1", None, Some(missing), "ok")
                .await
                .unwrap(),
            2,
            "an unreadable --ca-file is an error"
        );
    }

    #[tokio::test]
    async fn an_unreachable_daemon_is_a_transport_error() {
        // Bind then drop, so the port is (almost certainly) closed.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        match ask_gate_via(
            &Net::system(),
            &format!("http://127.0.0.1:{port}"),
            None,
            "x",
        )
        .await
        {
            Err(GateError::Connect {
                source: NetError::Refused { .. },
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }
}
