//! The durable record of running jobs and their scheduler jobs.
//!
//! Before a job writes anything to the builds directory, batchci writes down which GitLab job
//! runs there and where its private scratch directory is; the moment a scheduler accepts the
//! job, it adds the scheduler's job id. Each write is atomic (temporary file, fsync, rename).
//! If batchci is killed — even with SIGKILL — the next start finds the record, cancels the
//! scheduler job, deletes the scratch directory (file variables, the raw output file: whatever
//! holds the job's secrets) and fails the GitLab job with a clear message, so neither an
//! allocation nor a secret outlives its executor. The record holds the job token because
//! failing the job needs it; it is readable by batchci's user alone (0600 in a 0700 directory)
//! and removed once the job has ended or been recovered.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::ExecutorKind;

/// One submitted scheduler job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// GitLab's URL.
    pub gitlab_url: String,
    /// The GitLab job.
    pub gitlab_job_id: u64,
    /// Its job token, to fail it after a crash.
    pub job_token: String,
    /// The runner that ran it.
    pub runner_name: String,
    /// The backend.
    pub executor: ExecutorKind,
    /// The scheduler's job id; empty while nothing is submitted.
    pub scheduler_job_id: String,
    /// The job's private scratch directory, deleted when a crashed job is recovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch_dir: Option<PathBuf>,
    /// Commands (argv) that release what the job holds besides its scheduler job, such as
    /// docker+slurm's containers; run when a crashed job is recovered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leftovers: Vec<Vec<String>>,
    /// The local user a downscoped job ran as; its leftovers are cancelled as that user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The batchci process that submitted it.
    pub pid: u32,
    /// When, as RFC 3339.
    pub submitted_at: String,
}

/// A directory of [`Submission`] records, one file per GitLab job.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
    /// The scheduler job id each GitLab job of this process was given, kept past the record
    /// for the job's end line (see [`StateStore::take_scheduler_job`]).
    scheduler_jobs: std::sync::Arc<std::sync::Mutex<HashMap<(String, u64), String>>>,
}

impl StateStore {
    /// Opens (and creates, mode 0700) the store in `dir`.
    pub fn open(dir: &Path) -> std::io::Result<StateStore> {
        use std::os::unix::fs::DirBuilderExt;
        let jobs = dir.join("submissions");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&jobs)
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot create {}: {e}", jobs.display()))
            })?;
        Ok(StateStore {
            dir: jobs,
            scheduler_jobs: Default::default(),
        })
    }

    /// The state directory the store lives in (`state_dir`).
    pub fn root(&self) -> &Path {
        self.dir.parent().unwrap_or(&self.dir)
    }

    fn path(&self, gitlab_url: &str, gitlab_job_id: u64) -> PathBuf {
        let host: String = gitlab_url
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        self.dir.join(format!("{host}-{gitlab_job_id}.json"))
    }

    /// Whether a record of the job exists.
    pub fn has(&self, gitlab_url: &str, gitlab_job_id: u64) -> bool {
        self.path(gitlab_url, gitlab_job_id).exists()
    }

    /// Records `submission` durably (replacing an earlier record of the job). An error names
    /// the file.
    pub fn record(&self, submission: &Submission) -> std::io::Result<()> {
        self.note_scheduler_job(submission);
        let path = self.path(&submission.gitlab_url, submission.gitlab_job_id);
        self.write_record(&path, submission).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
        })
    }

    fn write_record(&self, path: &Path, submission: &Submission) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let temporary = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(submission).map_err(std::io::Error::other)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        if let Ok(dir) = std::fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Remembers the scheduler job id of `submission` and logs it the first time it is seen:
    /// the moment the scheduler has taken the job.
    fn note_scheduler_job(&self, submission: &Submission) {
        if submission.scheduler_job_id.is_empty() {
            return;
        }
        let key = (submission.gitlab_url.clone(), submission.gitlab_job_id);
        let mut known = self
            .scheduler_jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if known.get(&key) != Some(&submission.scheduler_job_id) {
            known.insert(key, submission.scheduler_job_id.clone());
            tracing::info!(
                job = submission.gitlab_job_id,
                runner = %submission.runner_name,
                scheduler_job = %submission.scheduler_job_id,
                executor = %submission.executor,
                "scheduler job submitted"
            );
        }
    }

    /// The scheduler job id last recorded for the GitLab job (by this process), forgotten
    /// from then on; `None` when nothing was submitted (a shell job, a refused submission).
    pub fn take_scheduler_job(&self, gitlab_url: &str, gitlab_job_id: u64) -> Option<String> {
        self.scheduler_jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(gitlab_url.to_string(), gitlab_job_id))
    }

    /// Forgets the job's record.
    pub fn remove(&self, gitlab_url: &str, gitlab_job_id: u64) {
        let _ = std::fs::remove_file(self.path(gitlab_url, gitlab_job_id));
    }

    /// All records, skipping (and reporting) unreadable ones.
    pub fn list(&self) -> Vec<Submission> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&path).map(|b| serde_json::from_slice::<Submission>(&b)) {
                Ok(Ok(submission)) => found.push(submission),
                Ok(Err(error)) => {
                    tracing::warn!(path = %path.display(), %error, "unreadable submission record")
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot read submission record")
                }
            }
        }
        found.sort_by_key(|s| s.gitlab_job_id);
        found
    }
}

/// Whether process `pid` is alive (a record whose owner still runs is not an orphan).
pub fn process_alive(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .is_some_and(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submission(id: u64) -> Submission {
        Submission {
            user: None,
            gitlab_url: "http://127.0.0.1:8080".into(),
            gitlab_job_id: id,
            job_token: "tok".into(),
            runner_name: "r".into(),
            executor: ExecutorKind::Slurm,
            scheduler_job_id: format!("{}", id + 100),
            scratch_dir: Some(PathBuf::from(format!("/scratch/ci/{id}.tmp"))),
            leftovers: Vec::new(),
            pid: 1,
            submitted_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn records_survive_reopening_and_can_be_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store.record(&submission(2)).unwrap();
        store.record(&submission(1)).unwrap();
        std::fs::write(dir.path().join("submissions/garbage.json"), b"{").unwrap();

        let reopened = StateStore::open(dir.path()).unwrap();
        assert_eq!(reopened.list(), [submission(1), submission(2)]);
        reopened.remove("http://127.0.0.1:8080", 1);
        assert_eq!(reopened.list(), [submission(2)]);
    }

    #[test]
    fn this_process_is_alive() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX));
    }
}
