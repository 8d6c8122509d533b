//! Simulated time: `time_scale` simulated seconds pass per real second.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A clock that runs `scale` times faster than real time.
#[derive(Debug, Clone)]
pub struct SimClock {
    base_real: Instant,
    base_sim: f64,
    scale: f64,
}

impl SimClock {
    /// Starts at the later of the real time and `not_before` (so simulated time never runs
    /// backwards across daemon restarts).
    pub fn new(scale: f64, not_before: f64) -> SimClock {
        let real_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        SimClock {
            base_real: Instant::now(),
            base_sim: real_now.max(not_before),
            scale,
        }
    }

    /// Simulated time at the start, unix seconds.
    pub fn started(&self) -> f64 {
        self.base_sim
    }

    /// Simulated now, unix seconds.
    pub fn now(&self) -> f64 {
        self.base_sim + self.base_real.elapsed().as_secs_f64() * self.scale
    }

    /// The real instant at which simulated time `sim` is reached.
    pub fn instant_of(&self, sim: f64) -> Instant {
        let real = ((sim - self.base_sim) / self.scale).max(0.0);
        self.base_real + Duration::from_secs_f64(real.min(1.0e9))
    }

    /// Real seconds for a simulated duration.
    pub fn real_secs(&self, sim_secs: f64) -> f64 {
        let real = sim_secs / self.scale;
        if real.is_finite() { real } else { 0.0 }
    }
}
