//! The glue between the WIT bindings and the plugin traits, and the [`export!`] macro.
//!
//! `export!(MyType as check)` expands to a private type implementing the generated `Guest`
//! trait of the chosen world; its functions call the generic functions below, which convert the
//! WIT values (JSON as text) into the SDK's typed values and back. The instance's plugin value
//! lives in a thread-local slot filled by `init` (a component instance is single-threaded).
//! Nothing here is public API except the macro; the functions are `#[doc(hidden)]` because the
//! macro expands in the plugin's crate.

use crate::bindings::check::readyd::plugin::types as wit;
use crate::{Check, Config, DataSource, Entity, Facts, Outcome, Params, PluginError, Status};

impl From<PluginError> for wit::PluginError {
    fn from(error: PluginError) -> Self {
        match error {
            PluginError::InvalidConfig(m) => wit::PluginError::InvalidConfig(m),
            PluginError::Unavailable(m) => wit::PluginError::Unavailable(m),
            PluginError::Failed(m) => wit::PluginError::Failed(m),
        }
    }
}

impl TryFrom<wit::Entity> for Entity {
    type Error = PluginError;

    fn try_from(entity: wit::Entity) -> Result<Self, PluginError> {
        Entity::from_wire(
            entity.identifier,
            entity.kind,
            entity.title,
            entity.team,
            entity.tier,
            entity.properties,
        )
        .map_err(PluginError::failed)
    }
}

impl From<Outcome> for wit::Outcome {
    fn from(outcome: Outcome) -> Self {
        wit::Outcome {
            status: match outcome.status {
                Status::Pass => wit::Status::Pass,
                Status::Fail => wit::Status::Fail,
                Status::Warn => wit::Status::Warn,
                Status::NotApplicable => wit::Status::NotApplicable,
            },
            message: outcome.message,
            details: outcome.details.map(|d| d.to_string()),
        }
    }
}

const NOT_INITIALISED: &str = "the plugin was called before init succeeded";

#[doc(hidden)]
pub fn check_init<T: Check>(config: &str) -> Result<T, wit::PluginError> {
    Ok(T::init(Config::parse(config)?)?)
}

#[doc(hidden)]
pub fn check_evaluate<T: Check>(
    plugin: Option<&T>,
    entity: wit::Entity,
    facts: String,
    params: &str,
) -> Result<wit::Outcome, wit::PluginError> {
    let plugin = plugin.ok_or_else(|| PluginError::failed(NOT_INITIALISED))?;
    let entity = Entity::try_from(entity)?;
    // The daemon calls a check once per rule, so an entity's calls come one after another with
    // the same facts (one per scorecard using the plugin): the previous call's facts are reused
    // when the text is the same, with the sources and members they already located. Facts are
    // read-only to the plugin, so a reused value answers exactly what a fresh one would.
    let previous = LAST_FACTS.with(|last| last.borrow_mut().take());
    let facts = match previous {
        Some(previous) if previous.came_as(&facts) => previous,
        _ => Facts::from_wire(facts)?,
    };
    let params = Params::parse(params)?;
    let outcome = plugin.evaluate(&entity, &facts, &params);
    LAST_FACTS.with(|last| *last.borrow_mut() = Some(facts));
    Ok(outcome?.into())
}

thread_local! {
    /// The facts of the last `evaluate` call of this instance (a component instance runs on one
    /// thread).
    static LAST_FACTS: std::cell::RefCell<Option<Facts>> = const { std::cell::RefCell::new(None) };
}

#[doc(hidden)]
pub fn data_source_init<T: DataSource>(config: &str) -> Result<T, wit::PluginError> {
    Ok(T::init(Config::parse(config)?)?)
}

