//! Waiting for something observable, with a deadline: never a sleep that hopes it happened.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a change may take to become visible before the test fails: generous (a loaded
/// 2-core machine, debug build), only a bound. The daemon's target is under a second.
pub const DEADLINE: Duration = Duration::from_secs(45);

/// Between two probes.
const INTERVAL: Duration = Duration::from_millis(20);

/// Probe until it answers `Ok`; fail the test with `what` and the last answer at the deadline.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if started.elapsed() > DEADLINE => {
                panic!("waited {DEADLINE:?} for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(INTERVAL).await,
        }
    }
}
