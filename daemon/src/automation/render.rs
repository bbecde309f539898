//! Rendering: an [`Event`] as the JSON document each kind of channel expects.
//!
//! - Slack incoming webhook: Block Kit (`header`, a `section` with the message and service /
//!   owner / tier fields, a `section` listing blocking rules, an `actions` block with a button to
//!   the dashboard) plus a `text` fallback for notifications and old clients.
//! - Microsoft Teams incoming webhook (Workflows or connector): an Adaptive Card 1.4 inside
//!   `{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive",
//!   "content":{...}}]}`, with a `FactSet` and an `Action.OpenUrl`.
//! - Generic webhook: `{"event": <Event>, "delivery": {"idempotency_key", "channel",
//!   "created_at"}}`; the delivery worker signs the exact bytes it sends.
//!
//! Rendering happens when the notification is planned, so the outbox holds the exact document
//! and a restart never changes what a receiver gets. Text from people and plugins is escaped for
//! Slack's mrkdwn and cut to Slack's block limits. This module never performs I/O.

use serde_json::{Value, json};

use super::events::Event;
use crate::config::ChannelKind;
use crate::model::Timestamp;

/// Slack refuses a `header` text over 150 characters.
const SLACK_HEADER_MAX: usize = 150;
/// Slack refuses a `section` text over 3000 characters.
const SLACK_SECTION_MAX: usize = 3000;
/// Blocking rules listed before "and N more".
const MAX_LISTED_RULES: usize = 10;

/// The document to POST to a channel of `kind` for `event`.
pub fn render(
    event: &Event,
    kind: ChannelKind,
    channel: &str,
    idempotency_key: &str,
    created_at: Timestamp,
) -> Value {
    match kind {
        ChannelKind::Slack => slack(event),
        ChannelKind::Teams => teams(event),
        ChannelKind::Webhook => webhook(event, channel, idempotency_key, created_at),
    }
}

/// The headline: the kind's title and the subject (`Below tier requirement: payments-api`).
pub fn headline(event: &Event) -> String {
    let subject = event
        .entity
        .as_ref()
        .map(|e| e.identifier.clone())
        .or_else(|| {
            event
                .data
                .get("initiative")
                .and_then(|i| i.get("title"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    match subject {
        Some(s) => format!("{}: {s}", event.kind.title()),
        None => event.kind.title().to_owned(),
    }
}

/// Plain-text lines of the blocking rules (`• has-oncall (…)`), at most [`MAX_LISTED_RULES`].
fn blocking_lines(event: &Event) -> Vec<String> {
    let mut lines: Vec<String> = event
        .blocking
        .iter()
        .take(MAX_LISTED_RULES)
        .map(|b| format!("{} on {}: {}", b.title, b.scorecard, b.describe()))
        .collect();
    if event.blocking.len() > MAX_LISTED_RULES {
        lines.push(format!(
            "and {} more",
            event.blocking.len() - MAX_LISTED_RULES
        ));
    }
    lines
}

/// (label, value) pairs shown as Slack fields and Teams facts.
fn facts(event: &Event) -> Vec<(&'static str, String)> {
    let mut facts = Vec::new();
    if let Some(e) = &event.entity {
        facts.push(("Service", format!("{} ({})", e.title, e.identifier)));
        facts.push(("Owner", e.team.clone().unwrap_or_else(|| "none".into())));
        facts.push((
            "Tier",
            e.tier
                .map(|t| t.to_string())
                .unwrap_or_else(|| "untiered".into()),
        ));
    } else if let Some(team) = &event.team {
        facts.push(("Owner", team.clone()));
    }
    if let Some(s) = &event.scorecard {
        facts.push(("Scorecard", s.clone()));
    }
    match (&event.from_level, &event.to_level) {
        (Some(from), Some(to)) => facts.push(("Level", format!("{from} → {to}"))),
        (None, Some(to)) => facts.push(("Level", to.clone())),
        _ => {}
    }
    if let Some(due) = event.data.get("task").and_then(|t| t.get("due")) {
        facts.push(("Due", due.as_str().unwrap_or_default().to_owned()));
    }
    facts
}

/// Escape `&`, `<` and `>` as Slack's mrkdwn requires.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Cut `text` to at most `max` characters, marking the cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Slack incoming-webhook payload (Block Kit with a `text` fallback).
pub fn slack(event: &Event) -> Value {
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(&headline(event), SLACK_HEADER_MAX), "emoji": true}
        }),
        json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": truncate(&slack_escape(&event.message), SLACK_SECTION_MAX)},
            "fields": facts(event)
                .into_iter()
                .map(|(label, value)| json!({"type": "mrkdwn", "text": truncate(&format!("*{label}*\n{}", slack_escape(&value)), 2000)}))
                .collect::<Vec<_>>(),
        }),
    ];
    let lines = blocking_lines(event);
    if !lines.is_empty() {
        let list = lines
            .iter()
            .map(|l| format!("• {}", slack_escape(l)))
            .collect::<Vec<_>>()
            .join("\n");
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": truncate(&format!("*Blocking rules*\n{list}"), SLACK_SECTION_MAX)}
        }));
    }
    if !event.link.is_empty() {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": {"type": "plain_text", "text": "Open in readyd"},
                "url": event.link,
                "style": if event.kind.is_bad_news() { "danger" } else { "primary" },
            }]
        }));
    }
    json!({ "text": event.message, "blocks": blocks })
}

