//! The clock every time-dependent decision reads (expiry, due dates, date presets).
//!
//! Production uses [`Clock::system`]; tests drive a [`Clock::manual`] forward to see exemptions
//! expire and tasks turn overdue without sleeping. Evaluation never reads the clock itself: the
//! engine reads it once and passes `now` to the pure evaluator.

use std::sync::{Arc, Mutex};

use chrono::{Duration, Utc};

use crate::model::Timestamp;

/// A source of "now". Cheap to clone; clones of a manual clock share its time.
#[derive(Clone, Debug)]
pub struct Clock(Inner);

#[derive(Clone, Debug)]
enum Inner {
    System,
    Manual(Arc<Mutex<Timestamp>>),
}

impl Clock {
    /// The wall clock.
    pub fn system() -> Clock {
        Clock(Inner::System)
    }

    /// A clock that stands still at `start` until [`Clock::advance`] or [`Clock::set`].
    pub fn manual(start: Timestamp) -> Clock {
        Clock(Inner::Manual(Arc::new(Mutex::new(start))))
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        match &self.0 {
            Inner::System => Utc::now(),
            Inner::Manual(t) => *t.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Whether this is a manual clock.
    pub fn is_manual(&self) -> bool {
        matches!(self.0, Inner::Manual(_))
    }

    /// Move a manual clock forward (no effect on the system clock).
    pub fn advance(&self, by: Duration) {
        if let Inner::Manual(t) = &self.0 {
            let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
            *t += by;
        }
    }

    /// Set a manual clock (no effect on the system clock).
    pub fn set(&self, to: Timestamp) {
        if let Inner::Manual(t) = &self.0 {
            *t.lock().unwrap_or_else(|e| e.into_inner()) = to;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_is_shared_by_clones() {
        let start = Utc::now();
        let c = Clock::manual(start);
        let d = c.clone();
        c.advance(Duration::days(2));
        assert_eq!(d.now(), start + Duration::days(2));
        assert!(Clock::system().now() >= start);
    }
}
