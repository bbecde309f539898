//! `Config` and `Params`: the JSON documents a plugin is configured with.
//!
//! `Config` is the manifest's `[config]` table handed to `init` once per instance, with the
//! secrets the manifest names added under their names. `Params` is a check rule's
//! `check.params` object handed to every `evaluate`. Both deserialize into the author's own
//! `serde` types; a document that does not fit is an `invalid-config` error naming the field.
//! Neither ever logs its content: the config may carry secrets.

use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{PluginError, json};

/// Parse a JSON document handed over the WIT boundary; empty text means an empty object.
fn parse_document(text: &str, what: &str) -> Result<Value, PluginError> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_str(text)
        .map_err(|e| PluginError::invalid_config(format!("{what} is not valid JSON: {e}")))
}

fn deserialize_document<T: DeserializeOwned>(value: &Value, what: &str) -> Result<T, PluginError> {
    T::deserialize(value).map_err(|e| PluginError::invalid_config(format!("{what}: {e}")))
}

/// The plugin's configuration: the manifest's `[config]` table plus the granted secrets.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    value: Value,
}

impl Config {
    /// A configuration holding `value` (tests build configs with `serde_json::json!`).
    pub fn from_json(value: Value) -> Self {
        Self { value }
    }

    /// Parse the JSON text the daemon handed to `init`.
    pub fn parse(text: &str) -> Result<Self, PluginError> {
        parse_document(text, "config").map(Self::from_json)
    }

    /// The whole configuration as the author's type.
    ///
    /// ```
    /// # use readyd_plugin_sdk::Config;
    /// #[derive(serde::Deserialize)]
    /// struct Settings { url: String, #[serde(default)] timeout_ms: Option<u64> }
    /// let config = Config::from_json(serde_json::json!({"url": "http://127.0.0.1:9090"}));
    /// let settings: Settings = config.deserialize().unwrap();
    /// assert_eq!(settings.url, "http://127.0.0.1:9090");
    /// ```
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        deserialize_document(&self.value, "config")
    }

    /// The value at the dotted `path`, converted to `T`; `None` when absent or of another shape.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Option<T> {
        json::lookup_as(&self.value, path)
    }

    /// The secret the manifest granted under `name` (secrets are top-level string entries).
    pub fn secret(&self, name: &str) -> Option<&str> {
        self.value.get(name).and_then(Value::as_str)
    }

    /// The raw JSON document.
    pub fn as_value(&self) -> &Value {
        &self.value
    }
}

/// A check rule's parameters: the `check.params` object of the scorecard rule, parsed only as
/// far as the check reads them.
///
/// The daemon's text is checked to be JSON when the call arrives; [`Params::get`] and
/// [`Params::deserialize`] read it directly, and the whole document is built only when
/// [`Params::as_value`] asks for it.
#[derive(Clone, Default)]
pub struct Params {
    /// The daemon's text (valid JSON), when the params came from the daemon.
    text: Option<Box<str>>,
    value: OnceLock<Value>,
}

impl Params {
    /// Parameters holding `value` (tests build params with `serde_json::json!`).
    pub fn from_json(value: Value) -> Self {
        Self {
            text: None,
            value: OnceLock::from(value),
        }
    }

    /// Check the JSON text the daemon handed to `evaluate`; empty text is an empty object.
    pub fn parse(text: &str) -> Result<Self, PluginError> {
        if text.trim().is_empty() {
            return Ok(Self::from_json(Value::Object(Map::new())));
        }
        serde_json::from_str::<serde::de::IgnoredAny>(text)
            .map_err(|e| PluginError::invalid_config(format!("params is not valid JSON: {e}")))?;
        Ok(Self {
            text: Some(text.into()),
            value: OnceLock::new(),
        })
    }

    /// All parameters as the author's type; a mismatch is an `invalid-config` error.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        match (self.text.as_deref(), self.value.get()) {
            (Some(text), None) => serde_json::from_str(text)
                .map_err(|e| PluginError::invalid_config(format!("params: {e}"))),
            _ => deserialize_document(self.as_value(), "params"),
        }
    }

    /// The value at the dotted `path`, converted to `T`; `None` when absent or of another shape.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Option<T> {
        match (self.text.as_deref(), self.value.get()) {
            (Some(text), None) => json::lookup_text_as(text, path),
            _ => json::lookup_as(self.as_value(), path),
        }
    }

    /// The raw JSON document.
    pub fn as_value(&self) -> &Value {
        self.value.get_or_init(|| match self.text.as_deref() {
            // Checked to be JSON in `parse`.
            Some(text) => serde_json::from_str(text).unwrap_or(Value::Null),
            None => Value::Object(Map::new()),
        })
    }
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Params").field(self.as_value()).finish()
    }
}

impl PartialEq for Params {
    fn eq(&self, other: &Self) -> bool {
        self.as_value() == other.as_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[test]
    fn params_from_the_daemon_are_read_without_building_the_document() {
        let params =
            Params::parse(r#"{"source": "prometheus", "limits": {"warn": 0.25}}"#).unwrap();
        assert_eq!(
            params.get::<String>("source").as_deref(),
            Some("prometheus")
        );
        assert_eq!(params.get::<f64>("limits.warn"), Some(0.25));
        assert_eq!(params.get::<f64>("limits.fail"), None);
        assert!(params.value.get().is_none(), "get builds no document");
        assert_eq!(
            params,
            Params::from_json(json!({"source": "prometheus", "limits": {"warn": 0.25}}))
        );
        assert_eq!(params.as_value()["limits"]["warn"], json!(0.25));
        assert!(Params::parse("{nope").is_err());
        assert_eq!(Params::parse("  ").unwrap().as_value(), &json!({}));
    }

    #[derive(Debug, Deserialize)]
    struct Settings {
        url: String,
        #[serde(default)]
        retries: u32,
    }

    #[test]
    fn config_deserializes_and_exposes_secrets() {
        let config = Config::parse(r#"{"url":"http://x","token":"s3cret"}"#).unwrap();
        let settings: Settings = config.deserialize().unwrap();
        assert_eq!(settings.url, "http://x");
        assert_eq!(settings.retries, 0);
        assert_eq!(config.secret("token"), Some("s3cret"));
        assert_eq!(config.secret("nope"), None);
    }

    #[test]
    fn bad_documents_are_invalid_config_errors() {
        let err = Config::parse("{nope").unwrap_err();
        assert!(matches!(err, PluginError::InvalidConfig(ref m) if m.contains("not valid JSON")));
        let err = Config::from_json(json!({"retries": 1}))
            .deserialize::<Settings>()
            .unwrap_err();
        assert!(err.message().contains("url"), "{err}");
        let err = Params::from_json(json!({"url": 5}))
            .deserialize::<Settings>()
            .unwrap_err();
        assert!(err.message().starts_with("params"), "{err}");
    }

    #[test]
    fn empty_text_is_an_empty_object() {
        assert_eq!(Params::parse("").unwrap().as_value(), &json!({}));
        assert_eq!(Config::parse("  ").unwrap().get::<u32>("x"), None);
    }
}
