//! Flux rules (reference section 4).

use std::collections::BTreeMap;

use super::{Notice, Refusal, Rules, Site, Words};
use crate::model::{Job, JobState};

/// Flux's rules.
#[derive(Debug)]
pub struct Flux;

impl Rules for Flux {
    fn words(&self, refusal: &Refusal) -> Words {
        let message = match refusal {
            Refusal::Injected(text) => text.clone(),
            Refusal::UnknownPartition(name) => format!("invalid queue '{name}' specified"),
            _ => "unsatisfiable request".into(),
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
        "flux-%j.out"
    }

    fn job_env(&self, _job: &Job, _site: Site<'_>) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn chdir_failed(&self, _node: &str, dir: &str) -> String {
        format!("flux-shell: FATAL: Could not change dir to {dir}: No such file or directory\n")
    }

    fn exec_failed(&self, _node: &str, script: &str, error: &str) -> String {
        format!("flux-shell: error: task 0: start failed: {script}: {error}\n")
    }

    fn kill_notices(&self, _job: &Job, _ending: JobState, _at: f64) -> Vec<Notice> {
        Vec::new()
    }
}
