//! What every differential case shares: a [`Side`] (one Slurm, real or simulated, its
//! normaliser and its observation), the lock that gives the real node to one case at a time,
//! and [`differential_result`], which runs a case on both sides and compares them. Each
//! `slurm_differential*.rs` test file holds cases of one area.
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use conformance::normalize::{Normalizer, submitted_job_id};
use conformance::observation::{Observation, compare};
use conformance::poll::poll_until;
use conformance::slurm_env::{
    EnvError, FakeCluster, REAL_SLURM_VAR, RunOptions, RunOutput, Running, SlurmEnv,
};

/// How long a job may take to reach a state it is expected to reach soon.
pub const STATE_DEADLINE: Duration = Duration::from_secs(60);
/// How long accounting may take to record a finished job.
pub const SACCT_DEADLINE: Duration = Duration::from_secs(30);

/// One case at a time on the real node (see the module docs).
pub static REAL_NODE: Mutex<()> = Mutex::new(());

/// Real jobs of this test process that may run while other cases hold `REAL_NODE` (the
/// background time-limit job).
pub static BACKGROUND_JOBS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// How long a case waits for jobs it did not start to leave the real node.
pub const QUIET_NODE_DEADLINE: Duration = Duration::from_secs(180);

pub type CaseResult = Result<(), CaseError>;

/// Why a case could not go on. On the fake side this becomes part of the observation, so the
/// comparison shows where the simulated cluster went wrong.
#[derive(Debug)]
pub struct CaseError(pub String);

impl From<EnvError> for CaseError {
    fn from(e: EnvError) -> Self {
        CaseError(e.to_string())
    }
}

pub fn fail<T>(message: impl Into<String>) -> Result<T, CaseError> {
    Err(CaseError(message.into()))
}

/// Writes straight to stderr, past the test harness's output capture, so that a case that did
/// not run is seen also when it "passes".
pub fn loud(message: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "\n!!! {message}\n");
}

pub fn real_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var(REAL_SLURM_VAR).is_ok_and(|v| v == "1")
}

/// Whether real Slurm has accounting (slurmdbd); computed once.
pub fn real_accounting() -> bool {
    static ACCOUNTING: OnceLock<bool> = OnceLock::new();
    *ACCOUNTING.get_or_init(|| match SlurmEnv::real_from_env() {
        Ok(Some(env)) => env
            .run(&["sacct", "-n", "-X", "-j", "1"])
            .map(|out| !out.stderr.contains("accounting storage is disabled"))
            .unwrap_or(false),
        _ => false,
    })
}

/// Whether sacct can be compared: the real Slurm has accounting. Without it a case leaves its
/// sacct part out, loudly (`what` says which), or fails where CI requires the comparison.
pub fn sacct_comparable(what: &str) -> Result<bool, CaseError> {
    if real_accounting() {
        return Ok(true);
    }
    if real_required() {
        return fail(format!(
            "the real Slurm has no accounting (slurmdbd), but CI needs {what} compared; \
             start it with ci/slurm up"
        ));
    }
    loud(&format!(
        "{what} NOT COMPARED: the real Slurm runs without accounting (ci/slurm up enables it)"
    ));
    Ok(false)
}

/// One side of a case: a Slurm environment, the normaliser and what was observed so far.
pub struct Side {
    pub env: SlurmEnv,
    pub norm: Normalizer,
    pub obs: Observation,
    pub node: Option<NodeLock>,
    /// Whether the case made jobs queue on purpose ([`Side::fill_node`]): then the lines that
    /// say so are part of what is compared.
    pub queueing_on_purpose: bool,
}

/// The real node, held by one case at a time: within this process (`REAL_NODE`) and across
/// processes (an advisory lock file, for two runs of this suite on one machine's Slurm).
pub struct NodeLock {
    _file: Option<nix::fcntl::Flock<std::fs::File>>,
    _guard: MutexGuard<'static, ()>,
}

impl NodeLock {
    pub fn acquire() -> NodeLock {
        let guard = REAL_NODE
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let path = std::env::temp_dir().join("batchci-real-slurm-node.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ok()
            .and_then(|f| nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).ok());
        if file.is_none() {
            loud(&format!(
                "could not lock {}: another run of this suite may use the real Slurm at the same time",
                path.display()
            ));
        }
        NodeLock {
            _file: file,
            _guard: guard,
        }
    }
}