/// Microsoft Teams incoming-webhook payload (an Adaptive Card in a message).
pub fn teams(event: &Event) -> Value {
    let mut body = vec![
        json!({
            "type": "TextBlock", "text": headline(event), "weight": "Bolder", "size": "Medium",
            "wrap": true, "color": if event.kind.is_bad_news() { "Attention" } else { "Default" },
        }),
        json!({"type": "TextBlock", "text": event.message, "wrap": true}),
        json!({
            "type": "FactSet",
            "facts": facts(event)
                .into_iter()
                .map(|(title, value)| json!({"title": title, "value": value}))
                .collect::<Vec<_>>(),
        }),
    ];
    let lines = blocking_lines(event);
    if !lines.is_empty() {
        body.push(json!({"type": "TextBlock", "text": "Blocking rules", "weight": "Bolder", "wrap": true}));
        // Adaptive Card text supports a Markdown subset in which "- " starts a list item.
        let list = lines
            .iter()
            .map(|l| format!("- {l}"))
            .collect::<Vec<_>>()
            .join("\r");
        body.push(json!({"type": "TextBlock", "text": list, "wrap": true}));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if !event.link.is_empty() {
        card["actions"] =
            json!([{"type": "Action.OpenUrl", "title": "Open in readyd", "url": event.link}]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }]
    })
}

