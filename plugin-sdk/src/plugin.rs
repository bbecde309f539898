//! The two plugin traits, one per WIT world: [`DataSource`] and [`Check`].
//!
//! A plugin type implements exactly one of them and is exported with
//! [`export!`](crate::export). The daemon creates one instance per call batch, calls `init`
//! once with the manifest's configuration, then `collect` or `evaluate`; the value `init`
//! returns lives as long as that instance. A plugin must not keep state between instances and
//! must report expected failures as [`PluginError`]s rather than panicking.

use serde_json::Value;

use crate::{Config, Entity, Facts, Outcome, Params, PluginError};

/// A plugin that collects facts about entities (the `data-source` world).
///
/// ```
/// use readyd_plugin_sdk::{Config, DataSource, Entity, PluginError};
/// use serde_json::{Value, json};
///
/// struct Hello;
///
/// impl DataSource for Hello {
///     fn init(_config: Config) -> Result<Self, PluginError> {
///         Ok(Hello)
///     }
///     fn collect(&self, entities: &[Entity]) -> Result<Vec<(String, Value)>, PluginError> {
///         Ok(entities.iter().map(|e| (e.identifier.clone(), json!({"hello": true}))).collect())
///     }
/// }
///
/// let facts = Hello.collect(&[Entity::new("payments", "service")]).unwrap();
/// assert_eq!(facts[0].1["hello"], true);
/// ```
pub trait DataSource: Sized + 'static {
    /// Build the plugin from its configuration (the manifest's `[config]` table plus secrets).
    fn init(config: Config) -> Result<Self, PluginError>;

    /// Collect facts for a batch of entities: `(identifier, facts object)` pairs.
    ///
    /// Entities the plugin knows nothing about may be left out. Every facts value must be a JSON
    /// object; the daemon stores it under this plugin's name.
    fn collect(&self, entities: &[Entity]) -> Result<Vec<(String, Value)>, PluginError>;
}

/// A plugin that evaluates one rule on one entity (the `check` world).
///
/// ```
/// use readyd_plugin_sdk::{Check, Config, Entity, Facts, Outcome, Params, PluginError};
///
/// struct HasTeam;
///
/// impl Check for HasTeam {
///     fn init(_config: Config) -> Result<Self, PluginError> {
///         Ok(HasTeam)
///     }
///     fn evaluate(&self, entity: &Entity, _: &Facts, _: &Params) -> Result<Outcome, PluginError> {
///         Ok(match &entity.team {
///             Some(team) => Outcome::pass(format!("owned by {team}")),
///             None => Outcome::fail("no owning team"),
///         })
///     }
/// }
///
/// let outcome = HasTeam
///     .evaluate(&Entity::new("web", "website"), &Facts::new(), &Params::default())
///     .unwrap();
/// assert_eq!(outcome.message(), "no owning team");
/// ```
pub trait Check: Sized + 'static {
    /// Build the plugin from its configuration (the manifest's `[config]` table plus secrets).
    fn init(config: Config) -> Result<Self, PluginError>;

    /// Evaluate the rule on `entity`, given every data source's latest `facts` about it and the
    /// rule's `params`.
    fn evaluate(
        &self,
        entity: &Entity,
        facts: &Facts,
        params: &Params,
    ) -> Result<Outcome, PluginError>;
}