#[doc(hidden)]
pub fn data_source_collect<T: DataSource>(
    plugin: Option<&T>,
    entities: Vec<wit::Entity>,
) -> Result<Vec<(String, String)>, wit::PluginError> {
    let plugin = plugin.ok_or_else(|| PluginError::failed(NOT_INITIALISED))?;
    let entities = entities
        .into_iter()
        .map(Entity::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let collected = plugin.collect(&entities)?;
    let mut out = Vec::with_capacity(collected.len());
    for (identifier, facts) in collected {
        if !facts.is_object() {
            return Err(PluginError::failed(format!(
                "facts for {identifier} must be a JSON object, not {facts}"
            ))
            .into());
        }
        out.push((identifier, facts.to_string()));
    }
    Ok(out)
}

/// Export a plugin type as the component's world.
///
/// ```ignore
/// readyd_plugin_sdk::export!(MyCheck as check);        // MyCheck: readyd_plugin_sdk::Check
/// readyd_plugin_sdk::export!(MySource as data_source); // MySource: readyd_plugin_sdk::DataSource
/// ```
///
/// Use it once per crate, at module level. In a native build it only checks that the type
/// implements the trait, so the same crate compiles for unit tests.
///
/// For the rare plugin that must speak the raw WIT types (a test fixture returning malformed
/// JSON, say), `export!(MyType as raw_check)` and `export!(MyType as raw_data_source)` export a
/// type implementing the generated [`bindings::check::Guest`](crate::bindings::check::Guest) or
/// [`bindings::data_source::Guest`](crate::bindings::data_source::Guest) trait directly.
#[macro_export]
macro_rules! export {
    ($ty:ty as check) => {
        const _: fn() = || {
            fn assert_check<T: $crate::Check>() {}
            assert_check::<$ty>();
        };
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            use $crate::bindings::check::readyd::plugin::types as __wit;
            struct __ReadydCheck;
            ::std::thread_local! {
                static __READYD_PLUGIN: ::std::cell::RefCell<::std::option::Option<$ty>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            impl $crate::bindings::check::Guest for __ReadydCheck {
                fn init(config: ::std::string::String) -> ::std::result::Result<(), __wit::PluginError> {
                    let plugin = $crate::__private::check_init::<$ty>(&config)?;
                    __READYD_PLUGIN.with(|slot| *slot.borrow_mut() = ::std::option::Option::Some(plugin));
                    ::std::result::Result::Ok(())
                }
                fn evaluate(
                    entity: __wit::Entity,
                    facts: ::std::string::String,
                    params: ::std::string::String,
                ) -> ::std::result::Result<__wit::Outcome, __wit::PluginError> {
                    __READYD_PLUGIN.with(|slot| {
                        $crate::__private::check_evaluate(slot.borrow().as_ref(), entity, facts, &params)
                    })
                }
            }
            $crate::bindings::check::__export_check_world!(__ReadydCheck with_types_in $crate::bindings::check);
        };
    };
    ($ty:ty as data_source) => {
        const _: fn() = || {
            fn assert_data_source<T: $crate::DataSource>() {}
            assert_data_source::<$ty>();
        };
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            use $crate::bindings::check::readyd::plugin::types as __wit;
            struct __ReadydDataSource;
            ::std::thread_local! {
                static __READYD_PLUGIN: ::std::cell::RefCell<::std::option::Option<$ty>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            impl $crate::bindings::data_source::Guest for __ReadydDataSource {
                fn init(config: ::std::string::String) -> ::std::result::Result<(), __wit::PluginError> {
                    let plugin = $crate::__private::data_source_init::<$ty>(&config)?;
                    __READYD_PLUGIN.with(|slot| *slot.borrow_mut() = ::std::option::Option::Some(plugin));
                    ::std::result::Result::Ok(())
                }
                fn collect(
                    entities: ::std::vec::Vec<__wit::Entity>,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                    __wit::PluginError,
                > {
                    __READYD_PLUGIN.with(|slot| {
                        $crate::__private::data_source_collect(slot.borrow().as_ref(), entities)
                    })
                }
            }
            $crate::bindings::data_source::__export_data_source_world!(__ReadydDataSource with_types_in $crate::bindings::data_source);
        };
    };
    ($ty:ident as raw_check) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            $crate::bindings::check::__export_check_world!($ty with_types_in $crate::bindings::check);
        };
    };
    ($ty:ident as raw_data_source) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            $crate::bindings::data_source::__export_data_source_world!($ty with_types_in $crate::bindings::data_source);
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[derive(Debug)]
    struct Echo {
        prefix: String,
    }

    impl Check for Echo {
        fn init(config: Config) -> Result<Self, PluginError> {
            let prefix = config
                .get::<String>("prefix")
                .ok_or_else(|| PluginError::invalid_config("prefix is required"))?;
            Ok(Echo { prefix })
        }
        fn evaluate(&self, e: &Entity, f: &Facts, p: &Params) -> Result<Outcome, PluginError> {
            let n = f.get::<u32>("src", "n").unwrap_or(0);
            let extra = p.get::<String>("extra").unwrap_or_default();
            Ok(
                Outcome::warn(format!("{} {} {} {}", self.prefix, e.identifier, n, extra))
                    .with_details(json!({"team": e.team})),
            )
        }
    }

    impl DataSource for Echo {
        fn init(config: Config) -> Result<Self, PluginError> {
            <Echo as Check>::init(config)
        }
        fn collect(&self, entities: &[Entity]) -> Result<Vec<(String, Value)>, PluginError> {
            Ok(entities
                .iter()
                .map(|e| {
                    let facts = if e.kind == "bad" {
                        json!(1)
                    } else {
                        json!({"p": self.prefix})
                    };
                    (e.identifier.clone(), facts)
                })
                .collect())
        }
    }

    fn wit_entity(identifier: &str, kind: &str, properties: &str) -> wit::Entity {
        wit::Entity {
            identifier: identifier.into(),
            kind: kind.into(),
            title: identifier.into(),
            team: Some("pay".into()),
            tier: Some(1),
            properties: properties.into(),
        }
    }

    #[test]
    fn check_glue_round_trips_json() {
        let plugin: Echo = check_init(r#"{"prefix":"hi"}"#).unwrap();
        let outcome = check_evaluate(
            Some(&plugin),
            wit_entity("api", "service", r#"{"x":1}"#),
            r#"{"src":{"n":7}}"#.into(),
            r#"{"extra":"!"}"#,
        )
        .unwrap();
        assert_eq!(outcome.status, wit::Status::Warn);
        assert_eq!(outcome.message.as_deref(), Some("hi api 7 !"));
        assert_eq!(outcome.details.as_deref(), Some(r#"{"team":"pay"}"#));
    }

    #[test]
    fn glue_reports_bad_inputs_as_plugin_errors() {
        let err = check_init::<Echo>("{}").unwrap_err();
        assert!(matches!(err, wit::PluginError::InvalidConfig(ref m) if m == "prefix is required"));
        let err =
            check_evaluate::<Echo>(None, wit_entity("a", "s", ""), String::new(), "").unwrap_err();
        assert!(matches!(err, wit::PluginError::Failed(ref m) if m.contains("before init")));
        let plugin = Echo { prefix: "p".into() };
        let err = check_evaluate(
            Some(&plugin),
            wit_entity("a", "s", "[1]"),
            String::new(),
            "",
        )
        .unwrap_err();
        assert!(matches!(err, wit::PluginError::Failed(ref m) if m.contains("not a JSON object")));
        let err =
            check_evaluate(Some(&plugin), wit_entity("a", "s", ""), "[1]".into(), "").unwrap_err();
        assert!(matches!(err, wit::PluginError::Failed(ref m) if m.contains("facts")));
    }

    #[test]
    fn collect_glue_serializes_objects_and_rejects_others() {
        let plugin: Echo = data_source_init(r#"{"prefix":"v2"}"#).unwrap();
        let out = data_source_collect(Some(&plugin), vec![wit_entity("a", "s", "{}")]).unwrap();
        assert_eq!(out, [("a".to_string(), r#"{"p":"v2"}"#.to_string())]);
        let err = data_source_collect(Some(&plugin), vec![wit_entity("b", "bad", "{}")]);
        assert!(matches!(err, Err(wit::PluginError::Failed(ref m)) if m.contains("facts for b")));
    }
}
