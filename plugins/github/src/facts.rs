//! One repository's facts: which endpoints are asked, in what order, and how each answer (in
//! the shapes of GitHub's REST API description, api.github.com 2022-11-28) becomes facts.
//!
//! Each `derive_*` keeps only the few fields a fact needs, so that is all the client remembers
//! for a `304`. A `404` that means "there is none" (no protection, no `CODEOWNERS`, no release)
//! is a fact; a `403` or a `404` that means "you may not see it" leaves the facts of that part
//! out and names the part under `unreadable`, so a rule on it cannot pass by accident. This
//! module sends nothing itself: every request goes through [`Client`].

use readyd_plugin_sdk::http::{Response, encode_component};
use serde_json::{Map, Value, json};

use crate::Part;
use crate::client::{Answer, Client, Halt};
use crate::time;

/// GitHub's message when a branch has no protection (any other `404` means "not visible").
const NOT_PROTECTED: &str = "Branch not protected";

/// Where GitHub looks for `CODEOWNERS`, in its order (the first one found is used).
const CODEOWNERS_PATHS: [&str; 3] = [".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"];

const SEVERITIES: [&str; 4] = ["critical", "high", "medium", "low"];

/// Collect every configured part of `slug` (`owner/name`).
pub(crate) fn collect(client: &Client, parts: &[Part], slug: &str) -> Result<Value, Halt> {
    let repo_path = format!("/repos/{slug}");
    let mut facts = Map::new();
    facts.insert("repository".into(), json!(slug));
    let repository = match client.get(&repo_path, derive_repository)? {
        Answer::Found(repository) => repository,
        Answer::NotFound(_) => {
            facts.insert("found".into(), json!(false));
            return Ok(Value::Object(facts));
        }
        Answer::Forbidden(message) => {
            return Err(Halt::Failed(format!(
                "GET {repo_path} answered 403 ({message})"
            )));
        }
    };
    facts.insert("found".into(), json!(true));
    if let Value::Object(fields) = &repository {
        facts.extend(fields.clone());
    }
    let mut unreadable = Map::new();
    let mut last_release = None;
    let mut last_deployment = None;
    for part in parts {
        match part {
            Part::BranchProtection => {
                let Some(branch) = repository["default_branch"].as_str() else {
                    continue;
                };
                let path = format!(
                    "{repo_path}/branches/{}/protection",
                    encode_component(branch)
                );
                match client.get(&path, derive_protection)? {
                    Answer::Found(protection) => {
                        facts.insert("branch_protected".into(), json!(true));
                        facts.insert("branch_protection".into(), protection);
                    }
                    Answer::NotFound(message) if message == NOT_PROTECTED => {
                        facts.insert("branch_protected".into(), json!(false));
                        facts.insert("branch_protection".into(), unprotected());
                    }
                    Answer::NotFound(message) | Answer::Forbidden(message) => {
                        unreadable.insert("branch_protection".into(), json!(message));
                    }
                }
            }
            Part::Codeowners => {
                let mut found = None;
                let mut hidden = None;
                for candidate in CODEOWNERS_PATHS {
                    let path = format!("{repo_path}/contents/{candidate}");
                    match client.get(&path, derive_content_kind)? {
                        Answer::Found(kind) if kind == "file" => {
                            found = Some(candidate);
                            break;
                        }
                        Answer::Found(_) | Answer::NotFound(_) => {}
                        Answer::Forbidden(message) => {
                            hidden = Some(message);
                            break;
                        }
                    }
                }
                match (found, hidden) {
                    (None, Some(message)) => {
                        unreadable.insert("codeowners".into(), json!(message));
                    }
                    (found, _) => {
                        facts.insert("has_codeowners".into(), json!(found.is_some()));
                        facts.insert("codeowners_path".into(), json!(found));
                    }
                }
            }
            Part::Workflows => {
                let path = format!("{repo_path}/actions/workflows?per_page=1");
                match client.get(&path, derive_total_count)? {
                    Answer::Found(count) => {
                        let count = count.as_u64().unwrap_or(0);
                        facts.insert("workflows".into(), json!(count));
                        facts.insert("has_workflows".into(), json!(count > 0));
                    }
                    Answer::NotFound(message) | Answer::Forbidden(message) => {
                        unreadable.insert("workflows".into(), json!(message));
                    }
                }
            }
            Part::DependabotAlerts => {
                let path = format!("{repo_path}/dependabot/alerts?state=open&per_page=100");
                match client.get_pages(&path, derive_alert_page)? {
                    Answer::Found(pages) => {
                        facts.insert("dependabot_alerts_enabled".into(), json!(true));
                        facts.insert("dependabot_alerts".into(), sum_alert_pages(&pages));
                    }
                    // "Dependabot alerts are disabled for this repository." (403)
                    Answer::Forbidden(message)
                        if message.to_ascii_lowercase().contains("disabled") =>
                    {
                        facts.insert("dependabot_alerts_enabled".into(), json!(false));
                    }
                    Answer::NotFound(message) | Answer::Forbidden(message) => {
                        unreadable.insert("dependabot_alerts".into(), json!(message));
                    }
                }
            }
            Part::Releases => {
                let path = format!("{repo_path}/releases/latest");
                match client.get(&path, derive_release_time)? {
                    Answer::Found(at) => last_release = at.as_str().map(str::to_string),
                    Answer::NotFound(_) => {}
                    Answer::Forbidden(message) => {
                        unreadable.insert("releases".into(), json!(message));
                        continue;
                    }
                }
                facts.insert("last_release_at".into(), json!(last_release));
            }
            Part::Deployments => {
                let path = format!("{repo_path}/deployments?per_page=1");
                match client.get(&path, derive_deployment_time)? {
                    Answer::Found(at) => last_deployment = at.as_str().map(str::to_string),
                    Answer::NotFound(_) => {}
                    Answer::Forbidden(message) => {
                        unreadable.insert("deployments".into(), json!(message));
                        continue;
                    }
                }
                facts.insert("last_deployment_at".into(), json!(last_deployment));
            }
        }
    }
    if parts.contains(&Part::Releases) || parts.contains(&Part::Deployments) {
        let latest = [last_release, last_deployment]
            .into_iter()
            .flatten()
            .filter_map(|at| time::parse_rfc3339(&at).map(|t| (t, at)))
            .max_by_key(|(t, _)| *t);
        let days = latest.as_ref().map(|(t, _)| {
            let now = i64::try_from(client.now()).unwrap_or(i64::MAX);
            (now - t).max(0) / 86_400
        });
        facts.insert(
            "last_release_or_deployment_at".into(),
            json!(latest.map(|(_, at)| at)),
        );
        facts.insert("days_since_last_release_or_deployment".into(), json!(days));
    }
    if !unreadable.is_empty() {
        facts.insert("unreadable".into(), Value::Object(unreadable));
    }
    Ok(Value::Object(facts))
}

