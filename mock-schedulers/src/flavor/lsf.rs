//! IBM Spectrum LSF rules (reference section 3).

use std::collections::BTreeMap;

use super::{Notice, Refusal, Rules, Site, Words};
use crate::model::{Job, JobState};

/// LSF's rules.
#[derive(Debug)]
pub struct Lsf;

impl Rules for Lsf {
    fn words(&self, refusal: &Refusal) -> Words {
        let message = match refusal {
            Refusal::Injected(text) => text.clone(),
            Refusal::UnknownPartition(name) => {
                format!("{name}: No such queue. Job not submitted.")
            }
            _ => "Job not submitted.".into(),
        };
        Words {
            detail: Vec::new(),
            message,
        }
    }

    fn keeps_refused_job(&self, _refusal: &Refusal) -> bool {
        false
    }

    fn default_output(&self) -> &'static str {
        "/dev/null"
    }

    fn job_env(&self, job: &Job, _site: Site<'_>) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert("LSB_JOBID".into(), job.id.to_string());
        env.insert("LSB_JOBNAME".into(), job.req.name.clone());
        env.insert("LSB_QUEUE".into(), job.partition.clone());
        env
    }

    fn chdir_failed(&self, _node: &str, dir: &str) -> String {
        format!("{dir}: No such file or directory\n")
    }

    fn exec_failed(&self, _node: &str, script: &str, error: &str) -> String {
        format!("{script}: {error}\n")
    }

    fn kill_notices(&self, _job: &Job, _ending: JobState, _at: f64) -> Vec<Notice> {
        Vec::new()
    }
}
