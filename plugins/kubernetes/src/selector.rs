//! The configured label selector: a template such as `app.kubernetes.io/name={identifier}`
//! with `{placeholder}`s filled from each entity (`{identifier}`, `{team}`, `{properties.X}`, …).
//!
//! [`Template::plan`] decides how a round asks the API server: a selector whose only templated
//! requirement is `key={placeholder}` is batched into one set-based `key in (a,b,…)` selector
//! for many entities; anything else is sent once per entity. Every filled value must be a valid
//! label value, so a selector never carries text the API server would parse differently.

use readyd_plugin_sdk::Entity;

/// How a round turns entities into list requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// `fixed` requirements plus `key in (<each entity's value of {value}>)`.
    Batched {
        fixed: Vec<String>,
        key: String,
        /// The placeholder's name (`identifier`, `properties.k8s.app`).
        value: String,
    },
    /// The whole template filled per entity.
    PerEntity,
}

/// A parsed selector template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    text: String,
    plan: Plan,
}

impl Template {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let requirements = split_requirements(text)?;
        let mut templated = Vec::new();
        let mut fixed = Vec::new();
        for requirement in &requirements {
            if placeholders(requirement)?.is_empty() {
                fixed.push(requirement.clone());
            } else {
                templated.push(requirement.clone());
            }
        }
        if templated.is_empty() {
            return Err(
                "it names no placeholder such as {identifier}, so every entity would get the same workloads"
                    .into(),
            );
        }
        let plan = match templated.as_slice() {
            [only] => match equality_on_placeholder(only) {
                Some((key, value)) => Plan::Batched { fixed, key, value },
                None => Plan::PerEntity,
            },
            _ => Plan::PerEntity,
        };
        Ok(Template {
            text: text.to_string(),
            plan,
        })
    }

    pub(crate) fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The selector for one entity; `Err` names the placeholder without a usable value.
    pub(crate) fn render(&self, entity: &Entity) -> Result<String, String> {
        let mut out = String::with_capacity(self.text.len());
        let mut rest = self.text.as_str();
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .map(|e| start + e)
                .unwrap_or(rest.len());
            out.push_str(&render_value(&rest[start + 1..end], entity)?);
            rest = &rest[(end + 1).min(rest.len())..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The entity's value for placeholder `name`, checked to be a label value.
pub(crate) fn render_value(name: &str, entity: &Entity) -> Result<String, String> {
    let value = entity
        .field_text(name)
        .ok_or_else(|| format!("the selector's {{{name}}} has no value for this entity"))?;
    if !is_label_value(&value) {
        return Err(format!(
            "{{{name}}} is {value:?}, not a Kubernetes label value (63 letters, digits, '-', '_', '.' at most)"
        ));
    }
    Ok(value)
}

/// Requirements split at commas outside parentheses (`a in (x,y),b=c` → two).
fn split_requirements(text: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(text[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err("unbalanced parentheses".into());
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses".into());
    }
    parts.push(text[start..].trim().to_string());
    if parts.iter().any(String::is_empty) {
        return Err("empty requirement (a stray comma, or no selector at all)".into());
    }
    Ok(parts)
}

/// The placeholder names in `text`; `Err` for a brace that opens no valid placeholder.
fn placeholders(text: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed placeholder in {text:?}"))?;
        let name = &after[..end];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(format!("{{{name}}} is not a placeholder name"));
        }
        names.push(name.to_string());
        rest = &after[end + 1..];
    }
    if rest.contains('}') {
        return Err(format!("stray '}}' in {text:?}"));
    }
    Ok(names)
}

/// `key={name}` or `key=={name}` → `(key, name)`.
fn equality_on_placeholder(requirement: &str) -> Option<(String, String)> {
    let (key, value) = requirement
        .split_once("==")
        .or_else(|| requirement.split_once('='))?;
    let (key, value) = (key.trim(), value.trim());
    if key.is_empty() || key.ends_with('!') || key.contains(['{', ' ', '(']) {
        return None;
    }
    let name = value.strip_prefix('{')?.strip_suffix('}')?;
    (!name.contains(['{', '}'])).then(|| (key.to_string(), name.to_string()))
}

/// A non-empty label value: at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_default_and_equality_selectors_are_batched() {
        let t = Template::parse("app.kubernetes.io/name={identifier}").unwrap();
        assert_eq!(
            t.plan(),
            &Plan::Batched {
                fixed: vec![],
                key: "app.kubernetes.io/name".into(),
                value: "identifier".into()
            }
        );
        let t = Template::parse("tier in (web, api), app == {properties.k8s.app}").unwrap();
        assert_eq!(
            t.plan(),
            &Plan::Batched {
                fixed: vec!["tier in (web, api)".into()],
                key: "app".into(),
                value: "properties.k8s.app".into()
            }
        );
    }

    #[test]
    fn other_templates_go_per_entity_and_fill_every_placeholder() {
        let t = Template::parse("app={identifier},team={team}").unwrap();
        assert_eq!(t.plan(), &Plan::PerEntity);
        let entity = Entity::new("pay", "service").with_team("payments");
        assert_eq!(t.render(&entity).unwrap(), "app=pay,team=payments");
        let err = t.render(&Entity::new("pay", "service")).unwrap_err();
        assert!(err.contains("{team}"), "{err}");
        let t = Template::parse("app!={identifier}").unwrap();
        assert_eq!(t.plan(), &Plan::PerEntity);
    }

    #[test]
    fn bad_templates_and_values_are_refused() {
        assert!(
            Template::parse("app=payments")
                .unwrap_err()
                .contains("no placeholder")
        );
        assert!(Template::parse("app={identifier").is_err());
        assert!(Template::parse("app={a b}").is_err());
        assert!(Template::parse("a in (x,y").is_err());
        assert!(Template::parse("a={identifier},").is_err());
        let entity = Entity::new("x", "service").with_property("app", json!("has space"));
        assert!(
            render_value("properties.app", &entity)
                .unwrap_err()
                .contains("label value")
        );
        assert!(render_value("identifier", &entity).is_ok());
        assert!(!is_label_value(&"a".repeat(64)));
        assert!(!is_label_value("-a"));
        assert!(is_label_value("my_app.v2-x"));
    }
}