fn body(response: &Response) -> Result<Value, String> {
    response.json::<Value>().map_err(|e| e.to_string())
}

/// `GET /repos/{owner}/{repo}` ("full-repository"): `default_branch`, `archived`,
/// `visibility` (older GitHub Enterprise Server versions only say `private`).
fn derive_repository(response: &Response) -> Result<Value, String> {
    let repo = body(response)?;
    let default_branch = repo["default_branch"]
        .as_str()
        .ok_or("the repository has no default_branch")?;
    let visibility = match repo["visibility"].as_str() {
        Some(v) => v.to_string(),
        None if repo["private"] == true => "private".into(),
        None => "public".into(),
    };
    Ok(json!({
        "default_branch": default_branch,
        "archived": repo["archived"].as_bool().unwrap_or(false),
        "visibility": visibility,
    }))
}

/// `GET /repos/{owner}/{repo}/branches/{branch}/protection` ("branch-protection").
fn derive_protection(response: &Response) -> Result<Value, String> {
    let p = body(response)?;
    if !p.is_object() {
        return Err("branch protection is not an object".into());
    }
    let reviews = &p["required_pull_request_reviews"];
    let checks = &p["required_status_checks"];
    let mut contexts: Vec<String> = checks["contexts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .chain(
            checks["checks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["context"].as_str()),
        )
        .map(str::to_string)
        .collect();
    contexts.sort();
    contexts.dedup();
    let enabled = |name: &str| p[name]["enabled"].as_bool().unwrap_or(false);
    Ok(json!({
        "required_reviews": reviews.is_object(),
        "required_review_count": reviews["required_approving_review_count"].as_u64().unwrap_or(0),
        "require_code_owner_reviews": reviews["require_code_owner_reviews"].as_bool().unwrap_or(false),
        "dismiss_stale_reviews": reviews["dismiss_stale_reviews"].as_bool().unwrap_or(false),
        "required_status_checks": checks.is_object(),
        "status_checks": contexts,
        "strict_status_checks": checks["strict"].as_bool().unwrap_or(false),
        "enforce_admins": enabled("enforce_admins"),
        "force_pushes_allowed": enabled("allow_force_pushes"),
        "deletions_allowed": enabled("allow_deletions"),
    }))
}

/// The protection facts of a branch without protection: nothing required, everything allowed.
fn unprotected() -> Value {
    json!({
        "required_reviews": false,
        "required_review_count": 0,
        "require_code_owner_reviews": false,
        "dismiss_stale_reviews": false,
        "required_status_checks": false,
        "status_checks": [],
        "strict_status_checks": false,
        "enforce_admins": false,
        "force_pushes_allowed": true,
        "deletions_allowed": true,
    })
}

/// `GET /repos/{owner}/{repo}/contents/{path}` ("content-file", or an array for a directory):
/// the entry's `type`.
fn derive_content_kind(response: &Response) -> Result<Value, String> {
    let content = body(response)?;
    Ok(match content["type"].as_str() {
        Some(kind) => json!(kind),
        None => json!("dir"),
    })
}

/// `GET /repos/{owner}/{repo}/actions/workflows`: `total_count`.
fn derive_total_count(response: &Response) -> Result<Value, String> {
    let list = body(response)?;
    list["total_count"]
        .as_u64()
        .map(|n| json!(n))
        .ok_or_else(|| "the workflow list has no total_count".into())
}

/// One page of `GET /repos/{owner}/{repo}/dependabot/alerts` ("dependabot-alert" items):
/// counts by `security_advisory.severity` and how many have a patched version.
fn derive_alert_page(response: &Response) -> Result<Value, String> {
    let alerts = body(response)?;
    let alerts = alerts.as_array().ok_or("the alert list is not an array")?;
    let mut counts =
        json!({"critical": 0, "high": 0, "medium": 0, "low": 0, "total": 0, "fixable": 0});
    for alert in alerts {
        let severity = alert["security_advisory"]["severity"]
            .as_str()
            .or_else(|| alert["security_vulnerability"]["severity"].as_str())
            .unwrap_or("low");
        // Anything GitHub may add beyond the four is counted with `low`: counted, not lost.
        let severity = SEVERITIES
            .iter()
            .find(|s| **s == severity)
            .copied()
            .unwrap_or("low");
        bump(&mut counts, severity);
        bump(&mut counts, "total");
        if alert["security_vulnerability"]["first_patched_version"]["identifier"].is_string() {
            bump(&mut counts, "fixable");
        }
    }
    Ok(counts)
}

fn bump(counts: &mut Value, key: &str) {
    counts[key] = json!(counts[key].as_u64().unwrap_or(0) + 1);
}

fn sum_alert_pages(pages: &Value) -> Value {
    let mut sum =
        json!({"critical": 0, "high": 0, "medium": 0, "low": 0, "total": 0, "fixable": 0});
    for page in pages.as_array().into_iter().flatten() {
        for key in ["critical", "high", "medium", "low", "total", "fixable"] {
            sum[key] = json!(sum[key].as_u64().unwrap_or(0) + page[key].as_u64().unwrap_or(0));
        }
    }
    sum
}

/// `GET /repos/{owner}/{repo}/releases/latest` ("release"): `published_at` (a draft has none;
/// then `created_at`).
fn derive_release_time(response: &Response) -> Result<Value, String> {
    let release = body(response)?;
    Ok(timestamp(&release["published_at"])
        .or_else(|| timestamp(&release["created_at"]))
        .map_or(Value::Null, Value::String))
}

/// `GET /repos/{owner}/{repo}/deployments?per_page=1` (newest first): its `created_at`.
fn derive_deployment_time(response: &Response) -> Result<Value, String> {
    let deployments = body(response)?;
    let list = deployments
        .as_array()
        .ok_or("the deployment list is not an array")?;
    Ok(list
        .first()
        .and_then(|d| timestamp(&d["created_at"]))
        .map_or(Value::Null, Value::String))
}

/// A timestamp field, only if it is one.
fn timestamp(value: &Value) -> Option<String> {
    let text = value.as_str()?;
    time::parse_rfc3339(text).map(|_| text.to_string())
}
