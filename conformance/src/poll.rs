//! Waiting for a condition with a deadline, instead of sleeping for a guessed time.

use std::time::{Duration, Instant};

/// How often a condition is re-checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Calls `condition` until it returns `true` or `deadline` has passed; returns whether it held.
///
/// ```
/// use std::time::Duration;
/// let mut calls = 0;
/// assert!(conformance::poll::poll_until(Duration::from_secs(5), || {
///     calls += 1;
///     calls == 3
/// }));
/// ```
pub fn poll_until(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
