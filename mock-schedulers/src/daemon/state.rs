//! The controller: jobs, the queue, scheduling passes, time limits and signals.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::client::NODE_ENV;
use crate::config::{Cluster, Injections};
use crate::dependency::{self, Progress};
use crate::flavor::{Flavor, Refusal, Site};
use crate::hostlist;
use crate::model::{
    ArrayRun, CallRecord, Job, JobKind, JobRequest, JobRun, JobState, JobStep, NodeAlloc,
};
use crate::pattern::{self, PatternFields};
use crate::protocol::{
    CancelOutcome, CancelRequest, ControlVerb, InjectRequest, NodeUsage, Response, SignalScope,
};
use crate::units::TimeLimit;
use crate::users::{self, User};

use super::clock::SimClock;
use super::journal::Journal;
use super::launch::{self, LaunchSpec};

/// Slurm's base priority: 0xFFFF0000 minus the job id (priority/basic).
const PRIORITY_BASE: u32 = 0xFFFF_0000;

/// Something the daemon must do outside the state lock after a scheduling pass.
#[derive(Debug)]
pub enum Effect {
    /// Wait for this launcher process and report the job's end.
    WatchLauncher(u32, std::process::Child),
    /// Poll a launcher that is not our child (adopted after a restart).
    PollLauncher(u32),
}

/// The whole controller state, behind one mutex.
#[derive(Debug)]
pub struct State {
    /// The cluster.
    pub cluster: Cluster,
    /// Simulated time.
    pub clock: SimClock,
    /// All jobs by id.
    pub jobs: BTreeMap<u32, Job>,
    pending: BTreeSet<(Reverse<u32>, u32)>,
    running: BTreeSet<u32>,
    /// Wider than a job id, so that a journal holding id u32::MAX cannot overflow it.
    next_id: u64,
    /// Active injections.
    pub inject: Injections,
    journal: Journal,
    calls: Vec<CallRecord>,
    calls_file: File,
    /// Number of scheduling passes done.
    pub passes: u64,
    /// Set when the daemon should exit.
    pub shutdown: bool,
    real_cpus: Vec<usize>,
    dir: PathBuf,
    exe: PathBuf,
    /// The user the daemon runs as: like Slurm's `SlurmUser`, it may act on every job (as root
    /// may); unless it is root, it can run jobs of its own user only.
    owner: User,
    /// Work for the caller after a pass.
    pub effects: Vec<Effect>,
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "Hangup",
        2 => "Interrupt",
        3 => "Quit",
        4 => "Illegal instruction",
        6 => "Aborted",
        7 => "Bus error",
        8 => "Floating point exception",
        9 => "Killed",
        10 => "User defined signal 1",
        11 => "Segmentation fault",
        12 => "User defined signal 2",
        13 => "Broken pipe",
        14 => "Alarm clock",
        15 => "Terminated",
        _ => "Unknown signal",
    }
}

/// Local time as slurmstepd prints it.
pub fn format_sim_time(t: f64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(t.floor() as i64, 0) {
        chrono::LocalResult::Single(dt) | chrono::LocalResult::Ambiguous(dt, _) => {
            dt.format("%Y-%m-%dT%H:%M:%S").to_string()
        }
        chrono::LocalResult::None => "Unknown".into(),
    }
}

/// Appends a scheduler's own lines to the job's files: its output files as they are now (the
/// spool while output is staged), or another file of the job.
fn write_notices(job: &Job, notices: Vec<crate::flavor::Notice>) {
    use crate::flavor::NoticeFile;
    for notice in notices {
        let path = match &notice.file {
            NoticeFile::Stdout => job.run.stdout_path.clone(),
            NoticeFile::Stderr => job.run.stderr_path.clone(),
            NoticeFile::Path(path) => Some(path.clone()),
        };
        let Some(path) = path else { continue };
        // A file the scheduler's line creates belongs to the job's user, as the job's own do.
        if let Ok(mut f) = users::append_as(Path::new(&path), job.req.uid, job.req.gid) {
            let _ = f.write_all(notice.line.as_bytes());
        }
    }
}

/// Copies a job's spooled output to its output paths and removes the spool (output staged at
/// the end, as PBS does without `-k d`). The job's output paths are the final ones afterwards.
fn stage_out(job: &mut Job) {
    let Some((stdout, stderr)) = job.run.staged_to.take() else {
        return;
    };
    let spools = [
        (job.run.stdout_path.clone(), stdout.clone()),
        (job.run.stderr_path.clone(), stderr.clone()),
    ];
    let mut copied = Vec::new();
    for (spool, target) in spools {
        let Some(spool) = spool else { continue };
        if copied.contains(&spool) {
            continue;
        }
        match std::fs::copy(&spool, &target) {
            Ok(_) => users::give(Path::new(&target), job.req.uid, job.req.gid),
            Err(error) => {
                tracing::warn!(%spool, %target, %error, "cannot stage a job's output back");
            }
        }
        let _ = std::fs::remove_file(&spool);
        copied.push(spool);
    }
    job.run.stdout_path = Some(stdout);
    job.run.stderr_path = Some(stderr);
}

fn send_signal(pgid: Option<i32>, sig: i32, group: bool) {
    if let Some(p) = pgid
        && p > 1
    {
        // SAFETY: kill/killpg have no memory-safety preconditions.
        unsafe {
            // A step started from a terminal stays in srun's process group; signal it alone.
            if group {
                if libc::killpg(p, sig) != 0 {
                    libc::kill(p, sig);
                }
            } else {
                libc::kill(p, sig);
            }
        }
    }
}

/// How long a requeued job waits before it may start again: slurmctld's default
/// `cred_expire` (120 s) plus one.
const REQUEUE_DELAY_SECS: f64 = 121.0;

/// Sends `sig` to the process group of every running step of `job`.
/// The CPUs a job holds: its tasks' and at least one task's on each of its nodes (Slurm 22.05:
/// without `-n`, `-N 2` is one task per node, `NumCPUs=2`; sbatch's `_opt_verify` sets the task
/// count to the node count, and the controller gives every node at least one task's CPUs).
fn job_cpus(req: &crate::model::JobRequest, num_nodes: u32) -> u32 {
    req.ntasks
        .unwrap_or(1)
        .max(num_nodes)
        .max(1)
        .saturating_mul(req.cpus_per_task.unwrap_or(1).max(1))
}

fn signal_steps(job: &Job, sig: i32) {
    for step in job.run.steps.iter().filter(|s| s.running()) {
        send_signal(step.pgid, sig, true);
    }
}

