//! Job dependencies: what a job waits for (`--dependency`), and how far it has got.
//!
//! The rules are Slurm 22.05's as observed on the reference cluster (docs/slurm-observed.md,
//! 33-38): a dependency that is met leaves the list, one that can no longer be met stays,
//! marked failed; `,` needs every one, `?` any one; a job id the controller does not know (never
//! used, or purged) counts as ended well.

use serde::{Deserialize, Serialize};

use crate::model::{Job, JobState};

/// The kinds of dependency (sbatch(1), `--dependency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The job started (or was cancelled), plus some minutes.
    After,
    /// The job ended, however.
    AfterAny,
    /// The job ended in COMPLETED.
    AfterOk,
    /// The job ended otherwise.
    AfterNotOk,
    /// The array task of the same index ended in COMPLETED.
    AfterCorr,
    /// No other job of the same name and user is running or pending before it.
    Singleton,
}

impl Kind {
    /// Slurm's name of the kind.
    pub fn name(self) -> &'static str {
        match self {
            Kind::After => "after",
            Kind::AfterAny => "afterany",
            Kind::AfterOk => "afterok",
            Kind::AfterNotOk => "afternotok",
            Kind::AfterCorr => "aftercorr",
            Kind::Singleton => "singleton",
        }
    }
}

/// One job (or array, or array task) waited for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The kind.
    pub kind: Kind,
    /// The job or array id (0 for singleton).
    pub job: u32,
    /// One task of the array `job`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<u32>,
    /// `job` is an array: all its tasks (`123_*`).
    #[serde(default)]
    pub whole_array: bool,
    /// `after:<job>+<minutes>`.
    #[serde(default)]
    pub minutes: u32,
    /// It can no longer be met.
    #[serde(default)]
    pub failed: bool,
}

/// What a job still waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// `?`: any one suffices; else every one is needed.
    pub any: bool,
    /// Not yet met.
    pub items: Vec<Item>,
}

/// A `--dependency` text Slurm refuses ("Job dependency problem").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DependencyProblem;

/// Where a job's dependency stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Met: the job may run.
    Satisfied,
    /// Not yet.
    Waiting,
    /// It can never be met.
    Never,
}

/// Parses `--dependency` text: `type:id[:id...]` items joined by `,` (all) or `?` (any),
/// `after:id+minutes`, `id_task`, `singleton`. `Err` for what Slurm refuses with "Job
/// dependency problem" (observed: `afterok`, `foo:1`, `afterok:x`, `afterok:0`).
pub fn parse(text: &str) -> Result<Option<Dependency>, DependencyProblem> {
    if text.is_empty() {
        return Ok(None);
    }
    let any = text.contains('?');
    let mut items = Vec::new();
    for part in text.split([',', '?']).filter(|p| !p.is_empty()) {
        if part == "singleton" {
            items.push(Item {
                kind: Kind::Singleton,
                job: 0,
                task: None,
                whole_array: false,
                minutes: 0,
                failed: false,
            });
            continue;
        }
        let mut words = part.split(':');
        let kind = match words.next().unwrap_or("") {
            "after" => Kind::After,
            "afterany" => Kind::AfterAny,
            "afterok" => Kind::AfterOk,
            "afternotok" => Kind::AfterNotOk,
            "aftercorr" => Kind::AfterCorr,
            _ => return Err(DependencyProblem),
        };
        let mut any_id = false;
        for word in words {
            any_id = true;
            let (id, minutes) = match word.split_once('+') {
                Some((id, m)) if kind == Kind::After => {
                    (id, m.parse().map_err(|_| DependencyProblem)?)
                }
                Some(_) => return Err(DependencyProblem),
                None => (word, 0),
            };
            let (id, task) = match id.split_once('_') {
                Some((id, "*")) => (id, None),
                Some((id, t)) => (id, Some(number(t)?)),
                None => (id, None),
            };
            let job = number(id)?;
            if job == 0 {
                return Err(DependencyProblem);
            }
            items.push(Item {
                kind,
                job,
                task,
                whole_array: false,
                minutes,
                failed: false,
            });
        }
        if !any_id {
            return Err(DependencyProblem);
        }
    }
    if items.is_empty() {
        return Err(DependencyProblem);
    }
    Ok(Some(Dependency { any, items }))
}

fn number(text: &str) -> Result<u32, DependencyProblem> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DependencyProblem);
    }
    text.parse().map_err(|_| DependencyProblem)
}

/// What the controller knows of the jobs an item waits for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// None of them is known (never submitted, or purged): counts as ended well.
    Unknown,
    /// Not all have started (after) or ended (the other kinds).
    NotYet,
    /// Started (after) at the latest start; or ended, all COMPLETED or not.
    Done {
        /// Latest start time (after).
        started: f64,
        /// Every one ended COMPLETED.
        all_ok: bool,
    },
}

