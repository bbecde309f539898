//! Hot reload of plugins, standards and catalog (being wired).
