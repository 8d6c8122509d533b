//! Cobalt rules (reference section 5; `src/lib/Components/cqm.py` of Cobalt).

use std::collections::BTreeMap;

use super::{Notice, Refusal, Rules, Site, Words};
use crate::model::{Job, JobState};

/// Cobalt's rules.
#[derive(Debug)]
pub struct Cobalt;

impl Rules for Cobalt {
    fn words(&self, refusal: &Refusal) -> Words {
        let message = match refusal {
            Refusal::Injected(text) => text.clone(),
            Refusal::UnknownPartition(name) => format!("Queue '{name}' does not exist"),
            Refusal::NoDefaultPartition => "Queue 'default' does not exist".into(),
            _ => "job request violates the queue's limits".into(),
        };
        Words {
            detail: Vec::new(),
            message,
        }
    }

    fn keeps_refused_job(&self, _refusal: &Refusal) -> bool {
        false
    }

    /// `<jobid>.output` in the submit directory.
    fn default_output(&self) -> &'static str {
        "%j.output"
    }

    fn job_env(&self, job: &Job, _site: Site<'_>) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert("COBALT_JOBID".into(), job.id.to_string());
        env.insert("COBALT_PARTNAME".into(), job.nodelist());
        env.insert(
            "COBALT_PARTSIZE".into(),
            job.run.alloc.len().max(1).to_string(),
        );
        env.insert("COBALT_JOBSIZE".into(), job.cpus.to_string());
        env
    }

    fn chdir_failed(&self, _node: &str, dir: &str) -> String {
        format!("cobalt: cannot change to {dir}: No such file or directory\n")
    }

    fn exec_failed(&self, _node: &str, script: &str, error: &str) -> String {
        format!("cobalt: cannot execute {script}: {error}\n")
    }

    fn kill_notices(&self, _job: &Job, _ending: JobState, _at: f64) -> Vec<Notice> {
        Vec::new()
    }
}
