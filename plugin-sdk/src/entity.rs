//! `Entity`: the catalog entity a plugin is asked about, with typed property access.
//!
//! The daemon hands entities over the WIT boundary with their properties as JSON text; this
//! module owns the parsed form plugin authors work with, and builders so unit tests can make
//! entities without any JSON plumbing. It never reads facts: those belong to `Facts`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::json::{self, LazyObject};

/// A catalog entity as a plugin sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// Unique identifier, `[a-z0-9][a-z0-9._-]*`.
    pub identifier: String,
    /// `service`, `api`, `library`, `website`, ...
    pub kind: String,
    /// Human-readable name.
    pub title: String,
    /// Owning team, if any.
    pub team: Option<String>,
    /// Tier 1 (most critical) to 3, or none.
    pub tier: Option<u8>,
    /// The entity's free-form properties (read them with [`Entity::properties`]; parsed from
    /// the host's JSON only when first read).
    properties: LazyObject,
}

impl Entity {
    /// An entity with this identifier and kind, the identifier as title, and nothing else.
    pub fn new(identifier: impl Into<String>, kind: impl Into<String>) -> Self {
        let identifier = identifier.into();
        Self {
            title: identifier.clone(),
            identifier,
            kind: kind.into(),
            team: None,
            tier: None,
            properties: LazyObject::default(),
        }
    }

    /// An entity as the host hands it over, with its properties as JSON text (parsed on first
    /// read). Text that is not an object is refused, naming what it is.
    pub(crate) fn from_wire(
        identifier: String,
        kind: String,
        title: String,
        team: Option<String>,
        tier: Option<u8>,
        properties: String,
    ) -> Result<Self, String> {
        let properties = LazyObject::from_text(properties).map_err(|shape| {
            format!("properties of {identifier} are not a JSON object but {shape}")
        })?;
        Ok(Self {
            identifier,
            kind,
            title,
            team,
            tier,
            properties,
        })
    }

    /// The entity's free-form properties.
    pub fn properties(&self) -> &Map<String, Value> {
        self.properties.get()
    }

    /// The entity's free-form properties, for changing (test builders).
    pub fn properties_mut(&mut self) -> &mut Map<String, Value> {
        self.properties.get_mut()
    }

    /// This entity with another title.
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// This entity owned by `team`.
    pub fn with_team(mut self, team: impl Into<String>) -> Self {
        self.team = Some(team.into());
        self
    }

    /// This entity in `tier`.
    pub fn with_tier(mut self, tier: u8) -> Self {
        self.tier = Some(tier);
        self
    }

    /// This entity with the top-level property `key` set to `value`.
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.properties.get_mut().insert(key.into(), value.into());
        self
    }

    /// The property at the dotted `path` (`repo.url`), converted to `T`.
    ///
    /// `None` when the property is absent, `null`, or cannot be read as a `T`.
    pub fn property<T: DeserializeOwned>(&self, path: &str) -> Option<T> {
        json::lookup_in_as(self.properties.get(), path)
    }

    /// The raw JSON value of the property at the dotted `path`.
    pub fn property_value(&self, path: &str) -> Option<Value> {
        json::lookup_in(self.properties.get(), path).cloned()
    }

    /// A built-in field (`identifier`, `kind`, `title`, `team`, `tier`) or, for any other name,
    /// the property at that dotted path, rendered as text. Used for URL and query templates.
    pub fn field_text(&self, name: &str) -> Option<String> {
        match name {
            "identifier" => Some(self.identifier.clone()),
            "kind" => Some(self.kind.clone()),
            "title" => Some(self.title.clone()),
            "team" => self.team.clone(),
            "tier" => self.tier.map(|t| t.to_string()),
            other => {
                let path = other.strip_prefix("properties.").unwrap_or(other);
                match self.property_value(path)? {
                    Value::Null => None,
                    Value::String(s) => Some(s),
                    value => Some(value.to_string()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_properties_by_dotted_path() {
        let entity = Entity::new("payments", "service")
            .with_team("pay")
            .with_tier(1)
            .with_property("repo", json!({"path": "pay/api", "stars": 4}));
        assert_eq!(
            entity.property::<String>("repo.path").as_deref(),
            Some("pay/api")
        );
        assert_eq!(entity.property::<u32>("repo.stars"), Some(4));
        assert_eq!(entity.property::<String>("repo.missing"), None);
        assert_eq!(entity.title, "payments");
    }

    #[test]
    fn field_text_covers_builtins_and_properties() {
        let entity = Entity::new("web", "website")
            .with_tier(2)
            .with_property("port", 8080)
            .with_property("region", "eu");
        assert_eq!(entity.field_text("identifier").as_deref(), Some("web"));
        assert_eq!(entity.field_text("tier").as_deref(), Some("2"));
        assert_eq!(entity.field_text("team"), None);
        assert_eq!(
            entity.field_text("properties.port").as_deref(),
            Some("8080")
        );
        assert_eq!(entity.field_text("region").as_deref(), Some("eu"));
    }
}