impl State {
    /// Builds the state from the configuration and the replayed journal.
    pub fn open(cluster: Cluster, dir: &Path, exe: PathBuf) -> std::io::Result<State> {
        std::fs::create_dir_all(dir.join("jobs"))?;
        // Job files are reached by name (a job's script by its user); nobody lists them.
        users::set_mode(&dir.join("jobs"), 0o711);
        let (journal, replayed) = Journal::open(dir)?;
        if replayed.bad_lines > 0 {
            // A crash can tear the last line; whatever else is unreadable is dropped, not fatal.
            tracing::warn!(
                "journal: skipped {} unreadable line(s) in {}",
                replayed.bad_lines,
                dir.join("journal.jsonl").display()
            );
        }
        let calls_path = dir.join("calls.jsonl");
        let calls = std::fs::read_to_string(&calls_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let calls_file = {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&calls_path)?
        };
        users::set_mode(&calls_path, 0o600);
        let inject = replayed
            .inject
            .clone()
            .unwrap_or_else(|| cluster.inject.clone());
        let first_job_id = cluster.first_job_id;
        let mut state = State {
            clock: SimClock::new(cluster.time_scale, replayed.clock),
            cluster,
            next_id: replayed
                .jobs
                .keys()
                .next_back()
                .map_or(u64::from(first_job_id), |id| u64::from(*id) + 1),
            jobs: replayed.jobs,
            pending: BTreeSet::new(),
            running: BTreeSet::new(),
            inject,
            journal,
            calls,
            calls_file,
            passes: 0,
            shutdown: false,
            real_cpus: launch::available_cpus(),
            dir: dir.to_path_buf(),
            exe,
            owner: User::current(),
            effects: Vec::new(),
        };
        let ids: Vec<u32> = state.jobs.keys().copied().collect();
        for id in ids {
            let Some(job) = state.jobs.get(&id) else {
                continue;
            };
            match job.run.state {
                JobState::Pending => {
                    state.pending.insert((Reverse(job.run.priority), id));
                }
                JobState::Running => {
                    state.running.insert(id);
                    match job.req.kind {
                        JobKind::Batch => state.effects.push(Effect::PollLauncher(id)),
                        // The client that held the allocation is gone with the old daemon.
                        JobKind::Interactive => {
                            let pgid = job.run.pgid;
                            send_signal(pgid, libc::SIGKILL, true);
                            signal_steps(job, libc::SIGKILL);
                            state.end_job(id, libc::SIGKILL, Some(JobState::Cancelled));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(state)
    }

    /// Number of pending jobs.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Simulated now.
    pub fn now(&self) -> f64 {
        self.clock.now()
    }

    /// Simulated time this daemon started at.
    pub fn started(&self) -> f64 {
        self.clock.started()
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether `uid` may act on every job: root, and the user the daemon runs as (Slurm's
    /// `SlurmUser`, PBS's managers, LSF's administrators, Flux's instance owner).
    pub(crate) fn privileged(&self, uid: u32) -> bool {
        uid == 0 || uid == self.owner.uid
    }

    /// The refusal of an administrator's request (`stop`, `inject`) from any other user.
    pub(crate) fn admin_only(&self, uid: u32, what: &str) -> Result<(), String> {
        if self.privileged(uid) {
            return Ok(());
        }
        let who = if self.owner.uid == 0 {
            "root".to_string()
        } else {
            format!("root and {}", self.owner.name)
        };
        Err(format!(
            "only {who} may {what} this cluster, not {}",
            users::name_of(uid)
        ))
    }

    /// Whether `uid` may act on job `id`: its owner or a privileged user. Unknown jobs are
    /// left to the request's own answer.
    pub(crate) fn may_act_on(&self, id: u32, uid: u32) -> bool {
        self.privileged(uid) || self.jobs.get(&id).is_none_or(|j| j.req.uid == uid)
    }

    /// Whether the process (group leader) `pid` that a client reports belongs to that client,
    /// so that the daemon, which signals it later, never signals someone else's processes.
    pub(crate) fn owns_process(&self, uid: u32, pid: i32) -> bool {
        self.privileged(uid) || users::owner_of_process(pid) == Some(uid)
    }

    /// The refusal of a job that this daemon cannot run: one of another user, when the daemon
    /// is not root.
    fn runnable(&self, req: &JobRequest) -> Result<(), Refusal> {
        if self.owner.uid == 0 || req.uid == self.owner.uid {
            return Ok(());
        }
        Err(Refusal::OtherUser(format!(
            "this simulated cluster's daemon runs as {} (uid {}), not as root, and runs jobs of {} only, not of {} (uid {}); start the cluster as root to run jobs of other users",
            self.owner.name, self.owner.uid, self.owner.name, req.user, req.uid
        )))
    }

    fn journal_run(&mut self, id: u32) {
        if let Some(job) = self.jobs.get(&id)
            && let Err(e) = self.journal.run(job)
        {
            tracing::error!("journal write failed: {e}");
        }
    }

    /// Appends a call record.
    pub fn record_call(&mut self, call: CallRecord) {
        if let Ok(mut line) = serde_json::to_vec(&call) {
            line.push(b'\n');
            let _ = self.calls_file.write_all(&line);
        }
        self.calls.push(call);
    }

    /// All recorded calls in order.
    pub fn calls(&self) -> &[CallRecord] {
        &self.calls
    }

    /// One-line summary.
    pub fn summary(&self) -> String {
        let finished = self
            .jobs
            .len()
            .saturating_sub(self.pending.len() + self.running.len());
        format!(
            "mock-cluster running (pid {}), cluster {}, {} nodes, {} partitions, time_scale {}, jobs: {} pending, {} running, {} finished, state dir {}",
            std::process::id(),
            self.cluster.cluster_name,
            self.cluster.nodes.len(),
            self.cluster.partitions.len(),
            self.cluster.time_scale,
            self.pending.len(),
            self.running.len(),
            finished,
            self.dir.display()
        )
    }

    /// Whether the job is no longer visible to squeue/scontrol.
    pub fn is_purged(&self, job: &Job, now: f64) -> bool {
        job.run.state.is_finished()
            && job
                .run
                .end_time
                .is_some_and(|e| e + self.cluster.min_job_age as f64 <= now)
    }

    fn max_node_mem(&self, nodes: &[String]) -> u64 {
        nodes
            .iter()
            .filter_map(|n| self.cluster.node(n))
            .map(|n| n.memory_mb)
            .max()
            .unwrap_or(0)
    }

    /// The next job id, or the submission error once every id is in use.
    fn take_id(&mut self) -> Result<u32, Refusal> {
        let id =
            u32::try_from(self.next_id).map_err(|_| Refusal::IdSpaceExhausted(self.next_id))?;
        self.next_id += 1;
        Ok(id)
    }

    /// Validates and queues a job; a refusal comes in the words of the job's scheduler.
    pub fn submit(&mut self, req: JobRequest) -> Result<u32, Response> {
        let rules = req.flavor.rules();
        self.admit(req).map_err(|refusal| {
            let words = rules.words(&refusal);
            Response::Error {
                detail: words.detail,
                message: words.message,
            }
        })
    }

    /// `sbatch --test-only` (Slurm's `slurm_job_will_run()`): the partition must exist (else
    /// no id is used), then an id is used up and the job is refused when no node of the
    /// partition could ever hold it (observed on Slurm 22.05: `-c 4`, `--mem 9000` on the
    /// 2-CPU, 8000 MB node; the partition's time limit is not checked, nor a hold).
    pub fn test_only(&mut self, req: JobRequest) -> Response {
        let flavor = req.flavor;
        let refused = |refusal: Refusal| {
            let words = flavor.rules().words(&refusal);
            Response::Error {
                detail: words.detail,
                message: words.message,
            }
        };
        if let Err(refusal) = self.runnable(&req) {
            return refused(refusal);
        }
        let partition = match &req.partition {
            Some(p) => match p.split(',').find_map(|n| self.cluster.partition(n)) {
                Some(part) => part.clone(),
                None => return refused(Refusal::UnknownPartition(p.clone())),
            },
            None => match self.cluster.default_partition() {
                Some(p) => p.clone(),
                None => return refused(Refusal::NoDefaultPartition),
            },
        };
        let id = match self.take_id() {
            Ok(id) => id,
            Err(refusal) => return refused(refusal),
        };
        let num_nodes = req.nodes.unwrap_or(1).max(1);
        let cpus = job_cpus(&req, num_nodes);
        let cpus_per_node = cpus.div_ceil(num_nodes);
        let mem_per_node = match (req.mem_mb, req.mem_per_cpu_mb) {
            (Some(m), _) => m,
            (None, Some(m)) => m.saturating_mul(cpus_per_node.into()),
            (None, None) => 0,
        };
        let fitting: Vec<String> = partition
            .nodes
            .iter()
            .filter(|n| {
                self.cluster.node(n).is_some_and(|node| {
                    node.cpus >= cpus_per_node && node.memory_mb >= mem_per_node
                })
            })
            .cloned()
            .collect();
        if fitting.len() < num_nodes as usize {
            return Response::Error {
                detail: vec![],
                message: "Requested node configuration is not available".into(),
            };
        }
        let start = req
            .begin_after
            .map_or(self.now(), |after| self.now() + after.max(0.0));
        Response::WouldRun {
            id,
            start,
            cpus,
            nodes: hostlist::compress(&fitting[..num_nodes as usize]),
            partition: partition.name.clone(),
        }
    }

    fn admit(&mut self, mut req: JobRequest) -> Result<u32, Refusal> {
        self.runnable(&req)?;
        if self.inject.submit_errors > 0 {
            self.inject.submit_errors -= 1;
            // A busy controller: what sbatch reports without retrying on its own.
            let text = self
                .inject
                .submit_error_text
                .clone()
                .unwrap_or_else(|| "Socket timed out on send/recv operation".into());
            let _ = self.journal.inject(&self.inject);
            return Err(Refusal::Injected(text));
        }
        let partition = match &req.partition {
            Some(p) => {
                // Slurm accepts a comma-separated list and uses the first that exists.
                let names: Vec<&str> = p.split(',').collect();
                match names.iter().find_map(|n| self.cluster.partition(n)) {
                    Some(part) => part.clone(),
                    None => return Err(Refusal::UnknownPartition(p.clone())),
                }
            }
            None => match self.cluster.default_partition() {
                Some(p) => p.clone(),
                None => return Err(Refusal::NoDefaultPartition),
            },
        };
        let qos_name = req
            .qos
            .clone()
            .or(partition.qos.clone())
            .unwrap_or_else(|| "normal".into());
        let qos = self.cluster.qos.get(&qos_name).cloned();
        if qos.is_none()
            && req.qos.is_some()
            && !(qos_name == "normal" && self.cluster.qos.is_empty())
        {
            return Err(Refusal::UnknownQos(qos_name));
        }
        if let Some(nl) = &req.nodelist
            && nl.iter().any(|n| !partition.nodes.contains(n))
        {
            if nl.iter().any(|n| self.cluster.node(n).is_none()) {
                return Err(Refusal::UnknownNode);
            }
            return Err(Refusal::NodesOutsidePartition);
        }
        if let Some(c) = &req.constraint {
            let ok = partition
                .nodes
                .iter()
                .filter_map(|n| self.cluster.node(n))
                .any(|n| {
                    c.split(['&', ','])
                        .all(|f| n.features.iter().any(|nf| nf == f.trim()))
                });
            if !ok {
                return Err(Refusal::UnknownFeature);
            }
        }
        // Observed: a job that excludes unknown nodes, or so many that too few of the
        // partition's are left, is refused unless it is held (a held job is not tried).
        if let Some(ex) = &req.exclude
            && !req.hold
        {
            let left = partition.nodes.iter().filter(|n| !ex.contains(n)).count();
            if ex.iter().any(|n| self.cluster.node(n).is_none())
                || left < req.nodes.unwrap_or(1).max(1) as usize
            {
                return Err(Refusal::NodesOutsidePartition);
            }
        }
        let num_nodes = req
            .nodes
            .unwrap_or(1)
            .max(1)
            .max(req.nodelist.as_ref().map_or(1, |n| n.len() as u32));
        let cpus = job_cpus(&req, num_nodes);
        let cpus_per_node = cpus.div_ceil(num_nodes);
        let max_mem = self.max_node_mem(&partition.nodes);
        let mem_per_node = match (req.mem_mb, req.mem_per_cpu_mb) {
            (Some(0), _) | (None, None) => max_mem,
            (Some(m), _) => m,
            (None, Some(m)) => m.saturating_mul(cpus_per_node.into()),
        };
        // Observed on Slurm 22.05: a held job is not tried against the nodes, so one that asks
        // for more memory than any node has is accepted; released, it pends with
        // `BadConstraints` (see `static_reason`).
        let untried = req.hold && req.flavor == Flavor::Slurm;
        if mem_per_node > max_mem && !untried {
            let refusal = Refusal::TooMuchMemory;
            if req.flavor.rules().keeps_refused_job(&refusal) {
                // The scheduler keeps a FAILED record of the refused job (and uses up its id).
                let id = self.take_id()?;
                let now = self.now();
                let mut run = JobRun::pending(0);
                run.state = JobState::Failed;
                run.reason = "BadConstraints".into();
                run.end_time = Some(now);
                let job = Job {
                    id,
                    partition: partition.name.clone(),
                    qos: qos_name,
                    time_limit: req.time_limit.unwrap_or(partition.max_time),
                    cpus,
                    num_nodes,
                    mem_per_node_mb: mem_per_node,
                    submit_time: now,
                    req,
                    run,
                };
                if let Err(e) = self.journal.job(&job) {
                    tracing::error!("journal write failed: {e}");
                }
                self.jobs.insert(id, job);
            }
            return Err(refusal);
        }
        if let Some(q) = &qos
            && let Some(max) = q.max_submit_jobs_per_user
        {
            let n = self
                .pending
                .iter()
                .map(|(_, id)| id)
                .chain(self.running.iter())
                .filter(|id| {
                    self.jobs
                        .get(id)
                        .is_some_and(|j| j.req.uid == req.uid && j.qos == q.name)
                })
                .count();
            if n as u32 >= max {
                return Err(Refusal::SubmitLimit);
            }
        }
        // MaxArraySize bounds the task ids (slurm.conf(5); observed: `-a 1000` is accepted and
        // `-a 1001` refused with the default 1001).
        if let Some(array) = &req.relations.array
            && (array.tasks.is_empty()
                || array
                    .tasks
                    .iter()
                    .any(|t| *t >= self.cluster.max_array_size))
        {
            return Err(Refusal::InvalidArray);
        }
        let time_limit = req.time_limit.unwrap_or(partition.max_time);
        if let Some(after) = req.begin_after.take() {
            req.begin = Some(self.now() + after);
        }
        let id = self.take_id()?;
        // A malformed dependency is refused after the id is taken (observed: the id is used
        // up).
        let dependency = self
            .resolve_dependency(req.relations.dependency.as_deref().unwrap_or(""))
            .map_err(|_| Refusal::DependencyProblem)?;
        // priority/basic, less the nice value; root's --priority replaces it.
        let priority = if req.hold {
            0
        } else if let Some(p) = req.priority {
            p
        } else {
            let base = PRIORITY_BASE
                .saturating_sub(id)
                .saturating_add(qos.as_ref().map_or(0, |q| q.priority));
            u32::try_from((i64::from(base) - i64::from(req.nice)).clamp(1, i64::from(u32::MAX)))
                .unwrap_or(1)
        };
        let mut run = JobRun::pending(priority);
        run.array = req.relations.array.as_ref().map(|a| ArrayRun {
            job_id: id,
            task: None,
            pending: a.tasks.clone(),
        });
        run.dependency = dependency;
        if req.kind == JobKind::Batch && req.flavor == Flavor::Slurm {
            run.first_pass_at = Some(self.now() + self.cluster.sched_delay);
            run.awaiting_reply = true;
        }
        if req.kind == JobKind::Batch {
            let (stdout, stderr, _) = expanded_paths(&req, id, run.array.as_ref(), "%N");
            run.stdout_path = Some(stdout);
            run.stderr_path = Some(stderr);
        }
        let job = Job {
            id,
            partition: partition.name.clone(),
            qos: qos_name,
            time_limit,
            cpus,
            num_nodes,
            mem_per_node_mb: mem_per_node,
            submit_time: self.now(),
            req,
            run,
        };
        if let Err(e) = self.journal.job(&job) {
            tracing::error!("journal write failed: {e}");
        }
        write_notices(
            &job,
            job.req.flavor.rules().submit_notices(&job, job.submit_time),
        );
        self.pending.insert((Reverse(priority), id));
        self.jobs.insert(id, job);
        Ok(id)
    }

    /// Node usage from the running jobs.
    pub fn usage(&self) -> BTreeMap<String, (Vec<bool>, u64)> {
        let mut usage: BTreeMap<String, (Vec<bool>, u64)> = self
            .cluster
            .nodes
            .iter()
            .map(|n| (n.name.clone(), (vec![false; n.cpus as usize], 0)))
            .collect();
        for id in &self.running {
            let Some(job) = self.jobs.get(id) else {
                continue;
            };
            for a in &job.run.alloc {
                if let Some((cores, mem)) = usage.get_mut(&a.node) {
                    for &c in &a.cores {
                        if let Some(slot) = cores.get_mut(c as usize) {
                            *slot = true;
                        }
                    }
                    *mem = mem.saturating_add(a.mem_mb);
                }
            }
        }
        usage
    }

    /// Node usage for sinfo/scontrol.
    pub fn node_usage(&self) -> Vec<NodeUsage> {
        let usage = self.usage();
        self.cluster
            .nodes
            .iter()
            .map(|n| {
                let (cores, mem) = usage.get(&n.name).cloned().unwrap_or_default();
                NodeUsage {
                    name: n.name.clone(),
                    alloc_cpus: cores.iter().filter(|c| **c).count() as u32,
                    alloc_mem_mb: mem,
                    down: self.inject.failed_nodes.contains(&n.name),
                }
            })
            .collect()
    }

    /// Reasons that hold a job regardless of free resources.
    fn static_reason(
        &self,
        job: &Job,
        now: f64,
        running_per_user_qos: &BTreeMap<(u32, String), u32>,
    ) -> Option<String> {
        if job.run.priority == 0 {
            if job.run.requeued_held {
                return Some("job requeued in held state".into());
            }
            let holder = if job.run.held_by_admin {
                "Admin"
            } else {
                "User"
            };
            return Some(format!("JobHeld{holder}"));
        }
        if self.eligible_at(job).is_some_and(|at| at > now) {
            return Some("BeginTime".into());
        }
        let part = self.cluster.partition(&job.partition)?;
        match part.state.as_str() {
            "DOWN" => return Some("PartitionDown".into()),
            "INACTIVE" => return Some("PartitionInactive".into()),
            _ => {}
        }
        let node_count = part.nodes.len();
        let cpus_per_node = job.cpus.div_ceil(job.num_nodes.max(1));
        let max_cpus = part
            .nodes
            .iter()
            .filter_map(|n| self.cluster.node(n))
            .map(|n| n.cpus)
            .max()
            .unwrap_or(0);
        let time_too_long = match (job.time_limit, part.max_time) {
            (_, TimeLimit::Unlimited) => false,
            (TimeLimit::Unlimited, TimeLimit::Seconds(_)) => true,
            (TimeLimit::Seconds(a), TimeLimit::Seconds(b)) => a > b,
        };
        if cpus_per_node > max_cpus {
            return Some("PartitionConfig".into());
        }
        // Only a job submitted held gets here with more memory than a node has (`admit`).
        if job.mem_per_node_mb > self.max_node_mem(&part.nodes) {
            return Some("BadConstraints".into());
        }
        if job.num_nodes as usize > node_count || part.max_nodes.is_some_and(|m| job.num_nodes > m)
        {
            return Some("PartitionNodeLimit".into());
        }
        if time_too_long {
            return Some("PartitionTimeLimit".into());
        }
        if let Some(q) = self.cluster.qos.get(&job.qos) {
            if let (Some(TimeLimit::Seconds(max)), limit) = (q.max_wall, job.time_limit)
                && limit.seconds().is_none_or(|l| l > max)
            {
                return Some("QOSMaxWallDurationPerJobLimit".into());
            }
            // A job over its QOS's MaxTRESPerJob cpu waits for a limit that never changes by
            // itself (Slurm's resource_limits: reason QOSMaxCpuPerJobLimit).
            if q.max_cpus_per_job.is_some_and(|max| job.cpus > max) {
                return Some("QOSMaxCpuPerJobLimit".into());
            }
            if let Some(max) = q.max_jobs_per_user
                && running_per_user_qos
                    .get(&(job.req.uid, job.qos.clone()))
                    .copied()
                    .unwrap_or(0)
                    >= max
            {
                return Some("QOSMaxJobsPerUserLimit".into());
            }
        }
        let down = &self.inject.failed_nodes;
        if let Some(nl) = &job.req.nodelist {
            let bad: Vec<String> = nl.iter().filter(|n| down.contains(n)).cloned().collect();
            if !bad.is_empty() {
                return Some(format!(
                    "ReqNodeNotAvail, UnavailableNodes:{}",
                    hostlist::compress(&bad)
                ));
            }
        }
        let up = part.nodes.iter().filter(|n| !down.contains(n)).count();
        if up < job.num_nodes as usize {
            let bad: Vec<String> = part
                .nodes
                .iter()
                .filter(|n| down.contains(n))
                .cloned()
                .collect();
            return Some(format!(
                "ReqNodeNotAvail, UnavailableNodes:{}",
                hostlist::compress(&bad)
            ));
        }
        None
    }

    fn try_fit(
        &self,
        job: &Job,
        usage: &BTreeMap<String, (Vec<bool>, u64)>,
    ) -> Option<Vec<NodeAlloc>> {
        let part = self.cluster.partition(&job.partition)?;
        let cpus_per_node = job.cpus.div_ceil(job.num_nodes.max(1)) as usize;
        let mut chosen = Vec::new();
        let required: Vec<String> = job.req.nodelist.clone().unwrap_or_default();
        let candidates = required
            .iter()
            .chain(part.nodes.iter().filter(|n| !required.contains(n)));
        for name in candidates {
            if chosen.len() == job.num_nodes as usize {
                break;
            }
            if self.inject.failed_nodes.contains(name)
                || job.req.exclude.as_ref().is_some_and(|ex| ex.contains(name))
            {
                continue;
            }
            let Some(node) = self.cluster.node(name) else {
                continue;
            };
            if let Some(c) = &job.req.constraint
                && !c
                    .split(['&', ','])
                    .all(|f| node.features.iter().any(|nf| nf == f.trim()))
            {
                continue;
            }
            let Some((cores, mem)) = usage.get(name) else {
                continue;
            };
            let free: Vec<u32> = cores
                .iter()
                .enumerate()
                .filter(|(_, u)| !**u)
                .map(|(i, _)| i as u32)
                .collect();
            let want_cpus = if job.req.exclusive {
                node.cpus as usize
            } else {
                cpus_per_node
            };
            let want_mem = if job.req.exclusive {
                node.memory_mb
            } else {
                job.mem_per_node_mb
            };
            if free.len() < want_cpus || node.memory_mb.saturating_sub(*mem) < want_mem {
                if required.contains(name) {
                    return None;
                }
                continue;
            }
            chosen.push(NodeAlloc {
                node: name.clone(),
                cores: free[..want_cpus].to_vec(),
                mem_mb: want_mem,
            });
        }
        (chosen.len() == job.num_nodes as usize).then_some(chosen)
    }

    /// One scheduling pass plus time events. Returns the next simulated time something is due.
    pub fn tick(&mut self) -> Option<f64> {
        let now = self.now();
        let mut next: Option<f64> = None;
        let mut due = |t: f64| next = Some(next.map_or(t, |n: f64| n.min(t)));
        // Time events of running jobs.
        let running: Vec<u32> = self.running.iter().copied().collect();
        let kill_wait = self.cluster.kill_wait as f64;
        for id in running {
            let Some(job) = self.jobs.get(&id) else {
                continue;
            };
            let (start, limit, term, signal, warned, kill_sent) = (
                job.run.start_time.unwrap_or(now),
                job.time_limit.seconds(),
                job.run.term_sent,
                job.req.signal,
                job.run.warned,
                job.run.kill_sent,
            );
            if job.run.pgid.is_none() && job.req.kind == JobKind::Batch {
                let (_, _, pid_file, _) = launch::job_paths(&self.dir, id);
                if let Some(p) = launch::read_pgid(&pid_file)
                    && let Some(j) = self.jobs.get_mut(&id)
                {
                    j.run.pgid = Some(p);
                    // Signals decided before the process existed are delivered now.
                    for (sig, group) in std::mem::take(&mut j.run.pending_signals) {
                        send_signal(Some(p), sig, group);
                    }
                    if j.run.kill_sent {
                        send_signal(Some(p), libc::SIGKILL, true);
                    } else if j.run.term_sent.is_some() {
                        send_signal(Some(p), libc::SIGCONT, true);
                        send_signal(Some(p), libc::SIGTERM, true);
                    }
                }
            }
            if let Some(t) = term {
                if !kill_sent {
                    if now >= t + kill_wait {
                        if let Some(j) = self.jobs.get_mut(&id) {
                            j.run.kill_sent = true;
                            send_signal(j.run.pgid, libc::SIGKILL, true);
                            signal_steps(j, libc::SIGKILL);
                        }
                    } else {
                        due(t + kill_wait);
                    }
                }
                continue;
            }
            let Some(limit) = limit else { continue };
            let end = start + limit as f64;
            if let Some((sig, before)) = signal
                && !warned
            {
                let at = end - before as f64;
                if now >= at {
                    if let Some(j) = self.jobs.get_mut(&id) {
                        j.run.warned = true;
                        // Slurm's `--signal=B:SIG` is for the batch shell alone; without `B:`
                        // it goes to the job's steps, not the batch shell (sbatch(1),
                        // --signal). Other schedulers' jobs get it whole.
                        let slurm_batch =
                            j.req.kind == JobKind::Batch && j.req.flavor == Flavor::Slurm;
                        if !slurm_batch {
                            send_signal(j.run.pgid, sig, true);
                        } else if j.req.signal_batch_shell {
                            send_signal(j.run.pgid, sig, false);
                        } else {
                            signal_steps(j, sig);
                        }
                    }
                } else {
                    due(at);
                }
            }
            if now >= end {
                self.begin_kill(id, JobState::Timeout, None);
                due(now + kill_wait);
            } else {
                due(end);
            }
        }
        self.update_dependencies(now);
        // Scheduling pass in priority order.
        let mut usage = self.usage();
        let mut running_per_user_qos: BTreeMap<(u32, String), u32> = BTreeMap::new();
        for id in &self.running {
            if let Some(j) = self.jobs.get(id) {
                *running_per_user_qos
                    .entry((j.req.uid, j.qos.clone()))
                    .or_default() += 1;
            }
        }
        let any_free = |usage: &BTreeMap<String, (Vec<bool>, u64)>| {
            usage.values().any(|(c, _)| c.iter().any(|u| !*u))
        };
        let mut resources_seen = false;
        let mut started_any = false;
        let order: Vec<(Reverse<u32>, u32)> = self.pending.iter().copied().collect();
        for key in order {
            // An array's record starts its tasks one after the other, as long as they fit.
            let mut again = true;
            while again {
                again = false;
                let id = key.1;
                let Some(job) = self.jobs.get(&id) else {
                    self.pending.remove(&key);
                    break;
                };
                if let Some(at) = self.eligible_at(job)
                    && at > now
                {
                    due(at);
                }
                let reason = match self.static_reason(job, now, &running_per_user_qos) {
                    Some(r) => Some(r),
                    // Observed reasons of a job waiting for others.
                    None if job
                        .run
                        .dependency
                        .as_ref()
                        .is_some_and(dependency::Dependency::can_never_be_met) =>
                    {
                        Some("DependencyNeverSatisfied".to_string())
                    }
                    None if job.run.dependency.is_some() => Some("Dependency".to_string()),
                    // `%N` of `--array`: no more of its tasks run at once (observed reason).
                    None if self.array_throttled(job) => Some("JobArrayTaskLimit".to_string()),
                    // Not yet seen by a scheduling pass: slurmctld sets the reasons above when
                    // it takes the job, and tries to start it only at its next pass, after
                    // `sbatch` has its answer (slurm-observed.md 56).
                    None if job.run.awaiting_reply => Some("None".to_string()),
                    None if job.run.first_pass_at.is_some_and(|t| t > now) => {
                        if let Some(t) = job.run.first_pass_at {
                            due(t);
                        }
                        Some("None".to_string())
                    }
                    None if !any_free(&usage) => Some(
                        if resources_seen {
                            "Priority"
                        } else {
                            "Resources"
                        }
                        .to_string(),
                    ),
                    None => match self.try_fit(job, &usage) {
                        Some(alloc) => {
                            for a in &alloc {
                                if let Some((cores, mem)) = usage.get_mut(&a.node) {
                                    for &c in &a.cores {
                                        if let Some(s) = cores.get_mut(c as usize) {
                                            *s = true;
                                        }
                                    }
                                    *mem = mem.saturating_add(a.mem_mb);
                                }
                            }
                            *running_per_user_qos
                                .entry((job.req.uid, job.qos.clone()))
                                .or_default() += 1;
                            let task = if job.is_array_record() {
                                self.split_task(id)
                            } else {
                                Some(id)
                            };
                            match task {
                                Some(task) if task != id => again = true,
                                _ => {
                                    self.pending.remove(&key);
                                }
                            }
                            if let Some(task) = task {
                                self.start_job(task, alloc, now);
                                started_any = true;
                            }
                            None
                        }
                        None => Some(
                            if resources_seen {
                                "Priority"
                            } else {
                                "Resources"
                            }
                            .to_string(),
                        ),
                    },
                };
                if let Some(r) = reason {
                    if r == "Resources" {
                        resources_seen = true;
                    }
                    if let Some(j) = self.jobs.get_mut(&id)
                        && j.run.reason != r
                    {
                        j.run.reason = r;
                    }
                }
            }
        }
        if self.journal.wants_compaction(self.jobs.len()) {
            let now = self.now();
            if let Err(e) = self
                .journal
                .compact(self.jobs.values(), Some(&self.inject), now)
            {
                tracing::error!("journal compaction failed: {e}");
            }
        }
        self.passes += 1;
        // Jobs started in this pass have time limits the loop above has not seen yet.
        if started_any { Some(now) } else { next }
    }

    /// Parses a dependency and marks the items that name a whole array (shown `123_*`,
    /// observed).
    fn resolve_dependency(
        &self,
        text: &str,
    ) -> Result<Option<dependency::Dependency>, dependency::DependencyProblem> {
        let mut parsed = dependency::parse(text)?;
        if let Some(d) = &mut parsed {
            for item in &mut d.items {
                item.whole_array = item.task.is_none()
                    && self.jobs.get(&item.job).is_some_and(|j| {
                        j.run.array.as_ref().is_some_and(|a| a.job_id == item.job)
                    });
            }
        }
        Ok(parsed)
    }

    /// `scontrol update jobid=N dependency=...`: replaces what a pending job waits for; an
    /// empty text removes it. Errors in Slurm's words, as scontrol prints them before `for job
    /// N` (observed).
    pub fn update_dependency(&mut self, id: u32, text: &str, uid: u32) -> Result<(), String> {
        self.updatable(id, uid)?;
        let dependency = self
            .resolve_dependency(text)
            .map_err(|_| "Job dependency problem".to_string())?;
        if let Some(job) = self.jobs.get_mut(&id) {
            job.run.dependency = dependency;
            job.req.relations.dependency = (!text.is_empty()).then(|| text.to_string());
        }
        self.journal_run(id);
        Ok(())
    }

    /// When a job with a begin time may start: at that time when it had come by the job's
    /// last scheduling event (its submission's pass, an update), else at the first periodic
    /// pass after it, as slurmctld starts such jobs (only its periodic and backfill passes
    /// look at the clock). Slurm batch jobs only; `None` without a begin time.
    fn eligible_at(&self, job: &Job) -> Option<f64> {
        let begin = job.begin_time()?;
        match job.run.first_pass_at {
            Some(event) if begin > event => {
                let interval = self.cluster.sched_interval;
                Some((begin / interval).ceil() * interval)
            }
            _ => Some(begin),
        }
    }

    /// `scontrol update jobid=N StartTime=...`: the pending job may start `after` seconds from
    /// now, not before; this also replaces the wait a requeue set (slurm-observed.md 63). An
    /// update is a scheduling event: a begin time it makes due now is tried at once.
    pub fn update_begin_time(&mut self, id: u32, after: f64, uid: u32) -> Result<(), String> {
        self.updatable(id, uid)?;
        let now = self.now();
        if let Some(job) = self.jobs.get_mut(&id) {
            job.req.begin = Some(now + after);
            job.run.eligible_after = None;
            if job.run.first_pass_at.is_some() {
                job.run.first_pass_at = Some(now);
            }
            // The whole job: the begin time is part of the request, which a run entry lacks.
            if let Err(e) = self.journal.job(job) {
                tracing::error!("journal write failed: {e}");
            }
        }
        Ok(())
    }

    /// Whether `uid` may update job `id`: it exists, is theirs (or they are privileged) and
    /// still pends; the refusal in scontrol's words.
    fn updatable(&self, id: u32, uid: u32) -> Result<(), String> {
        let now = self.now();
        match self.jobs.get(&id) {
            Some(j) if self.is_purged(j, now) => Err("Invalid job id specified".into()),
            None => Err("Invalid job id specified".into()),
            Some(j) if !self.privileged(uid) && j.req.uid != uid => {
                Err(crate::flavor::slurm::INVALID_USER_ID.into())
            }
            Some(j) if j.run.state.is_finished() => Err("Job has already finished".into()),
            Some(j) if j.run.state != JobState::Pending => {
                Err("Job is no longer pending execution".into())
            }
            Some(_) => Ok(()),
        }
    }

    /// Brings the dependencies of pending jobs up to date: met ones leave, ones that can never
    /// be met are marked failed, and a job whose dependency can never be met is cancelled when
    /// it (or the cluster) says so. Held jobs are left as they are (observed: a held job keeps
    /// `afternotok:N(unfulfilled)` after N failed).
    fn update_dependencies(&mut self, now: f64) {
        self.split_for_aftercorr();
        let ids: Vec<u32> = self.pending.iter().map(|(_, id)| *id).collect();
        for id in ids {
            let Some(job) = self.jobs.get(&id) else {
                continue;
            };
            if job.req.hold || job.run.priority == 0 {
                continue;
            }
            let Some(mut dep) = job.run.dependency.clone() else {
                continue;
            };
            let before = dep.clone();
            let progress = dep.update(|item| {
                let targets = self.dependency_targets(job, item, now);
                dependency::item_progress(item, dependency::target_of(item.kind, &targets), now)
            });
            let kill = progress == Progress::Never
                && job
                    .req
                    .relations
                    .kill_on_invalid_dep
                    .unwrap_or(self.cluster.kill_invalid_depend);
            let Some(job) = self.jobs.get_mut(&id) else {
                continue;
            };
            job.run.dependency = (progress != Progress::Satisfied).then_some(dep);
            if kill {
                // Observed: CANCELLED, reason DependencyNeverSatisfied, the dependency kept;
                // sacct keeps the reason the job had until then (`Dependency`, or `None` for
                // a job killed at its first look).
                job.run.accounting_reason = Some(job.run.reason.clone());
                job.run.state = JobState::Cancelled;
                job.run.reason = "DependencyNeverSatisfied".into();
                job.run.end_time = Some(now);
                let notices = job.req.flavor.rules().end_notices(job, now);
                write_notices(job, notices);
                let key = (Reverse(job.run.priority), id);
                self.pending.remove(&key);
                self.journal_run(id);
            } else if job.run.dependency.as_ref() != Some(&before) {
                self.journal_run(id);
            }
        }
    }

    /// Splits every task out of the pending records of arrays that depend on another array
    /// task by task (aftercorr), so that each task waits for its own (observed: the tasks of
    /// such an array are shown and run one by one, the first split off with a new id).
    fn split_for_aftercorr(&mut self) {
        let records: Vec<u32> = self
            .pending
            .iter()
            .map(|(_, id)| *id)
            .filter(|id| {
                self.jobs.get(id).is_some_and(|j| {
                    j.is_array_record()
                        && !j.req.hold
                        && j.run.priority != 0
                        && j.run.dependency.as_ref().is_some_and(|d| {
                            d.items
                                .iter()
                                .any(|i| i.kind == dependency::Kind::AfterCorr)
                        })
                })
            })
            .collect();
        for record in records {
            while let Some(task) = self.split_task(record) {
                if task == record {
                    // The record is its last task now, still pending.
                    self.journal_run(record);
                    break;
                }
                if let Some(j) = self.jobs.get(&task) {
                    self.pending.insert((Reverse(j.run.priority), task));
                }
            }
        }
    }

    /// The records a dependency item of `job` names: an array task (of the job's own index
    /// for aftercorr), a whole array, a job; for singleton the unfinished jobs of the same name
    /// and user ahead of it. Purged jobs are left out: they count as unknown.
    fn dependency_targets(&self, job: &Job, item: &dependency::Item, now: f64) -> Vec<&Job> {
        let visible = |j: &&Job| !self.is_purged(j, now);
        if item.kind == dependency::Kind::Singleton {
            return self
                .jobs
                .values()
                .filter(|j| {
                    j.id != job.id
                        && j.array_job_id() != job.array_job_id()
                        && j.req.name == job.req.name
                        && j.req.uid == job.req.uid
                        && !j.run.state.is_finished()
                        && (j.id < job.id || j.run.state == JobState::Running)
                })
                .collect();
        }
        let task = match item.kind {
            dependency::Kind::AfterCorr => job.array_task().or(job
                .run
                .array
                .as_ref()
                .and_then(|a| a.pending.first().copied())),
            _ => item.task,
        };
        match task {
            Some(t) => self
                .jobs
                .values()
                .filter(|j| {
                    j.array_job_id() == item.job
                        && (j.array_task() == Some(t)
                            || j.is_array_record()
                                && j.run.array.as_ref().is_some_and(|a| a.pending.contains(&t)))
                })
                .filter(visible)
                .collect(),
            None => self
                .array_members(item.job)
                .iter()
                .filter_map(|m| self.jobs.get(m))
                .filter(visible)
                .collect(),
        }
    }

    /// Whether an array's record may start no more tasks now: `%N` of them run already.
    fn array_throttled(&self, job: &Job) -> bool {
        let Some(spec) = &job.req.relations.array else {
            return false;
        };
        if spec.throttle == 0 || !job.is_array_record() {
            return false;
        }
        let array = job.array_job_id();
        let running = self
            .running
            .iter()
            .filter_map(|id| self.jobs.get(id))
            .filter(|j| j.array_job_id() == array)
            .count();
        running >= spec.throttle as usize
    }

    /// Takes the first pending task out of an array's record to start it: as a job of its own
    /// with a new id, or, for the record's last task, as the record itself (observed on Slurm
    /// 22.05: `-a 1-5` submitted as 2997 runs tasks 1-4 as 2998-3001 and task 5 as 2997).
    /// Returns the id of the job to start; `None` when no id is left.
    fn split_task(&mut self, record: u32) -> Option<u32> {
        let job = self.jobs.get(&record)?;
        let array = job.run.array.as_ref()?;
        let &task = array.pending.first()?;
        if array.pending.len() == 1 {
            if let Some(a) = self
                .jobs
                .get_mut(&record)
                .and_then(|j| j.run.array.as_mut())
            {
                a.task = Some(task);
                a.pending.clear();
            }
            return Some(record);
        }
        let mut split = job.clone();
        let array_id = array.job_id;
        let id = self.take_id().ok()?;
        split.id = id;
        let dependency = split.run.dependency.take();
        split.run = JobRun::pending(split.run.priority);
        split.run.dependency = dependency;
        split.run.array = Some(ArrayRun {
            job_id: array_id,
            task: Some(task),
            pending: Vec::new(),
        });
        if split.req.kind == JobKind::Batch {
            let (stdout, stderr, _) =
                expanded_paths(&split.req, id, split.run.array.as_ref(), "%N");
            split.run.stdout_path = Some(stdout);
            split.run.stderr_path = Some(stderr);
        }
        if let Err(e) = self.journal.job(&split) {
            tracing::error!("journal write failed: {e}");
        }
        self.jobs.insert(id, split);
        if let Some(a) = self
            .jobs
            .get_mut(&record)
            .and_then(|j| j.run.array.as_mut())
        {
            a.pending.retain(|t| *t != task);
        }
        self.journal_run(record);
        Some(id)
    }

    /// Every job of the array `id` (the array's record and its tasks), or just job `id` when
    /// it is no array's record.
    pub fn array_members(&self, id: u32) -> Vec<u32> {
        match self.jobs.get(&id) {
            Some(j) if j.run.array.as_ref().is_some_and(|a| a.job_id == id) => self
                .jobs
                .values()
                .filter(|m| m.array_job_id() == id)
                .map(|m| m.id)
                .collect(),
            Some(_) => vec![id],
            None => Vec::new(),
        }
    }

    /// Once every job of `id`'s array (or job `id` alone) has ended: the one whose end a
    /// waiting `sbatch --wait` reports, the task with the highest exit code (observed on
    /// Slurm 22.05: tasks exiting 3, 2, 1 make `sbatch --wait` exit 3), with the latest end.
    pub fn finished_array(&self, id: u32) -> Option<Job> {
        let members: Vec<&Job> = self
            .array_members(id)
            .iter()
            .filter_map(|m| self.jobs.get(m))
            .collect();
        if members.is_empty() || members.iter().any(|j| !j.run.state.is_finished()) {
            return None;
        }
        let code = |j: &&&Job| {
            let s = j.run.exit_status;
            if s & 0x7f == 0 { (s >> 8) & 0xff } else { 1 }
        };
        let last_end = members
            .iter()
            .filter_map(|j| j.run.end_time)
            .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))));
        let mut chosen = (*members.iter().max_by_key(code)?).clone();
        chosen.run.end_time = last_end.or(chosen.run.end_time);
        Some(chosen)
    }

    fn start_job(&mut self, id: u32, alloc: Vec<NodeAlloc>, now: f64) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.run.state = JobState::Running;
        job.run.reason = "None".into();
        job.run.start_time = Some(now);
        job.run.alloc = alloc;
        self.running.insert(id);
        if job.req.kind == JobKind::Batch
            && let Err(e) = self.launch_batch(id)
        {
            tracing::error!("job {id}: launch failed: {e}");
            self.end_job(id, 1 << 8, Some(JobState::Failed));
            return;
        }
        self.journal_run(id);
    }

    /// Real CPU ids for an allocation.
    pub fn real_cpus(&self, alloc: &[NodeAlloc]) -> Vec<usize> {
        let n = self.real_cpus.len().max(1);
        let mut out = Vec::new();
        if let Some(first) = alloc.first() {
            let node_index = self
                .cluster
                .nodes
                .iter()
                .position(|x| x.name == first.node)
                .unwrap_or(0);
            let node_cpus = self
                .cluster
                .nodes
                .get(node_index)
                .map_or(1, |x| x.cpus as usize);
            for &c in &first.cores {
                let slot = node_index
                    .saturating_mul(node_cpus)
                    .saturating_add(c as usize)
                    % n;
                if let Some(&cpu) = self.real_cpus.get(slot)
                    && !out.contains(&cpu)
                {
                    out.push(cpu);
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// The variables the job's scheduler sets in its batch step or allocation, and the
    /// simulated cluster's own: `MOCK_CLUSTER_NODE`, the node the job runs on (its first
    /// node), which the fake `hostname` prints. Every job process gets them: batch jobs
    /// through the launcher, allocations (`srun`, `salloc`, `bsub -I`, `flux alloc|run`)
    /// through the front end that runs the command.
    pub fn job_env(&self, job: &Job) -> BTreeMap<String, String> {
        let mut env = job.req.flavor.rules().job_env(
            job,
            Site {
                cluster_name: &self.cluster.cluster_name,
            },
        );
        let node = job.first_node();
        if !node.is_empty() {
            env.insert(NODE_ENV.to_string(), node);
        }
        env
    }

    fn launch_batch(&mut self, id: u32) -> std::io::Result<()> {
        let job = self
            .jobs
            .get(&id)
            .cloned()
            .ok_or_else(|| std::io::Error::other("no such job"))?;
        let node = job.first_node();
        // Slurm expands %N with the host name of the machine slurmd runs on.
        let host = crate::host::short_hostname();
        let (stdout, stderr, stdin) = expanded_paths(&job.req, id, job.run.array.as_ref(), &host);
        let (script_path, spec_path, pid_file, status_file) = launch::job_paths(&self.dir, id);
        let _ = std::fs::remove_file(&pid_file);
        let _ = std::fs::remove_file(&status_file);
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o700)
                .open(&script_path)?;
            f.write_all(
                job.req
                    .script
                    .as_deref()
                    .unwrap_or("#!/bin/sh\n")
                    .as_bytes(),
            )?;
        }
        // The job's user runs its script (slurmd's `slurm_script` is the user's too).
        users::give(&script_path, job.req.uid, job.req.gid);
        // Output staged at the end is written to a spool meanwhile; a merged stream stays one
        // file.
        let (live_stdout, live_stderr) = if job.req.stage_out {
            let spool = |suffix: &str| self.dir.join("jobs").join(format!("{id}.{suffix}"));
            let out = spool("OU").display().to_string();
            let err = if stderr == stdout {
                out.clone()
            } else {
                spool("ER").display().to_string()
            };
            // The spool is the user's, who writes it (pbs_mom's spool files are the user's).
            for path in [&out, &err] {
                let _ = users::append_as(Path::new(path), job.req.uid, job.req.gid);
            }
            (out, err)
        } else {
            (stdout.clone(), stderr.clone())
        };
        let mut env = job.req.env.clone();
        env.extend(self.job_env(&job));
        for (key, value) in job.req.flavor.rules().batch_env() {
            env.insert(key.to_string(), value.to_string());
        }
        let spec = LaunchSpec {
            job_id: id,
            script: script_path,
            args: job.req.args.clone(),
            env,
            work_dir: job.req.work_dir.clone(),
            stdout: live_stdout.clone(),
            stderr: live_stderr.clone(),
            stdin,
            append: job.req.append,
            cpus: self.real_cpus(&job.run.alloc),
            output_delay_real: self.clock.real_secs(self.inject.output_delay),
            pid_file,
            status_file,
            node,
            flavor: job.req.flavor,
            run_as: (self.owner.uid == 0 && job.req.uid != 0).then(|| launch::RunAs {
                uid: job.req.uid,
                gid: job.req.gid,
                groups: users::groups_of(&job.req.user, job.req.gid),
            }),
        };
        let child =
            launch::spawn_launcher(&self.exe, &spec, &spec_path, &self.dir.join("daemon.log"))?;
        if let Some(j) = self.jobs.get_mut(&id) {
            if j.req.stage_out {
                j.run.staged_to = Some((stdout, stderr));
            }
            j.run.stdout_path = Some(live_stdout);
            j.run.stderr_path = Some(live_stderr);
            j.run.launcher_pid = Some(child.id() as i32);
        }
        self.effects.push(Effect::WatchLauncher(id, child));
        Ok(())
    }

    /// The process group of a running batch job, read from the launcher's pid file when the
    /// scheduler has not picked it up yet.
    fn ensure_pgid(&mut self, id: u32) -> Option<i32> {
        let job = self.jobs.get(&id)?;
        if job.run.pgid.is_some() || job.req.kind != JobKind::Batch {
            return job.run.pgid;
        }
        let (_, _, pid_file, _) = launch::job_paths(&self.dir, id);
        let pgid = launch::read_pgid(&pid_file)?;
        if let Some(j) = self.jobs.get_mut(&id) {
            j.run.pgid = Some(pgid);
        }
        Some(pgid)
    }

    /// Starts the end of a running job: the slurmstepd line, SIGCONT+SIGTERM, and SIGKILL after
    /// kill_wait (from `tick`).
    pub fn begin_kill(&mut self, id: u32, ending: JobState, by: Option<u32>) {
        let now = self.now();
        self.ensure_pgid(id);
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.run.term_sent.is_some() {
            return;
        }
        job.run.term_sent = Some(now);
        job.run.ending = Some(ending);
        job.run.cancelled_by = by;
        if job.req.kind == JobKind::Batch {
            write_notices(job, job.req.flavor.rules().kill_notices(job, ending, now));
        }
        if ending == JobState::NodeFail {
            job.run.kill_sent = true;
            send_signal(job.run.pgid, libc::SIGKILL, true);
        } else if job.req.kind == JobKind::Interactive {
            // srun prints its abort messages first and then signals its step itself; SIGKILL
            // after kill_wait still comes from here.
        } else {
            send_signal(job.run.pgid, libc::SIGCONT, true);
            let term = job.req.flavor.rules().term_signal(ending);
            send_signal(job.run.pgid, term, true);
            signal_steps(job, libc::SIGCONT);
            signal_steps(job, term);
        }
        if ending == JobState::NodeFail {
            signal_steps(job, libc::SIGKILL);
        }
        self.journal_run(id);
    }

    /// Records the end of a job's processes with their raw wait status.
    pub fn end_job(&mut self, id: u32, status: i32, forced: Option<JobState>) {
        let now = self.now();
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.run.state.is_finished() {
            return;
        }
        if let Some(hold) = job.run.requeue {
            // The run as accounting keeps it (`sacct -D`): ended now, with its status.
            job.run.end_time = Some(now);
            job.run.exit_status = status;
            job.run.step_status = Some(status);
            job.run.state = JobState::Cancelled;
            for step in job.run.steps.iter_mut().filter(|s| s.running()) {
                step.end_time = Some(now);
                step.killed = true;
            }
            self.back_to_queue(id, hold);
            return;
        }
        let signaled = status & 0x7f != 0;
        let state = forced.or(job.run.ending).unwrap_or(if status == 0 {
            JobState::Completed
        } else {
            JobState::Failed
        });
        job.run.state = state;
        job.run.exit_status = status;
        job.run.step_status = Some(status);
        job.run.end_time = Some(match job.run.term_sent {
            Some(decided) if job.req.flavor.rules().ends_at_kill() => decided,
            _ => now,
        });
        job.run.pgid = None;
        let step_end = job.run.end_time;
        for step in job.run.steps.iter_mut().filter(|s| s.running()) {
            step.end_time = step_end;
            step.killed = true;
        }
        job.run.reason = match state {
            // Observed on Slurm 22.05: a batch script killed by a signal is reported this way.
            JobState::Failed if signaled && job.req.kind == JobKind::Batch => {
                "JobLaunchFailure".into()
            }
            JobState::Failed if signaled => format!(
                "RaisedSignal:{}({})",
                status & 0x7f,
                signal_name(status & 0x7f)
            ),
            JobState::Failed => "NonZeroExitCode".into(),
            JobState::Timeout => "TimeLimit".into(),
            JobState::NodeFail => "NodeDown".into(),
            _ => "None".into(),
        };
        let notices = job.req.flavor.rules().end_notices(job, now);
        write_notices(job, notices);
        stage_out(job);
        self.running.remove(&id);
        self.journal_run(id);
    }

    /// Cancels a pending job or starts killing a running one; or delivers a signal with `-s`.
    pub fn cancel(&mut self, req: &CancelRequest) -> Vec<CancelOutcome> {
        let now = self.now();
        let mut targets: Vec<u32> = Vec::new();
        let mut results = Vec::new();
        let filtered = req.name.is_some()
            || req.user.is_some()
            || req.state.is_some()
            || req.partition.is_some();
        let matches = |job: &Job| {
            req.name.as_ref().is_none_or(|n| &job.req.name == n)
                && req.user.as_ref().is_none_or(|u| {
                    &job.req.user == u || u.parse::<u32>().ok() == Some(job.req.uid)
                })
                && req.state.is_none_or(|s| job.run.state == s)
                && req.partition.as_ref().is_none_or(|p| &job.partition == p)
        };
        if req.ids.is_empty() && req.array_tasks.is_empty() {
            if filtered {
                targets = self
                    .jobs
                    .values()
                    .filter(|j| !j.run.state.is_finished() && matches(j))
                    .map(|j| j.id)
                    .collect();
            }
        } else {
            let ended = |j: &Job| {
                j.run.state.is_finished() || j.run.term_sent.is_some() && req.signal.is_none()
            };
            // slurmctld refuses another user's job before it looks at its state.
            let privileged = self.privileged(req.uid);
            let denied = |j: &Job| !privileged && j.req.uid != req.uid && matches(j);
            for &id in &req.ids {
                let members = self.array_members(id);
                match self.jobs.get(&id) {
                    None => results.push(CancelOutcome::InvalidId(id)),
                    Some(j) if self.is_purged(j, now) => results.push(CancelOutcome::InvalidId(id)),
                    Some(j) if denied(j) => results.push(CancelOutcome::Denied(id)),
                    // An array's id: every task of it that has not ended.
                    Some(_) if members.len() > 1 => {
                        let live: Vec<u32> = members
                            .iter()
                            .filter_map(|m| self.jobs.get(m))
                            .filter(|m| !ended(m) && matches(m))
                            .map(|m| m.id)
                            .collect();
                        if live.is_empty() {
                            results.push(CancelOutcome::AlreadyDone(id));
                        }
                        targets.extend(live);
                    }
                    Some(j) if ended(j) => results.push(CancelOutcome::AlreadyDone(id)),
                    Some(j) if matches(j) => targets.push(id),
                    Some(_) => {}
                }
            }
            for &(array, task) in &req.array_tasks {
                let own = self
                    .jobs
                    .values()
                    .find(|j| j.array_job_id() == array && j.array_task() == Some(task))
                    .map(|j| (j.id, ended(j)));
                let record = self.jobs.get(&array);
                if own.is_none() && record.is_some_and(denied) {
                    results.push(CancelOutcome::Denied(array));
                    continue;
                }
                if let Some((id, _)) = own
                    && self.jobs.get(&id).is_some_and(denied)
                {
                    results.push(CancelOutcome::Denied(id));
                    continue;
                }
                match own {
                    Some((id, true)) => results.push(CancelOutcome::AlreadyDone(id)),
                    Some((id, false)) => targets.push(id),
                    None if self.drop_pending_task(array, task, req, now) => {
                        results.push(CancelOutcome::Done(array))
                    }
                    None => results.push(CancelOutcome::InvalidId(array)),
                }
            }
        }
        for id in targets {
            if !self.may_act_on(id, req.uid) {
                results.push(CancelOutcome::Denied(id));
                continue;
            }
            self.ensure_pgid(id);
            let Some(job) = self.jobs.get_mut(&id) else {
                continue;
            };
            match (job.run.state, req.signal) {
                (JobState::Pending, Some(_)) => {
                    results.push(CancelOutcome::Done(id));
                }
                (JobState::Pending, None) => {
                    // The pending reason stays, and sacct shows no "by <uid>" (observed).
                    job.run.state = JobState::Cancelled;
                    job.run.end_time = Some(now);
                    job.run.cancelled_by = Some(req.uid);
                    let notices = job.req.flavor.rules().end_notices(job, now);
                    write_notices(job, notices);
                    let key = (Reverse(job.run.priority), id);
                    self.pending.remove(&key);
                    self.journal_run(id);
                    results.push(CancelOutcome::Done(id));
                }
                (JobState::Running, Some(sig)) => {
                    // scancel(1): a signal goes to the job's steps; with --batch to the batch
                    // shell alone, with --full to the batch shell, its children and the steps.
                    // A job without a batch shell (srun, salloc) is its one step.
                    let scope = match job.req.kind {
                        JobKind::Batch => req.scope,
                        JobKind::Interactive => SignalScope::Job,
                    };
                    let shell = match scope {
                        SignalScope::Job | SignalScope::Full => Some(true),
                        SignalScope::BatchShell => Some(false),
                        SignalScope::Steps => None,
                    };
                    match (shell, job.run.pgid) {
                        (Some(group), Some(_)) => send_signal(job.run.pgid, sig, group),
                        // The job has started but its shell's pid is not written yet.
                        (Some(group), None) => job.run.pending_signals.push((sig, group)),
                        (None, _) => {}
                    }
                    if scope != SignalScope::BatchShell {
                        signal_steps(job, sig);
                    }
                    results.push(CancelOutcome::Done(id));
                }
                (JobState::Running, None) => {
                    self.begin_kill(id, JobState::Cancelled, Some(req.uid));
                    results.push(CancelOutcome::Done(id));
                }
                _ => results.push(CancelOutcome::AlreadyDone(id)),
            }
        }
        results
    }

    /// A step of `ntasks` tasks using `cpus` CPUs inside running job `id`'s allocation; the
    /// refusal in srun's words otherwise.
    pub fn create_step(
        &mut self,
        id: u32,
        name: String,
        ntasks: u32,
        cpus: u32,
        uid: u32,
    ) -> Result<u32, String> {
        let now = self.now();
        if !self.may_act_on(id, uid) {
            return Err(crate::flavor::slurm::ACCESS_DENIED.into());
        }
        let Some(job) = self.jobs.get_mut(&id) else {
            return Err("Invalid job id specified".into());
        };
        if job.run.state != JobState::Running || job.run.term_sent.is_some() {
            return Err("Job/step already completing or completed".into());
        }
        let allocated: u32 = job.run.alloc.iter().map(|a| a.cores.len() as u32).sum();
        if cpus > allocated.max(job.cpus) {
            return Err("More processors requested than permitted".into());
        }
        let step_id = job.run.steps.len() as u32;
        job.run.steps.push(JobStep {
            id: step_id,
            name,
            ntasks,
            pgid: None,
            start_time: now,
            end_time: None,
            status: None,
            killed: false,
        });
        self.journal_run(id);
        Ok(step_id)
    }

    /// The tasks of step `step_id` of job `id` run in process group `pgid`.
    pub fn step_running(&mut self, id: u32, step_id: u32, pgid: i32) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let killing = job.run.term_sent.is_some();
        if let Some(step) = job.run.steps.get_mut(step_id as usize) {
            step.pgid = Some(pgid);
            // A step that started while the job was being ended is ended with it.
            if killing {
                send_signal(Some(pgid), libc::SIGKILL, true);
            }
        }
        self.journal_run(id);
    }

    /// Step `step_id` of job `id` ended with raw wait `status`.
    pub fn step_ended(&mut self, id: u32, step_id: u32, status: i32) {
        let now = self.now();
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let killing = job.run.term_sent.is_some();
        if let Some(step) = job.run.steps.get_mut(step_id as usize)
            && step.running()
        {
            step.end_time = Some(now);
            step.status = Some(status);
            step.killed = killing;
            step.pgid = None;
        }
        self.journal_run(id);
    }

    /// `scontrol requeue|requeuehold|hold|uhold|release`: the refusal in scontrol's words.
    /// `release` may release the job and still answer
    /// [`crate::protocol::PARTITION_CONFIG_NOW`].
    pub fn control(&mut self, verb: ControlVerb, id: u32, uid: u32) -> Result<(), String> {
        let now = self.now();
        let Some(job) = self.jobs.get(&id) else {
            return Err("Invalid job id specified".into());
        };
        if self.is_purged(job, now) {
            return Err("Invalid job id specified".into());
        }
        // Observed on Slurm 22.05: requeueing another user's job is "Access/permission
        // denied"; holding or releasing it, "Invalid user id".
        if !self.privileged(uid) && job.req.uid != uid {
            return Err(match verb {
                ControlVerb::Requeue | ControlVerb::RequeueHold => {
                    crate::flavor::slurm::ACCESS_DENIED
                }
                _ => crate::flavor::slurm::INVALID_USER_ID,
            }
            .into());
        }
        let state = job.run.state;
        match verb {
            ControlVerb::Requeue | ControlVerb::RequeueHold => {
                let hold = verb == ControlVerb::RequeueHold;
                if job.req.kind != JobKind::Batch {
                    return Err("Only batch jobs are accepted or processed".into());
                }
                if job.req.no_requeue {
                    return Err("Requested operation is presently disabled".into());
                }
                if state == JobState::Pending {
                    return Err("Job is pending execution".into());
                }
                if job.run.requeue.is_some() || job.run.term_sent.is_some() {
                    return Err("Job/step already completing or completed".into());
                }
                if state == JobState::Running {
                    if let Some(j) = self.jobs.get_mut(&id) {
                        j.run.requeue = Some(hold);
                    }
                    self.begin_kill(id, JobState::Cancelled, None);
                } else {
                    self.back_to_queue(id, hold);
                }
                Ok(())
            }
            ControlVerb::Hold | ControlVerb::UserHold => {
                if state != JobState::Pending {
                    return Err("Job is no longer pending execution".into());
                }
                if let Some(j) = self.jobs.get_mut(&id) {
                    j.run.priority = 0;
                    j.run.held_by_admin = verb == ControlVerb::Hold;
                    j.run.requeued_held = false;
                }
                self.requeue_pending(id);
                Ok(())
            }
            ControlVerb::Release => {
                if state == JobState::Pending && job.run.priority == 0 {
                    let priority = self.base_priority(job);
                    // Observed on Slurm 22.05: releasing a job that wants more CPUs per node
                    // than the partition's nodes have releases it (it then pends with
                    // `PartitionConfig`) but answers with an error.
                    let too_wide = self.cluster.partition(&job.partition).is_some_and(|p| {
                        let max_cpus = p
                            .nodes
                            .iter()
                            .filter_map(|n| self.cluster.node(n))
                            .map(|n| n.cpus)
                            .max()
                            .unwrap_or(0);
                        job.cpus.div_ceil(job.num_nodes.max(1)) > max_cpus
                    });
                    if let Some(j) = self.jobs.get_mut(&id) {
                        j.run.priority = priority;
                        j.run.held_by_admin = false;
                        j.run.requeued_held = false;
                    }
                    self.requeue_pending(id);
                    if too_wide {
                        return Err(crate::protocol::PARTITION_CONFIG_NOW.into());
                    }
                }
                Ok(())
            }
        }
    }

    /// A job's priority when nothing holds it.
    fn base_priority(&self, job: &Job) -> u32 {
        let qos = self.cluster.qos.get(&job.qos).map_or(0, |q| q.priority);
        PRIORITY_BASE.saturating_sub(job.id).saturating_add(qos)
    }

    /// Files pending job `id` under its current priority.
    fn requeue_pending(&mut self, id: u32) {
        self.pending.retain(|&(_, other)| other != id);
        if let Some(job) = self.jobs.get(&id) {
            self.pending.insert((Reverse(job.run.priority), id));
        }
        self.journal_run(id);
    }

    /// Puts a job that ran back in the queue: a new run, counted in `Restarts`, eligible
    /// again only after `cred_expire + 1` (121) simulated seconds, as slurmctld's
    /// `_job_requeue_op` makes it (observed: `BeginTime` for two minutes).
    fn back_to_queue(&mut self, id: u32, hold: bool) {
        let now = self.now();
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let priority = if hold { 0 } else { self.base_priority(job) };
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let restarts = job.run.restarts + 1;
        let mut previous_runs = std::mem::take(&mut job.run.previous_runs);
        previous_runs.push(std::mem::replace(&mut job.run, JobRun::pending(priority)));
        job.run.previous_runs = previous_runs;
        job.run.restarts = restarts;
        job.run.requeued_held = hold;
        job.run.eligible_after = Some(now + REQUEUE_DELAY_SECS);
        self.running.remove(&id);
        self.requeue_pending(id);
    }

    /// Cancels task `task` still pending in the record of array `array` (a signal leaves it
    /// be): it leaves the record; the record's last task turns the record into that task,
    /// cancelled. Whether the record held the task.
    fn drop_pending_task(&mut self, array: u32, task: u32, req: &CancelRequest, now: f64) -> bool {
        let Some(job) = self.jobs.get_mut(&array) else {
            return false;
        };
        let Some(a) = job.run.array.as_mut() else {
            return false;
        };
        if job.run.state != JobState::Pending || !a.pending.contains(&task) {
            return false;
        }
        if req.signal.is_some() {
            return true;
        }
        a.pending.retain(|t| *t != task);
        if a.pending.is_empty() {
            a.task = Some(task);
            job.run.state = JobState::Cancelled;
            job.run.end_time = Some(now);
            job.run.cancelled_by = Some(req.uid);
            let key = (Reverse(job.run.priority), array);
            self.pending.remove(&key);
        }
        self.journal_run(array);
        true
    }

    /// Applies run-time injections.
    pub fn apply_injection(&mut self, req: &InjectRequest) {
        if req.clear {
            self.inject = Injections::default();
        }
        if let Some(n) = req.submit_errors {
            self.inject.submit_errors = n;
        }
        if let Some(t) = &req.submit_error_text {
            self.inject.submit_error_text = Some(t.clone());
        }
        if let Some(t) = req.status_timeout {
            self.inject.status_timeout = t;
        }
        if let Some(d) = req.output_delay {
            // A delay the launcher cannot wait for (negative, NaN, infinite) means none.
            self.inject.output_delay = if d.is_finite() && d > 0.0 { d } else { 0.0 };
        }
        for n in &req.resume_nodes {
            self.inject.failed_nodes.retain(|x| x != n);
        }
        for n in &req.fail_nodes {
            if !self.inject.failed_nodes.contains(n) {
                self.inject.failed_nodes.push(n.clone());
            }
            let victims: Vec<u32> = self
                .running
                .iter()
                .copied()
                .filter(|id| {
                    self.jobs
                        .get(id)
                        .is_some_and(|j| j.run.alloc.iter().any(|a| &a.node == n))
                })
                .collect();
            for id in victims {
                self.begin_kill(id, JobState::NodeFail, None);
            }
        }
        let _ = self.journal.inject(&self.inject);
    }

    /// Sets the process group of an interactive job's step.
    pub fn step_started(&mut self, id: u32, pgid: i32, name: String) {
        if let Some(j) = self.jobs.get_mut(&id) {
            j.run.pgid = Some(pgid);
            j.run.step_name = Some(name);
            if j.run.kill_sent {
                send_signal(Some(pgid), libc::SIGKILL, true);
            } else if j.run.term_sent.is_some() {
                send_signal(Some(pgid), libc::SIGTERM, true);
            }
        }
    }

    /// The client of an interactive job went away or finished.
    pub fn release(&mut self, id: u32, status: Option<i32>) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        match job.run.state {
            JobState::Pending => {
                let key = (Reverse(job.run.priority), id);
                self.pending.remove(&key);
                let now = self.now();
                if let Some(j) = self.jobs.get_mut(&id) {
                    j.run.state = JobState::Cancelled;
                    j.run.end_time = Some(now);
                }
                self.journal_run(id);
            }
            JobState::Running => {
                let pgid = job.run.pgid;
                match status {
                    Some(s) => self.end_job(id, s, None),
                    None => {
                        // The client died: the step goes with it (srun's own step, or the
                        // command salloc and others announced).
                        send_signal(pgid, libc::SIGKILL, true);
                        signal_steps(job, libc::SIGKILL);
                        self.end_job(id, libc::SIGKILL, Some(JobState::Cancelled));
                    }
                }
            }
            _ => {}
        }
    }

    /// The submitting clients of these jobs have their answers: the next pass may take them.
    pub fn answered(&mut self, ids: &[u32]) {
        for id in ids {
            if let Some(j) = self.jobs.get_mut(id) {
                j.run.awaiting_reply = false;
            }
        }
    }

    /// Copies of jobs for a client, without the bulky request parts.
    pub fn jobs_for_client(&self, ids: Option<&[u32]>, accounting: bool) -> Vec<Job> {
        let now = self.now();
        let slim = |j: &Job| {
            let mut j = j.clone();
            j.req.env.clear();
            j.req.script = None;
            j
        };
        let visible = |j: &&Job| accounting || !self.is_purged(j, now);
        let jobs: Vec<Job> = match ids {
            // An array's id names all its jobs.
            Some(ids) => ids
                .iter()
                .flat_map(|id| self.array_members(*id))
                .filter_map(|id| self.jobs.get(&id))
                .filter(visible)
                .map(slim)
                .collect(),
            None => self.jobs.values().filter(visible).map(slim).collect(),
        };
        if !accounting {
            return jobs;
        }
        jobs.into_iter()
            .filter_map(|j| self.as_accounted(j, now))
            .collect()
    }

    /// A Slurm job as the accounting database knows it `now`: slurmdbd hears of a submission a
    /// moment after `sbatch` returns and of a start well after `squeue` shows it, while the end
    /// record (which carries the start) is there at once (slurm-observed.md 57).
    fn as_accounted(&self, mut job: Job, now: f64) -> Option<Job> {
        if job.req.flavor != Flavor::Slurm || job.req.kind != JobKind::Batch {
            return Some(job);
        }
        if now < job.submit_time + self.cluster.accounting_submit_delay {
            return None;
        }
        let start_unheard = job.run.state == JobState::Running
            && job
                .run
                .start_time
                .is_some_and(|start| now < start + self.cluster.accounting_start_delay);
        if start_unheard {
            job.run.state = JobState::Pending;
            job.run.reason = "None".into();
            job.run.start_unaccounted = true;
            job.run.steps.clear();
        }
        Some(job)
    }

    /// Kills every running job (the cluster's state directory is gone).
    pub fn kill_all(&mut self) {
        for id in &self.running {
            if let Some(j) = self.jobs.get(id) {
                send_signal(j.run.pgid, libc::SIGKILL, true);
            }
        }
    }

    /// Whether the job is running with its processes gone but not yet accounted (adopted jobs).
    pub fn poll_adopted(&mut self, id: u32) -> bool {
        let (_, _, _, status_file) = launch::job_paths(&self.dir, id);
        if let Some(s) = launch::read_status(&status_file) {
            self.end_job(id, s, None);
            return true;
        }
        let alive = self
            .jobs
            .get(&id)
            .and_then(|j| j.run.launcher_pid)
            .is_some_and(|p| {
                // SAFETY: kill with signal 0 only checks for existence.
                unsafe { libc::kill(p, 0) == 0 }
            });
        if !alive {
            // Re-check: the launcher may have written the status just before exiting.
            if let Some(s) = launch::read_status(&status_file) {
                self.end_job(id, s, None);
            } else {
                self.end_job(id, libc::SIGKILL, Some(JobState::NodeFail));
            }
            return true;
        }
        !self.running.contains(&id)
    }
}

/// A file name pattern of the job, expanded by the rules of its scheduler.
fn rules_expand(req: &JobRequest, p: &str, f: &PatternFields<'_>) -> String {
    req.flavor.rules().expand_pattern(p, f, req)
}

/// The job's stdout, stderr and stdin paths, expanded for job `id` (an array task, or an
/// array's record of pending tasks, whose `%a` is Slurm's NO_VAL: observed
/// `StdOut=.../o-2997_4294967294.out`) with `node` for `%N`.
fn expanded_paths(
    req: &JobRequest,
    id: u32,
    array: Option<&ArrayRun>,
    node: &str,
) -> (String, String, String) {
    let fields = PatternFields {
        job_id: id,
        array_job_id: array.map_or(id, |a| a.job_id),
        array_task_id: array.and_then(|a| a.task).unwrap_or(pattern::NO_ARRAY_TASK),
        job_name: &req.name,
        user: &req.user,
        node,
        step: "batch",
    };
    let out_pattern = req
        .stdout
        .clone()
        .unwrap_or_else(|| req.flavor.rules().default_output().into());
    let expand = |p: &str| absolute(&req.work_dir, &rules_expand(req, p, &fields));
    let stdout = expand(&out_pattern);
    let stderr = expand(req.stderr.as_deref().unwrap_or(&out_pattern));
    let stdin = match &req.stdin {
        Some(p) => expand(p),
        None => "/dev/null".into(),
    };
    (stdout, stderr, stdin)
}

/// Resolves a path relative to the job's working directory.
pub fn absolute(work_dir: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{}", work_dir.trim_end_matches('/'), path)
    }
}
