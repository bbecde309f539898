//! `Outcome` and `Status`: what a check answers about one rule on one entity.
//!
//! Messages are for the service owner: plain words with the numbers that were seen. `details`
//! is optional structured data the daemon keeps next to the result.

use serde_json::Value;

/// The verdict of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// The rule is met.
    Pass,
    /// The rule is not met; the service owner has work to do.
    Fail,
    /// A problem that does not block the level (counts as passed).
    Warn,
    /// The rule does not apply to this entity.
    NotApplicable,
}

/// What a check returns: a status, a message for people, and optional details.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The verdict.
    pub status: Status,
    /// Why, in plain words.
    pub message: Option<String>,
    /// Optional structured details, kept with the result.
    pub details: Option<Value>,
}

impl Outcome {
    /// An outcome with this status and message.
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: Some(message.into()),
            details: None,
        }
    }

    /// The rule is met.
    pub fn pass(message: impl Into<String>) -> Self {
        Self::new(Status::Pass, message)
    }

    /// The rule is not met.
    pub fn fail(message: impl Into<String>) -> Self {
        Self::new(Status::Fail, message)
    }

    /// A non-blocking problem.
    pub fn warn(message: impl Into<String>) -> Self {
        Self::new(Status::Warn, message)
    }

    /// The rule does not apply to this entity.
    pub fn not_applicable(message: impl Into<String>) -> Self {
        Self::new(Status::NotApplicable, message)
    }

    /// This outcome with structured `details`.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The message, or `""` when there is none.
    pub fn message(&self) -> &str {
        self.message.as_deref().unwrap_or("")
    }
}