/// Generic JSON webhook payload: the event and how it is being delivered.
pub fn webhook(
    event: &Event,
    channel: &str,
    idempotency_key: &str,
    created_at: Timestamp,
) -> Value {
    json!({
        "event": event,
        "delivery": {
            "idempotency_key": idempotency_key,
            "channel": channel,
            "created_at": created_at,
        }
    })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::automation::events::{BlockingRule, EntitySummary, EventKind};
    use crate::model::RuleStatus;

    fn degraded() -> Event {
        Event {
            id: "entity.degraded:0123".into(),
            kind: EventKind::EntityDegraded,
            at: Utc::now(),
            entity: Some(EntitySummary {
                identifier: "payments-api".into(),
                title: "Payments API".into(),
                kind: "service".into(),
                team: Some("payments".into()),
                tier: Some(1),
            }),
            team: Some("payments".into()),
            scorecard: Some("production-readiness".into()),
            rule: None,
            from_level: Some("Gold".into()),
            to_level: Some("Silver".into()),
            blocking: vec![BlockingRule {
                scorecard: "production-readiness".into(),
                rule: "has-oncall".into(),
                title: "On-call <rotation> & pager".into(),
                status: RuleStatus::Fail,
                message: Some("facts.oncall.oncall_count is 0, required > 0".into()),
            }],
            message: "payments-api (Tier 1, team payments) fell below Gold".into(),
            link: "http://readyd/#/entities/payments-api".into(),
            data: json!({}),
        }
    }

    #[test]
    fn slack_payload_has_blocks_fields_blocking_rules_and_a_button() {
        let v = slack(&degraded());
        assert_eq!(
            v["text"],
            "payments-api (Tier 1, team payments) fell below Gold"
        );
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(
            blocks[0]["text"]["text"],
            "Below tier requirement: payments-api"
        );
        assert_eq!(blocks[1]["type"], "section");
        let fields: Vec<&str> = blocks[1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&"*Owner*\npayments"), "{fields:?}");
        assert!(fields.contains(&"*Tier*\n1"), "{fields:?}");
        assert!(fields.contains(&"*Level*\nGold → Silver"), "{fields:?}");
        let rules = blocks[2]["text"]["text"].as_str().unwrap();
        assert!(rules.starts_with("*Blocking rules*\n• "), "{rules}");
        // mrkdwn control characters from rule titles are escaped.
        assert!(
            rules.contains("On-call &lt;rotation&gt; &amp; pager"),
            "{rules}"
        );
        assert!(rules.contains("has-oncall (facts.oncall.oncall_count is 0, required &gt; 0)"));
        assert_eq!(blocks[3]["type"], "actions");
        assert_eq!(
            blocks[3]["elements"][0]["url"],
            "http://readyd/#/entities/payments-api"
        );
        assert_eq!(blocks[3]["elements"][0]["style"], "danger");
    }

    #[test]
    fn slack_limits_are_respected() {
        let mut e = degraded();
        e.entity.as_mut().unwrap().identifier = "x".repeat(400);
        e.message = "y".repeat(5000);
        e.blocking = (0..15)
            .map(|i| BlockingRule {
                rule: format!("r{i}"),
                ..e.blocking[0].clone()
            })
            .collect();
        let v = slack(&e);
        let header = v["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(header.chars().count(), SLACK_HEADER_MAX);
        let section = v["blocks"][1]["text"]["text"].as_str().unwrap();
        assert_eq!(section.chars().count(), SLACK_SECTION_MAX);
        let rules = v["blocks"][2]["text"]["text"].as_str().unwrap();
        assert!(rules.ends_with("and 5 more"), "{rules}");
    }

    #[test]
    fn teams_payload_is_an_adaptive_card_in_a_message() {
        let v = teams(&degraded());
        assert_eq!(v["type"], "message");
        let attachment = &v["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let card = &attachment["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.4");
        let body = card["body"].as_array().unwrap();
        let facts = body
            .iter()
            .find(|b| b["type"] == "FactSet")
            .expect("a FactSet");
        assert!(
            facts["facts"]
                .as_array()
                .unwrap()
                .contains(&json!({"title": "Owner", "value": "payments"}))
        );
        assert!(
            body.iter()
                .any(|b| b["text"].as_str().is_some_and(|t| t.contains("- On-call")))
        );
        assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
        assert_eq!(
            card["actions"][0]["url"],
            "http://readyd/#/entities/payments-api"
        );
    }

    #[test]
    fn webhook_payload_carries_the_event_and_the_delivery() {
        let e = degraded();
        let at = Utc::now();
        let v = render(&e, ChannelKind::Webhook, "tracker", "key-1", at);
        assert_eq!(v["event"]["kind"], "entity.degraded");
        assert_eq!(v["event"]["entity"]["identifier"], "payments-api");
        assert_eq!(v["event"]["blocking"][0]["rule"], "has-oncall");
        assert_eq!(v["delivery"]["idempotency_key"], "key-1");
        assert_eq!(v["delivery"]["channel"], "tracker");
        let back: Event = serde_json::from_value(v["event"].clone()).unwrap();
        assert_eq!(back, e);
    }
}
