//! One status query for all of a runner's batch jobs (`[runners.batch] wait = "batched"`).
//!
//! A waiting submit command per job (`sbatch --wait`) is one process and one stream of
//! controller RPCs per job; at a thousand concurrent CI jobs both add up. In batched mode the
//! submit command returns at once and the jobs of one runner share status rounds: every
//! `status_interval` one of the waiting jobs asks the scheduler about all of them in one query
//! (`squeue -j 1,2,3`), as PSI/J, Parsl and ReFrame do, and tells each job whether it has left.
//! No task of its own runs the rounds: whichever waiting job wakes first when a round is due
//! leads it, with its own command environment, so a round never outlives the jobs it serves.
//! Downscoped jobs' rounds are asked as batchci itself: a round is about several users' jobs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::JobContext;
use super::batch::{Presence, Scheduler};

/// The rounds of one runner and scheduler.
#[derive(Default)]
pub(crate) struct StatusRounds {
    state: Mutex<RoundState>,
}

#[derive(Default)]
struct RoundState {
    /// The waiting jobs, each told through its sender once it has left the queue.
    jobs: HashMap<String, watch::Sender<bool>>,
    /// When the last round started.
    last_round: Option<Instant>,
    /// Whether a round is being asked now.
    in_flight: bool,
    /// Rounds asked so far (for tests and `batchci`'s own log).
    rounds: u64,
}

/// A job's place in the rounds; leaves them when dropped.
pub(crate) struct Registration {
    rounds: Arc<StatusRounds>,
    id: String,
    /// Turns true once a round found the job gone.
    pub(crate) gone: watch::Receiver<bool>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.rounds.lock().jobs.remove(&self.id);
    }
}

/// Clears `in_flight` however a round ends, also when its leader is dropped mid-query.
struct InFlight<'a>(&'a StatusRounds);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.lock().in_flight = false;
    }
}

impl StatusRounds {
    /// The rounds of the runner and scheduler of `ctx`: one set per runner token and
    /// scheduler, for the life of the process.
    pub(crate) fn of(ctx: &JobContext, scheduler: &dyn Scheduler) -> Arc<StatusRounds> {
        static ALL: OnceLock<Mutex<HashMap<String, Arc<StatusRounds>>>> = OnceLock::new();
        let key = format!("{}\u{1f}{}", scheduler.name(), ctx.runner.token);
        ALL.get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone()
    }

    fn lock(&self) -> MutexGuard<'_, RoundState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds job `id` to the rounds.
    pub(crate) fn register(self: &Arc<Self>, id: &str) -> Registration {
        let (tx, rx) = watch::channel(false);
        self.lock().jobs.insert(id.to_string(), tx);
        Registration {
            rounds: self.clone(),
            id: id.to_string(),
            gone: rx,
        }
    }

    /// How long until the next round is due.
    pub(crate) fn until_next_round(&self, interval: Duration) -> Duration {
        match self.lock().last_round {
            Some(last) => (last + interval).saturating_duration_since(Instant::now()),
            None => Duration::ZERO,
        }
    }

    /// Rounds asked so far.
    #[cfg(test)]
    pub(crate) fn rounds(&self) -> u64 {
        self.lock().rounds
    }

    /// Asks the round, if one is due and nobody asks it yet, with `ctx`'s environment.
    pub(crate) async fn lead(
        &self,
        ctx: &JobContext,
        scheduler: &dyn Scheduler,
        interval: Duration,
    ) {
        let ids: Vec<String> = {
            let mut state = self.lock();
            let due = state
                .last_round
                .is_none_or(|last| last.elapsed() >= interval);
            if state.in_flight || !due || state.jobs.is_empty() {
                return;
            }
            state.in_flight = true;
            state.last_round = Some(Instant::now());
            state.rounds += 1;
            let mut ids: Vec<String> = state.jobs.keys().cloned().collect();
            ids.sort();
            ids
        };
        let _in_flight = InFlight(self);
        let Some((program, args)) = scheduler.batched_presence_query(&ids) else {
            return;
        };
        let mut spec = ctx.scheduler_command(program, args);
        if ctx.downscoped {
            // The round asks about every user's jobs: as batchci, which a scheduler that
            // shows users only their own jobs (Slurm's PrivateData) still answers in full.
            spec = spec.run_as(None);
            spec.env = crate::command::scheduler_env(&ctx.runner.batch, None);
        }
        let answer = match spec.output().await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(%error, "status round failed; asking again next round");
                return;
            }
        };
        let presences = scheduler.batched_presence(&ids, &answer);
        if presences.iter().all(|p| *p == Presence::Unknown) && !ids.is_empty() {
            tracing::warn!(
                command = %spec.display(),
                code = answer.code,
                stderr = %answer.stderr_text().trim(),
                "status round said nothing; asking again next round"
            );
        }
        let state = self.lock();
        for (id, presence) in ids.iter().zip(presences) {
            if presence == Presence::Gone
                && let Some(tx) = state.jobs.get(id)
            {
                let _ = tx.send(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_round_per_interval_serves_every_waiting_job() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, _log) = super::super::testing::context(dir.path(), Duration::ZERO);
        let rounds = Arc::new(StatusRounds::default());
        let interval = Duration::from_secs(3600);
        // No job waits: nothing to ask.
        rounds
            .lead(&ctx, &super::super::slurm::Slurm, interval)
            .await;
        assert_eq!(rounds.rounds(), 0);

        let first = rounds.register("11");
        let _second = rounds.register("12");
        rounds
            .lead(&ctx, &super::super::slurm::Slurm, interval)
            .await;
        rounds
            .lead(&ctx, &super::super::slurm::Slurm, interval)
            .await;

        assert_eq!(rounds.rounds(), 1);
        assert!(rounds.until_next_round(interval) > Duration::from_secs(3500));
        // A round that could not be asked (no squeue here) tells nobody it has gone.
        assert!(!*first.gone.borrow());
        drop(first);
        assert_eq!(rounds.lock().jobs.len(), 1);
    }
}
