//! Which contract a compiled component targets, read from its type before instantiating.
//!
//! [`check_contract`] reads the component's imports and exports: every `readyd:plugin/...`
//! import must carry a version this daemon serves (else `UnsupportedVersion`, naming both), and
//! the exported functions must be the manifest's world (`init` + `evaluate` for a check,
//! `init` + `collect` for a data source; else `WrongWorld`, saying what the component is).
//! Signatures are checked afterwards by the typed bindings; this module gives the clear
//! message for the common mistakes.

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use crate::plugin::bindings::{PACKAGE, VERSION};
use crate::plugin::error::PluginError;
use crate::plugin::manifest::PluginKind;

/// Refuse a component that targets another `readyd:plugin` version or another world.
pub(crate) fn check_contract(
    engine: &Engine,
    component: &Component,
    plugin: &str,
    kind: PluginKind,
) -> Result<(), PluginError> {
    let ty = component.component_type();

    let prefix = format!("{PACKAGE}/");
    for (name, _) in ty.imports(engine) {
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let version = rest.split_once('@').map(|(_, v)| v);
        if !version.is_some_and(is_served_version) {
            return Err(PluginError::UnsupportedVersion {
                plugin: plugin.to_string(),
                found: format!("{PACKAGE}@{}", version.unwrap_or("(unversioned)")),
                supported: format!("{PACKAGE}@{VERSION}"),
            });
        }
    }

    let mut funcs: Vec<&str> = Vec::new();
    let mut others: Vec<&str> = Vec::new();
    for (name, item) in ty.exports(engine) {
        match item.ty {
            ComponentItem::ComponentFunc(_) => funcs.push(name),
            _ => others.push(name),
        }
    }
    let has = |f: &str| funcs.contains(&f);
    let found = if has("init") && has("evaluate") {
        Some(PluginKind::Check)
    } else if has("init") && has("collect") {
        Some(PluginKind::DataSource)
    } else {
        None
    };
    if found == Some(kind) {
        return Ok(());
    }
    let found = match found {
        Some(other) => format!("a `{other}` plugin"),
        None => {
            let mut names: Vec<&str> = funcs.into_iter().chain(others).collect();
            names.sort_unstable();
            if names.is_empty() {
                "a component with no exports".to_string()
            } else {
                format!("a component exporting [{}]", names.join(", "))
            }
        }
    };
    Err(PluginError::WrongWorld {
        plugin: plugin.to_string(),
        expected: kind.to_string(),
        found,
    })
}

/// Whether a plugin built against `version` can be served: semver-compatible with
/// [`VERSION`] (for 0.x: the same minor version) and not newer than it.
fn is_served_version(version: &str) -> bool {
    let (Ok(found), Ok(served)) = (
        semver::Version::parse(version),
        semver::Version::parse(VERSION),
    ) else {
        return false;
    };
    let compatible = if served.major == 0 {
        found.major == 0 && found.minor == served.minor
    } else {
        found.major == served.major
    };
    compatible && found <= served
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_versions() {
        assert!(is_served_version("0.1.0"));
        assert!(!is_served_version("0.2.0"));
        assert!(!is_served_version("1.0.0"));
        assert!(
            !is_served_version("0.1.1"),
            "a newer contract may need imports we lack"
        );
        assert!(!is_served_version("banana"));
    }
}