/// Where item `item` stands given its target's state at simulated `now`.
pub fn item_progress(item: &Item, target: Target, now: f64) -> Progress {
    match (item.kind, target) {
        (_, Target::Unknown) => Progress::Satisfied,
        (_, Target::NotYet) => Progress::Waiting,
        (Kind::After, Target::Done { started, .. }) => {
            if now >= started + f64::from(item.minutes) * 60.0 {
                Progress::Satisfied
            } else {
                Progress::Waiting
            }
        }
        (Kind::AfterAny | Kind::Singleton, Target::Done { .. }) => Progress::Satisfied,
        (Kind::AfterOk | Kind::AfterCorr, Target::Done { all_ok, .. }) => {
            if all_ok {
                Progress::Satisfied
            } else {
                Progress::Never
            }
        }
        (Kind::AfterNotOk, Target::Done { all_ok, .. }) => {
            if all_ok {
                Progress::Never
            } else {
                Progress::Satisfied
            }
        }
    }
}

/// The state of `jobs` (the records an item names) as an item of `kind` sees it.
pub fn target_of(kind: Kind, jobs: &[&Job]) -> Target {
    if jobs.is_empty() {
        return Target::Unknown;
    }
    let mut started: f64 = 0.0;
    for job in jobs {
        let begun = job.run.start_time.is_some() || job.run.state.is_finished();
        let ready = if kind == Kind::After {
            begun
        } else {
            job.run.state.is_finished()
        };
        if !ready {
            return Target::NotYet;
        }
        let at = job.run.start_time.or(job.run.end_time).unwrap_or(0.0);
        started = started.max(at);
    }
    Target::Done {
        started,
        all_ok: jobs.iter().all(|j| j.run.state == JobState::Completed),
    }
}

impl Dependency {
    /// Applies the items' progress (`progress(i)` for item `i`): met items leave the list,
    /// items that can never be met are marked failed. Returns where the whole stands.
    pub fn update(&mut self, mut progress: impl FnMut(&Item) -> Progress) -> Progress {
        let mut met = false;
        let mut kept = Vec::new();
        for mut item in std::mem::take(&mut self.items) {
            match if item.failed {
                Progress::Never
            } else {
                progress(&item)
            } {
                Progress::Satisfied => met = true,
                Progress::Waiting => kept.push(item),
                Progress::Never => {
                    item.failed = true;
                    kept.push(item);
                }
            }
        }
        self.items = kept;
        if self.any && met || !self.any && self.items.is_empty() {
            Progress::Satisfied
        } else if self.can_never_be_met() {
            Progress::Never
        } else {
            Progress::Waiting
        }
    }

    /// Whether what is left can never be met: one failed item of a `,` list, every item of a
    /// `?` list.
    pub fn can_never_be_met(&self) -> bool {
        let failed = self.items.iter().filter(|i| i.failed).count();
        if self.any {
            failed > 0 && failed == self.items.len()
        } else {
            failed > 0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_parse_as_slurm_accepts_them() {
        let d = parse("afterok:12:13,after:14+2").unwrap().unwrap();
        assert!(!d.any);
        assert_eq!(
            d.items
                .iter()
                .map(|i| (i.kind, i.job, i.minutes))
                .collect::<Vec<_>>(),
            [
                (Kind::AfterOk, 12, 0),
                (Kind::AfterOk, 13, 0),
                (Kind::After, 14, 2)
            ]
        );
        let d = parse("afterany:5_3?aftercorr:6").unwrap().unwrap();
        assert!(d.any);
        assert_eq!(d.items[0].task, Some(3));
        assert_eq!(parse(""), Ok(None));
        assert!(parse("singleton").unwrap().is_some());
        for bad in [
            "afterok",
            "foo:1",
            "afterok:x",
            "afterok:0",
            "afterok:1+2",
            ",",
        ] {
            assert_eq!(parse(bad), Err(DependencyProblem), "{bad}");
        }
    }

    #[test]
    fn met_items_leave_and_failed_ones_stay() {
        let mut all = parse("afterok:1,afterany:2").unwrap().unwrap();
        let p = all.update(|i| {
            if i.job == 2 {
                Progress::Satisfied
            } else {
                Progress::Waiting
            }
        });
        assert_eq!((p, all.items.len()), (Progress::Waiting, 1));
        assert_eq!(all.update(|_| Progress::Never), Progress::Never);
        assert!(all.items[0].failed);
        let mut any = parse("afterok:1?afterok:2").unwrap().unwrap();
        let p = any.update(|i| {
            if i.job == 1 {
                Progress::Never
            } else {
                Progress::Waiting
            }
        });
        assert_eq!(p, Progress::Waiting);
        assert_eq!(any.update(|_| Progress::Satisfied), Progress::Satisfied);
    }
}