impl Side {
    pub fn new(env: SlurmEnv) -> Self {
        let norm = Normalizer::for_this_machine(env.cwd());
        Side {
            env,
            norm,
            obs: Observation::new(),
            node: None,
            queueing_on_purpose: false,
        }
    }

    pub fn is_real(&self) -> bool {
        self.env.kind() == "real"
    }

    /// Lets other cases use the real node (for a case that only waits from now on).
    pub fn release_node(&mut self) {
        self.node = None;
    }

    /// The command line for the record: job ids given to `-j`, `show job`, `scancel` and
    /// `jobid=` (scontrol update) become placeholders; other arguments stay as they are (a `1` in `-c 1` is not a job id).
    pub fn argv_text(&mut self, argv: &[&str]) -> String {
        let program = argv.first().copied().unwrap_or("");
        let mut words = Vec::new();
        for (i, arg) in argv.iter().enumerate() {
            let prev = if i > 0 { argv[i - 1] } else { "" };
            let takes_id = prev == "-j"
                || prev == "job"
                || (program == "scontrol"
                    && matches!(
                        prev,
                        "requeue" | "requeuehold" | "hold" | "uhold" | "release"
                    ))
                || (program == "scancel"
                    && i > 0
                    && !arg.starts_with('-')
                    && !matches!(prev, "-s" | "-n"));
            let (prefix, arg) = match arg.strip_prefix("-j") {
                Some(rest)
                    if !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit() || c == ',') =>
                {
                    ("-j", rest)
                }
                _ => match arg.strip_prefix("jobid=") {
                    Some(rest) => ("jobid=", rest),
                    None => ("", *arg),
                },
            };
            let takes_id = takes_id || !prefix.is_empty();
            let word = if takes_id {
                arg.split(',')
                    .map(|part| {
                        // An array task (`12_3`, `12_[1-2]`): the array's id, then the tasks.
                        let (id, task) = match part.split_once('_') {
                            Some((id, task)) => (id, format!("_{task}")),
                            None => (part, String::new()),
                        };
                        id.parse()
                            .map(|id| format!("{}{task}", self.norm.learn(id)))
                            .unwrap_or_else(|_| part.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            } else {
                arg.replace(&self.env.cwd().to_string_lossy().into_owned(), "<CWD>")
            };
            let word = format!("{prefix}{word}");
            if word.is_empty()
                || word.contains(|c: char| c.is_whitespace() || "'\"$;|&".contains(c))
            {
                words.push(format!("'{word}'"));
            } else {
                words.push(word);
            }
        }
        words.join(" ")
    }

    /// Records a finished command under `key`: argv, stdout, stderr, exit status.
    pub fn record(&mut self, key: &str, argv: &[&str], out: &RunOutput) {
        let stdout = self.norm.text(&out.stdout);
        // Left out before the job ids are learned from them, so that both sides number the
        // same jobs alike.
        let stderr: String = out
            .stderr
            .lines()
            .filter(|l| {
                !not_comparable(
                    argv.first().copied().unwrap_or_default(),
                    l,
                    self.queueing_on_purpose,
                )
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let stderr = self.norm.text(&stderr);
        let text = format!(
            "$ {}\n[stdout]\n{}[stderr]\n{}[{}]",
            self.argv_text(argv),
            with_newline(&stdout),
            with_newline(&stderr),
            out.status_text()
        );
        self.obs.record(key, text);
    }

    pub fn note(&mut self, key: &str, value: impl Into<String>) {
        self.obs.record(key, value);
    }

    pub fn run(&mut self, key: &str, argv: &[&str]) -> Result<RunOutput, CaseError> {
        self.run_with(key, argv, &RunOptions::default())
    }

    pub fn run_with(
        &mut self,
        key: &str,
        argv: &[&str],
        options: &RunOptions,
    ) -> Result<RunOutput, CaseError> {
        let out = self.env.run_with(argv, options)?;
        self.record(key, argv, &out);
        Ok(out)
    }

    /// Runs a submission that must print a job id; returns it.
    pub fn submit(&mut self, key: &str, argv: &[&str]) -> Result<u64, CaseError> {
        let out = self.run(key, argv)?;
        match submitted_job_id(&out.stdout) {
            Some(id) => Ok(id),
            None => fail(format!(
                "`{}` printed no job id: stdout {:?}, stderr {:?}",
                argv.join(" "),
                out.stdout,
                out.stderr
            )),
        }
    }

    /// Starts a background `sbatch --wait ...` and returns it with the job id it printed.
    pub fn spawn_sbatch_wait(&mut self, argv: &[&str]) -> Result<(Running, u64), CaseError> {
        let running = self.env.spawn(argv)?;
        let mut id = None;
        poll_until(STATE_DEADLINE, || {
            id = submitted_job_id(&running.stdout_so_far());
            id.is_some() || !running.stderr_so_far().is_empty()
        });
        match id {
            Some(id) => {
                self.norm.learn(id);
                Ok((running, id))
            }
            None => fail(format!(
                "`{}` printed no job id: stdout {:?}, stderr {:?}",
                argv.join(" "),
                running.stdout_so_far(),
                running.stderr_so_far()
            )),
        }
    }

    /// Waits for a background command and records it.
    pub fn finish(
        &mut self,
        key: &str,
        argv: &[&str],
        running: Running,
    ) -> Result<RunOutput, CaseError> {
        let out = running.wait()?;
        self.record(key, argv, &out);
        Ok(out)
    }

    /// The job's long state, as `squeue -h -t all -j ID -o %T` prints it (empty if unknown).
    pub fn state(&self, id: u64) -> Result<String, CaseError> {
        let out = self.env.run(&[
            "squeue",
            "-h",
            "-t",
            "all",
            "-j",
            &id.to_string(),
            "-o",
            "%T",
        ])?;
        Ok(out.stdout.trim().to_string())
    }

    /// Polls `argv` until its stdout satisfies `done`; a timeout is a case error about `what`.
    pub fn poll_output(
        &self,
        what: &str,
        argv: &[&str],
        done: impl Fn(&str) -> bool,
    ) -> CaseResult {
        let mut last = String::new();
        if poll_until(STATE_DEADLINE, || {
            last = self.env.run(argv).map(|o| o.stdout).unwrap_or_default();
            done(&last)
        }) {
            Ok(())
        } else {
            fail(format!(
                "{what} within {STATE_DEADLINE:?}; last output {last:?}"
            ))
        }
    }

    /// Polls until the job is in one of `states`; a timeout is a case error.
    pub fn wait_for_state(&self, id: u64, states: &[&str]) -> CaseResult {
        self.wait_for_job(id, &format!("reach {states:?}"), |state| {
            states.contains(&state)
        })
    }

    /// Polls until the job has left the active states (it may still be `COMPLETING` for a
    /// moment after the command that waited for it returned).
    pub fn wait_until_finished(&self, id: u64) -> CaseResult {
        self.wait_for_job(id, "finish", |state| {
            !matches!(
                state,
                "PENDING" | "CONFIGURING" | "RUNNING" | "COMPLETING" | "SUSPENDED"
            )
        })
    }

    /// Polls the job's state until `done` holds; a timeout is a case error saying what the job
    /// did not do (`what`) and its last state.
    fn wait_for_job(&self, id: u64, what: &str, done: impl Fn(&str) -> bool) -> CaseResult {
        let mut last = String::new();
        let reached = poll_until(STATE_DEADLINE, || {
            last = self.state(id).unwrap_or_default();
            done(&last)
        });
        if reached {
            Ok(())
        } else {
            fail(format!(
                "job {id} did not {what} within {STATE_DEADLINE:?}; last state {last:?}"
            ))
        }
    }

    /// Polls until the pending job has a reason other than `None` (the scheduler looked at it).
    pub fn wait_for_pending_reason(&self, id: u64) -> CaseResult {
        let mut last = String::new();
        let reached = poll_until(STATE_DEADLINE, || {
            last = self
                .env
                .run(&["squeue", "-h", "-j", &id.to_string(), "-o", "%T|%r"])
                .map(|o| o.stdout.trim().to_string())
                .unwrap_or_default();
            last.starts_with("PENDING|") && last != "PENDING|None"
        });
        if reached {
            Ok(())
        } else {
            fail(format!(
                "job {id} got no pending reason within {STATE_DEADLINE:?}; squeue said {last:?}"
            ))
        }
    }

    /// Waits until the job pends for `reason`. Real Slurm revises a pending reason from one
    /// scheduling pass to the next (a job over the partition's time limit shows
    /// `PartitionConfig` first and `PartitionTimeLimit` once the limit check has run), so a
    /// comparison must wait for the settled reason, not the first one.
    pub fn wait_for_reason(&self, id: u64, reason: &str) -> CaseResult {
        let want = format!("PENDING|{reason}");
        let mut last = String::new();
        let reached = poll_until(STATE_DEADLINE, || {
            last = self
                .env
                .run(&["squeue", "-h", "-j", &id.to_string(), "-o", "%T|%r"])
                .map(|o| o.stdout.trim().to_string())
                .unwrap_or_default();
            last == want
        });
        if reached {
            Ok(())
        } else {
            fail(format!(
                "job {id} did not settle on {want:?} within {STATE_DEADLINE:?}; squeue said {last:?}"
            ))
        }
    }

    /// Records `squeue -h -t all -j ID -o '%T|%r'`.
    pub fn record_state(&mut self, key: &str, id: u64) -> CaseResult {
        let id = id.to_string();
        self.run(
            key,
            &["squeue", "-h", "-t", "all", "-j", &id, "-o", "%T|%r"],
        )?;
        Ok(())
    }

    /// Waits until the job has finished, then records its state and reason.
    pub fn record_final_state(&mut self, key: &str, id: u64) -> CaseResult {
        self.wait_until_finished(id)?;
        self.record_state(key, id)
    }

    /// Records the chosen `scontrol -o show job ID` fields.
    pub fn record_scontrol(&mut self, key: &str, id: u64, fields: &[&str]) -> CaseResult {
        let out = self
            .env
            .run(&["scontrol", "-o", "show", "job", &id.to_string()])?;
        let value = if out.code == Some(0) {
            let mut picked = Vec::new();
            for field in fields {
                let prefix = format!("{field}=");
                let found = out
                    .stdout
                    .split_whitespace()
                    .find_map(|kv| kv.strip_prefix(prefix.as_str()));
                picked.push(match found {
                    Some(v) if matches!(*field, "JobId" | "ArrayJobId") => {
                        let v = v
                            .parse()
                            .map(|id| self.norm.learn(id))
                            .unwrap_or_else(|_| v.to_string());
                        format!("{field}={v}")
                    }
                    Some(v)
                        if matches!(
                            *field,
                            "StdIn" | "StdOut" | "StdErr" | "WorkDir" | "Command"
                        ) =>
                    {
                        format!("{field}={}", self.norm.name(v))
                    }
                    Some(v) => format!("{field}={}", self.norm.value(v)),
                    None => format!("{field} missing"),
                });
            }
            picked.join(" ")
        } else {
            format!(
                "{} {}",
                out.status_text(),
                self.norm.text(out.stderr.trim_end())
            )
        };
        self.note(key, value);
        Ok(())
    }

    /// Records `sacct -j ID -n -P -o JobID,State,ExitCode` once accounting has `rows` rows with
    /// a final job state. Both sides skip it, loudly, when the real Slurm has no accounting.
    pub fn record_sacct(&mut self, key: &str, id: u64, rows: usize) -> CaseResult {
        self.record_sacct_with(key, id, rows, |line| line.to_string())
    }

    /// [`Side::record_sacct`] with each line rewritten by `neutral` first: for a field that
    /// real Slurm sets one way or another by a race (`slurm-observed.md` 19).
    pub fn record_sacct_with(
        &mut self,
        key: &str,
        id: u64,
        rows: usize,
        neutral: impl Fn(&str) -> String,
    ) -> CaseResult {
        if !sacct_comparable(&format!("sacct for `{key}`"))? {
            self.note(key, "(not compared: real Slurm has no accounting)");
            return Ok(());
        }
        let id = id.to_string();
        let argv = ["sacct", "-j", &id, "-n", "-P", "-o", "JobID,State,ExitCode"];
        let out = self.env.run_until(&argv, SACCT_DEADLINE, |out| {
            let lines: Vec<&str> = out.stdout.lines().collect();
            lines.len() >= rows
                && lines.iter().all(|l| {
                    !l.contains("|RUNNING|")
                        && !l.contains("|PENDING|")
                        && !l.contains("|COMPLETING|")
                })
        })?;
        let mut out = out;
        out.stdout = out
            .stdout
            .lines()
            .map(|line| format!("{}\n", neutral(line)))
            .collect();
        self.record(key, &argv, &out);
        Ok(())
    }

    /// Records a file of the working directory, normalised (or that it is missing). Lines that
    /// `srun` inside the job printed or not by timing are left out ([`not_comparable`]).
    pub fn record_file(&mut self, key: &str, relative: &str) {
        let value = match self.env.read_file(relative) {
            Some(text) => {
                let comparable: String = text
                    .split_inclusive('\n')
                    .filter(|line| {
                        !not_comparable("srun", line.trim_end(), self.queueing_on_purpose)
                    })
                    .collect();
                self.norm.text(&comparable)
            }
            None => "(no such file)".to_string(),
        };
        self.note(key, value);
    }

    /// Records the normalised names of all files below the working directory.
    pub fn record_files(&mut self, key: &str) {
        let names: Vec<String> = self
            .env
            .list_files()
            .iter()
            .map(|n| self.norm.name(n))
            .collect();
        self.note(key, names.join("\n"));
    }

    /// Fills the node so that a `-c 1 --mem 200` job cannot start: one CPU and 7900 MB, which
    /// together with the background time-limit case (1 CPU, 100 MB) or alone leaves no room.
    pub fn fill_node(&mut self) -> Result<u64, CaseError> {
        self.queueing_on_purpose = true;
        let id = self.submit(
            "filler",
            &[
                "sbatch",
                "-J",
                "filler",
                "-c",
                "1",
                "--mem",
                "7900",
                "-o",
                "/dev/null",
                "--wrap",
                "exec sleep 600",
            ],
        )?;
        self.wait_for_state(id, &["RUNNING"])?;
        Ok(id)
    }

    /// Cancels a job the case no longer needs and waits until it has left the node (a
    /// cancelled job holds its CPUs and memory while it is `COMPLETING`).
    pub fn cancel_quietly(&self, id: u64) {
        let _ = self.env.run(&["scancel", &id.to_string()]);
        let _ = self.wait_until_finished(id);
    }

    /// Waits until the only jobs on the cluster are this process's background jobs, so that
    /// a case sees the node as its expectations assume (jobs left by another suite or by a
    /// person would otherwise change pending reasons and "queued" messages).
    pub fn wait_for_quiet_node(&mut self) {
        let mut foreign = Vec::new();
        let quiet = poll_until(QUIET_NODE_DEADLINE, || {
            let ours = BACKGROUND_JOBS
                .lock()
                .map(|j| j.clone())
                .unwrap_or_default();
            foreign = self
                .env
                .run(&["squeue", "-h", "-o", "%i"])
                .map(|o| {
                    o.stdout
                        .split_whitespace()
                        .filter_map(|id| id.parse::<u64>().ok())
                        .filter(|id| !ours.contains(id))
                        .collect()
                })
                .unwrap_or_default();
            foreign.is_empty()
        });
        if !quiet {
            loud(&format!(
                "the real Slurm still runs jobs this suite did not start ({foreign:?}); the case goes on, its comparison may fail"
            ));
        }
    }

    /// Cancels every job this case has seen and waits until they are gone, so the next case
    /// finds the node as free as this one did.
    pub fn drain(&self) {
        let ids = self.norm.ids();
        if ids.is_empty() {
            return;
        }
        let list: Vec<String> = ids.iter().map(u64::to_string).collect();
        let mut argv = vec!["scancel"];
        argv.extend(list.iter().map(String::as_str));
        let _ = self.env.run(&argv);
        for id in ids {
            let _ = self.wait_until_finished(id);
        }
    }
}

/// One row of squeue's default format (`JOBID PARTITION NAME USER ST TIME NODES NODELIST`),
/// columns joined by one blank, the id as its placeholder (an array task's, `12_3`, as the
/// array's) and the run time as `<RUNTIME>`.
pub fn default_squeue_row(norm: &mut Normalizer, line: &str) -> String {
    line.split_whitespace()
        .enumerate()
        .map(|(column, word)| match column {
            0 => word
                .parse()
                .map(|id| norm.learn(id))
                .unwrap_or_else(|_| norm.text(word)),
            5 => "<RUNTIME>".to_string(),
            _ => norm.value(word),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The shape of `scontrol show job` output without its values: per line, the indentation and
/// the keys in order (values such as times and priorities differ from run to run).
pub fn scontrol_layout(out: &RunOutput) -> String {
    let mut layout: Vec<String> = out
        .stdout
        .lines()
        .map(|line| {
            let indent = line.len() - line.trim_start().len();
            let keys: Vec<&str> = line
                .split_whitespace()
                .filter_map(|token| token.split_once('=').map(|(key, _)| key))
                .collect();
            format!("{}{}", " ".repeat(indent), keys.join(" "))
        })
        .collect();
    layout.push(format!("[{}]", out.status_text()));
    layout.join("\n")
}

pub fn with_newline(s: &str) -> String {
    if s.is_empty() || s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

pub type Case = fn(&mut Side) -> CaseResult;

/// Runs one side of a case into an observation.
/// On the real Slurm the case holds `REAL_NODE` from start to end (or until `release_node`).
pub fn observe(env: SlurmEnv, case: Case) -> (Observation, Option<String>) {
    let mut side = Side::new(env);
    if side.is_real() {
        side.node = Some(NodeLock::acquire());
        side.wait_for_quiet_node();
    }
    let result = case(&mut side);
    if side.node.is_some() {
        side.drain();
    }
    side.release_node();
    let error = match result {
        Ok(()) => None,
        Err(CaseError(message)) => {
            let message = side.norm.text(&message);
            side.obs.record("case stopped early", message.clone());
            Some(message)
        }
    };
    (side.obs, error)
}

/// Lines of `program`'s standard error that real Slurm prints or not depending on timing or on
/// what else the shared real cluster is doing, not on the command: left out on both sides.
pub fn not_comparable(program: &str, line: &str, queueing_on_purpose: bool) -> bool {
    let job_line = |rest: &str| {
        line.strip_prefix(&format!("{program}: job "))
            .and_then(|l| l.split_once(' '))
            .is_some_and(|(id, tail)| id.bytes().all(|b| b.is_ascii_digit()) && tail == rest)
    };
    match program {
        "srun" | "salloc" => {
            // Printed only when the job could not start at once (srun.c / salloc.c): in a
            // case that does not fill the node on purpose, that is a job of the case before
            // still completing on the real node.
            (!queueing_on_purpose
                && (job_line("queued and waiting for resources")
                    || job_line("has been allocated resources")))
                // A step that waited for the resources of the step before it, still being
                // released (`step_ctx` retry loop, src/api/step_ctx.c): load-dependent.
                || (!queueing_on_purpose
                    && ((line.starts_with("srun: Job ")
                        && line.contains(" step creation temporarily disabled, retrying"))
                        || line.starts_with("srun: Step created for job ")))
                // srun's I/O thread racing a step that is force-terminated before its I/O
                // connection is up (src/api/step_io.c); seen only on a loaded node.
                || line == "srun: error: IO: Hey, you told me node 0 was down!"
                // Real salloc sometimes, not always, also prints this after relinquishing:
                // it races with the controller's job-complete message.
                || (program == "salloc"
                    && line.starts_with("salloc: Job allocation ")
                    && line.ends_with(" has been revoked."))
        }
        _ => false,
    }
}

/// Runs `case` on the real Slurm and on a fresh simulated cluster, and compares.
pub fn differential_result(name: &str, fake: FakeCluster, case: Case) -> Result<(), String> {
    let real_env = match SlurmEnv::real_from_env() {
        Ok(Some(env)) => env,
        Ok(None) | Err(_) => {
            let why = "no real Slurm answers at $SLURM_CONF (start one with `ci/slurm up` and \
                       `eval \"$(ci/slurm env)\"`)";
            if real_required() {
                return Err(format!(
                    "case `{name}`: {why}, but CI=true or {REAL_SLURM_VAR}=1 requires the differential suite"
                ));
            }
            loud(&format!("DIFFERENTIAL CASE `{name}` DID NOT RUN: {why}"));
            return Ok(());
        }
    };
    let real = std::thread::spawn(move || observe(real_env, case));
    let (fake_obs, _) = match SlurmEnv::fake(&fake) {
        Ok(env) => observe(env, case),
        Err(e) => {
            let mut obs = Observation::new();
            obs.record("simulated cluster setup", e.to_string());
            (obs, None)
        }
    };
    let (real_obs, real_error) = match real.join() {
        Ok(result) => result,
        Err(_) => return Err(format!("case `{name}`: the real side panicked")),
    };
    if let Some(error) = real_error {
        return Err(format!(
            "case `{name}` failed on the REAL Slurm (a suite or machine problem, not the fake's):\n{error}\n\nreal observation so far:\n{}",
            real_obs.render()
        ));
    }
    if std::env::var_os("BATCHCI_DIFF_VERBOSE").is_some() {
        eprintln!(
            "case `{name}`\n(real observation)\n{}\n(simulated observation)\n{}",
            real_obs.render(),
            fake_obs.render()
        );
    }
    compare(name, &real_obs, &fake_obs).map_err(|report| {
        format!(
            "{report}\n(full real observation)\n{}\n(full simulated observation)\n{}",
            real_obs.render(),
            fake_obs.render()
        )
    })
}
