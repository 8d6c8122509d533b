//! PBS Professional / OpenPBS rules (reference section 2; `src/lib/Liblog/pbs_messages.c`,
//! `src/include/pbs_error.h`, `src/resmom/mom_main.c` of OpenPBS).

use std::collections::BTreeMap;

use super::{Notice, NoticeFile, Refusal, Rules, Site, Words};
use crate::model::{Job, JobState};

/// PBS's rules.
#[derive(Debug)]
pub struct Pbs;

impl Rules for Pbs {
    /// `pbs_geterrmsg` texts; qsub prints them as `qsub: <text>`.
    fn words(&self, refusal: &Refusal) -> Words {
        let message = match refusal {
            Refusal::Injected(text) => text.clone(),
            Refusal::UnknownPartition(_) | Refusal::NoDefaultPartition => "Unknown queue".into(),
            Refusal::UnknownQos(_) | Refusal::UnknownNode | Refusal::UnknownFeature => {
                "Illegal attribute or resource value".into()
            }
            Refusal::NodesOutsidePartition | Refusal::TooMuchMemory | Refusal::SubmitLimit => {
                "Job violates queue and/or server resource limits".into()
            }
            Refusal::IdSpaceExhausted(_) => "Batch protocol error".into(),
        };
        Words {
            detail: Vec::new(),
            message,
        }
    }

    fn keeps_refused_job(&self, _refusal: &Refusal) -> bool {
        false
    }

    /// `<job name>.o<seq>` in the submit directory (qsub.1B `-o`).
    fn default_output(&self) -> &'static str {
        "%x.o%j"
    }

    fn job_env(&self, job: &Job, site: Site<'_>) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let id = format!("{}.{}", job.id, site.cluster_name);
        env.insert("PBS_JOBID".into(), id);
        env.insert("PBS_JOBNAME".into(), job.req.name.clone());
        env.insert("PBS_O_WORKDIR".into(), job.req.submit_dir.clone());
        env.insert("PBS_O_HOST".into(), job.req.submit_host.clone());
        env.insert("PBS_O_QUEUE".into(), job.partition.clone());
        env.insert("PBS_QUEUE".into(), job.partition.clone());
        env.insert("PBS_ENVIRONMENT".into(), "PBS_BATCH".into());
        env
    }

    fn chdir_failed(&self, _node: &str, dir: &str) -> String {
        format!("PBS: chdir to {dir} failed: No such file or directory\n")
    }

    fn exec_failed(&self, _node: &str, script: &str, error: &str) -> String {
        format!("PBS: exec of {script} failed: {error}\n")
    }

    /// `=>> PBS: job killed: walltime <used> exceeded limit <limit>` in the job's stderr
    /// (`src/resmom/mom_main.c`); a qdel writes nothing into the job's files.
    fn kill_notices(&self, job: &Job, ending: JobState, at: f64) -> Vec<Notice> {
        if ending != JobState::Timeout {
            return Vec::new();
        }
        let used = job
            .run
            .start_time
            .map_or(0, |start| (at - start).max(0.0) as u64);
        let limit = job.time_limit.seconds().unwrap_or(used);
        vec![Notice {
            file: NoticeFile::Stderr,
            line: format!("=>> PBS: job killed: walltime {used} exceeded limit {limit}\n"),
        }]
    }
}
