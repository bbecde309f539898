//! `PluginError`: the expected failures a plugin reports to the daemon.
//!
//! A plugin returns one of these instead of panicking: a panic traps the instance and the daemon
//! can only say "the plugin is broken", while a `PluginError` carries the plugin's own reason into
//! the rule's `error` result. This module never decides policy; it only names the three kinds the
//! WIT contract knows.

/// An expected failure of a plugin, mirrored one-to-one on the WIT `plugin-error` variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// The configuration handed to `init`, or a check's params, is unusable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A system the plugin depends on could not be reached or refused the request.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("{0}")]
    Failed(String),
}

impl PluginError {
    /// An [`PluginError::InvalidConfig`] with this message.
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::InvalidConfig(message.into())
    }

    /// An [`PluginError::Unavailable`] with this message.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(message.into())
    }

    /// A [`PluginError::Failed`] with this message.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    /// The message without the kind prefix.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidConfig(m) | Self::Unavailable(m) | Self::Failed(m) => m,
        }
    }
}
