//! Differential suite: the same Slurm cases run on the real Slurm 22.05 that `ci/slurm up`
//! starts and on a simulated cluster (`mock-cluster`) configured like it; their normalised
//! outputs, exit codes, output files and job states must be equal.
//!
//! Every case reads as: set up jobs, act (cancel, close stdin, wait), observe. The observations
//! are normalised (job ids, host names, timestamps, the working directory) and compared; a
//! mismatch fails the test with a diff, `-` real Slurm, `+` simulated cluster.
//!
//! The real side runs only when a real Slurm answers at `$SLURM_CONF`. When it does not, each
//! case says so loudly on stderr and does nothing, unless `CI=true` or `BATCHCI_REAL_SLURM=1`,
//! where it fails. The facts these cases pin are listed in `docs/slurm-observed.md`.
//!
//! The real cluster has one node with 2 CPUs and 8000 MB, and a job without `--mem` takes all of
//! the node's memory. Cases therefore take the node one at a time (`REAL_NODE`) and ask for
//! `-c 1 --mem 100` or similar, so that the one case that runs for minutes (the time limit, started
//! in the background by the first case) can hold one CPU and 100 MB while the others run.

use std::sync::{LazyLock, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use conformance::normalize::{Normalizer, submitted_job_id};
use conformance::observation::{Observation, compare};
use conformance::poll::poll_until;
use conformance::slurm_env::{
    EnvError, FakeCluster, REAL_SLURM_VAR, RunOptions, RunOutput, Running, SlurmEnv,
};

/// How long a job may take to reach a state it is expected to reach soon.
const STATE_DEADLINE: Duration = Duration::from_secs(60);
/// How long accounting may take to record a finished job.
const SACCT_DEADLINE: Duration = Duration::from_secs(30);

/// One case at a time on the real node (see the module docs).
static REAL_NODE: Mutex<()> = Mutex::new(());

/// Real jobs of this test process that may run while other cases hold `REAL_NODE` (the
/// background time-limit job).
static BACKGROUND_JOBS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// How long a case waits for jobs it did not start to leave the real node.
const QUIET_NODE_DEADLINE: Duration = Duration::from_secs(180);

type CaseResult = Result<(), CaseError>;

/// Why a case could not go on. On the fake side this becomes part of the observation, so the
/// comparison shows where the simulated cluster went wrong.
#[derive(Debug)]
struct CaseError(String);

impl From<EnvError> for CaseError {
    fn from(e: EnvError) -> Self {
        CaseError(e.to_string())
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T, CaseError> {
    Err(CaseError(message.into()))
}

/// Writes straight to stderr, past the test harness's output capture, so that a case that did
/// not run is seen also when it "passes".
fn loud(message: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "\n!!! {message}\n");
}

fn real_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var(REAL_SLURM_VAR).is_ok_and(|v| v == "1")
}

/// Whether real Slurm has accounting (slurmdbd); computed once.
fn real_accounting() -> bool {
    static ACCOUNTING: OnceLock<bool> = OnceLock::new();
    *ACCOUNTING.get_or_init(|| match SlurmEnv::real_from_env() {
        Ok(Some(env)) => env
            .run(&["sacct", "-n", "-X", "-j", "1"])
            .map(|out| !out.stderr.contains("accounting storage is disabled"))
            .unwrap_or(false),
        _ => false,
    })
}

/// One side of a case: a Slurm environment, the normaliser and what was observed so far.
struct Side {
    env: SlurmEnv,
    norm: Normalizer,
    obs: Observation,
    node: Option<NodeLock>,
    /// Whether the case made jobs queue on purpose ([`Side::fill_node`]): then the lines that
    /// say so are part of what is compared.
    queueing_on_purpose: bool,
}

/// The real node, held by one case at a time: within this process (`REAL_NODE`) and across
/// processes (an advisory lock file, for two runs of this suite on one machine's Slurm).
struct NodeLock {
    _file: Option<nix::fcntl::Flock<std::fs::File>>,
    _guard: MutexGuard<'static, ()>,
}

impl NodeLock {
    fn acquire() -> NodeLock {
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
    fn new(env: SlurmEnv) -> Self {
        let norm = Normalizer::for_this_machine(env.cwd());
        Side {
            env,
            norm,
            obs: Observation::new(),
            node: None,
            queueing_on_purpose: false,
        }
    }

    fn is_real(&self) -> bool {
        self.env.kind() == "real"
    }

    /// Lets other cases use the real node (for a case that only waits from now on).
    fn release_node(&mut self) {
        self.node = None;
    }

    /// The command line for the record: job ids given to `-j`, `show job` and `scancel` become
    /// placeholders; other arguments stay as they are (a `1` in `-c 1` is not a job id).
    fn argv_text(&mut self, argv: &[&str]) -> String {
        let program = argv.first().copied().unwrap_or("");
        let mut words = Vec::new();
        for (i, arg) in argv.iter().enumerate() {
            let prev = if i > 0 { argv[i - 1] } else { "" };
            let takes_id = prev == "-j"
                || prev == "job"
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
                _ => ("", *arg),
            };
            let takes_id = takes_id || !prefix.is_empty();
            let word = if takes_id {
                arg.split(',')
                    .map(|part| {
                        part.parse()
                            .map(|id| self.norm.learn(id))
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
    fn record(&mut self, key: &str, argv: &[&str], out: &RunOutput) {
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

    fn note(&mut self, key: &str, value: impl Into<String>) {
        self.obs.record(key, value);
    }

    fn run(&mut self, key: &str, argv: &[&str]) -> Result<RunOutput, CaseError> {
        self.run_with(key, argv, &RunOptions::default())
    }

    fn run_with(
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
    fn submit(&mut self, key: &str, argv: &[&str]) -> Result<u64, CaseError> {
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
    fn spawn_sbatch_wait(&mut self, argv: &[&str]) -> Result<(Running, u64), CaseError> {
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
    fn finish(
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
    fn state(&self, id: u64) -> Result<String, CaseError> {
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

    /// Polls until the job is in one of `states`; a timeout is a case error.
    fn wait_for_state(&self, id: u64, states: &[&str]) -> CaseResult {
        let mut last = String::new();
        let reached = poll_until(STATE_DEADLINE, || {
            last = self.state(id).unwrap_or_default();
            states.contains(&last.as_str())
        });
        if reached {
            Ok(())
        } else {
            fail(format!(
                "job {id} did not reach {states:?} within {STATE_DEADLINE:?}; last state {last:?}"
            ))
        }
    }

    /// Polls until the job has left the active states (it may still be `COMPLETING` for a
    /// moment after the command that waited for it returned).
    fn wait_until_finished(&self, id: u64) -> CaseResult {
        let mut last = String::new();
        let finished = poll_until(STATE_DEADLINE, || {
            last = self.state(id).unwrap_or_default();
            !matches!(
                last.as_str(),
                "PENDING" | "CONFIGURING" | "RUNNING" | "COMPLETING" | "SUSPENDED"
            )
        });
        if finished {
            Ok(())
        } else {
            fail(format!(
                "job {id} did not finish within {STATE_DEADLINE:?}; last state {last:?}"
            ))
        }
    }

    /// Polls until the pending job has a reason other than `None` (the scheduler looked at it).
    fn wait_for_pending_reason(&self, id: u64) -> CaseResult {
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
    fn wait_for_reason(&self, id: u64, reason: &str) -> CaseResult {
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
    fn record_state(&mut self, key: &str, id: u64) -> CaseResult {
        let id = id.to_string();
        self.run(
            key,
            &["squeue", "-h", "-t", "all", "-j", &id, "-o", "%T|%r"],
        )?;
        Ok(())
    }

    /// Waits until the job has finished, then records its state and reason.
    fn record_final_state(&mut self, key: &str, id: u64) -> CaseResult {
        self.wait_until_finished(id)?;
        self.record_state(key, id)
    }

    /// Records the chosen `scontrol -o show job ID` fields.
    fn record_scontrol(&mut self, key: &str, id: u64, fields: &[&str]) -> CaseResult {
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
                    Some(v) if *field == "JobId" => {
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
    fn record_sacct(&mut self, key: &str, id: u64, rows: usize) -> CaseResult {
        if !real_accounting() {
            if real_required() {
                return fail(
                    "the real Slurm has no accounting (slurmdbd), but CI needs sacct compared; \
                     start it with ci/slurm up",
                );
            }
            loud(&format!(
                "sacct for `{key}` NOT COMPARED: the real Slurm runs without accounting (ci/slurm up enables it)"
            ));
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
        self.record(key, &argv, &out);
        Ok(())
    }

    /// Records a file of the working directory, normalised (or that it is missing).
    fn record_file(&mut self, key: &str, relative: &str) {
        let value = match self.env.read_file(relative) {
            Some(text) => self.norm.text(&text),
            None => "(no such file)".to_string(),
        };
        self.note(key, value);
    }

    /// Records the normalised names of all files below the working directory.
    fn record_files(&mut self, key: &str) {
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
    fn fill_node(&mut self) -> Result<u64, CaseError> {
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
    fn cancel_quietly(&self, id: u64) {
        let _ = self.env.run(&["scancel", &id.to_string()]);
        let _ = self.wait_until_finished(id);
    }

    /// Waits until the only jobs on the cluster are this process's background jobs, so that
    /// a case sees the node as its expectations assume (jobs left by another suite or by a
    /// person would otherwise change pending reasons and "queued" messages).
    fn wait_for_quiet_node(&mut self) {
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
    fn drain(&self) {
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
/// columns joined by one blank, the id as its placeholder and the run time as `<RUNTIME>`.
fn default_squeue_row(norm: &mut Normalizer, line: &str) -> String {
    line.split_whitespace()
        .enumerate()
        .map(|(column, word)| match column {
            0 => word
                .parse()
                .map(|id| norm.learn(id))
                .unwrap_or_else(|_| word.to_string()),
            5 => "<RUNTIME>".to_string(),
            _ => norm.value(word),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The shape of `scontrol show job` output without its values: per line, the indentation and
/// the keys in order (values such as times and priorities differ from run to run).
fn scontrol_layout(out: &RunOutput) -> String {
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

fn with_newline(s: &str) -> String {
    if s.is_empty() || s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

type Case = fn(&mut Side) -> CaseResult;

/// Runs one side of a case into an observation.
/// On the real Slurm the case holds `REAL_NODE` from start to end (or until `release_node`).
fn observe(env: SlurmEnv, case: Case) -> (Observation, Option<String>) {
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
fn not_comparable(program: &str, line: &str, queueing_on_purpose: bool) -> bool {
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
fn differential_result(name: &str, fake: FakeCluster, case: Case) -> Result<(), String> {
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

fn differential(name: &str, fake: FakeCluster, case: Case) {
    ensure_walltime_started();
    if let Err(report) = differential_result(name, fake, case) {
        panic!("{report}");
    }
}

// ---------------------------------------------------------------------------------------------
// The time-limit case takes one to two minutes on the real Slurm (its limit check runs every
// 30 s or so and `sbatch --wait` polls at growing intervals). The first case to run starts it in
// the background (when this run selects it); `walltime_kills_the_job_and_sbatch_wait_returns_1`
// collects the result.

/// The background run of the time-limit case: its comparison result, once joined.
type BackgroundCase = JoinHandle<Result<(), String>>;

static WALLTIME: LazyLock<Mutex<Option<BackgroundCase>>> = LazyLock::new(|| Mutex::new(None));
static WALLTIME_STARTED: OnceLock<()> = OnceLock::new();

const WALLTIME_TEST: &str = "walltime_kills_the_job_and_sbatch_wait_returns_1";

/// Whether this run of the test binary selects the time-limit test (libtest's positional name
/// filters, `--exact` and `--skip`), so that a run of a few chosen cases does not leave a real
/// job and a simulated cluster behind when it exits.
fn walltime_selected() -> bool {
    const TAKES_VALUE: [&str; 6] = [
        "--test-threads",
        "--color",
        "--format",
        "--logfile",
        "--shuffle-seed",
        "-Z",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exact = args.iter().any(|a| a == "--exact");
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--skip" {
            if let Some(value) = args.get(i + 1) {
                skips.push(value.clone());
            }
            i += 2;
            continue;
        }
        if TAKES_VALUE.contains(&arg.as_str()) {
            i += 2;
            continue;
        }
        if !arg.starts_with('-') {
            filters.push(arg.clone());
        }
        i += 1;
    }
    let matches = |f: &String| {
        if exact {
            f == WALLTIME_TEST
        } else {
            WALLTIME_TEST.contains(f.as_str())
        }
    };
    (filters.is_empty() || filters.iter().any(matches)) && !skips.iter().any(matches)
}

fn ensure_walltime_started() {
    if !walltime_selected() {
        return;
    }
    WALLTIME_STARTED.get_or_init(|| {
        let handle = std::thread::spawn(|| {
            differential_result(
                "walltime",
                FakeCluster::mirroring_ci_slurm().with_time_scale(20.0),
                case_walltime,
            )
        });
        if let Ok(mut slot) = WALLTIME.lock() {
            *slot = Some(handle);
        }
    });
}

fn case_walltime(s: &mut Side) -> CaseResult {
    let argv = [
        "sbatch",
        "--wait",
        "-t",
        "1",
        "-c",
        "1",
        "--mem",
        "100",
        "-J",
        "walltime",
        "-o",
        "wall-%j.out",
        "--wrap",
        "echo started; exec sleep 600",
    ];
    let (running, id) = s.spawn_sbatch_wait(&argv)?;
    if s.is_real()
        && let Ok(mut jobs) = BACKGROUND_JOBS.lock()
    {
        jobs.push(id);
    }
    s.wait_for_state(id, &["RUNNING"])?;
    // From here on the case only waits; the node is free for the other cases.
    s.release_node();
    s.finish("sbatch --wait -t 1", &argv, running)?;
    s.record_file("output file", &format!("wall-{id}.out"));
    s.record_final_state("squeue -t all", id)?;
    s.record_scontrol(
        "scontrol",
        id,
        &["JobState", "Reason", "ExitCode", "TimeLimit"],
    )?;
    s.record_sacct("sacct", id, 2)?;
    Ok(())
}

#[test]
fn walltime_kills_the_job_and_sbatch_wait_returns_1() {
    ensure_walltime_started();
    let handle = WALLTIME.lock().ok().and_then(|mut slot| slot.take());
    let Some(handle) = handle else {
        panic!("the walltime case was not started");
    };
    match handle.join() {
        Ok(Ok(())) => {}
        Ok(Err(report)) => panic!("{report}"),
        Err(_) => panic!("the walltime case panicked"),
    }
}

// ---------------------------------------------------------------------------------------------
// Exit status passthrough.

#[test]
fn sbatch_wait_passes_exit_status_through() {
    differential(
        "sbatch_wait_exit_status",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let scripts = [
                "exit 0",
                "echo out-line; echo err-line >&2; exit 3",
                "exit 255",
                "exit 256",
                "exit 300",
                "kill -TERM $$",
                "kill -KILL $$",
            ];
            let mut started = Vec::new();
            for (n, script) in scripts.iter().enumerate() {
                let output = format!("exit-{n}-%j.out");
                let argv: Vec<String> = [
                    "sbatch", "--wait", "-c", "1", "--mem", "100", "-o", &output, "--wrap", script,
                ]
                .iter()
                .map(|a| a.to_string())
                .collect();
                let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
                let running = s.env.spawn(&argv_ref)?;
                started.push((argv, running));
            }
            let mut ids = Vec::new();
            for (n, (argv, running)) in started.into_iter().enumerate() {
                let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
                let out = s.finish(&format!("script `{}`", scripts[n]), &argv_ref, running)?;
                ids.push((n, submitted_job_id(&out.stdout)));
            }
            for (n, id) in ids {
                let Some(id) = id else { continue };
                s.record_file(
                    &format!("output of `{}`", scripts[n]),
                    &format!("exit-{n}-{id}.out"),
                );
                s.record_scontrol(
                    &format!("scontrol of `{}`", scripts[n]),
                    id,
                    &["JobState", "Reason", "ExitCode"],
                )?;
                s.record_sacct(&format!("sacct of `{}`", scripts[n]), id, 2)?;
            }
            Ok(())
        },
    );
}

/// When `sbatch --wait` returns: real sbatch is not told of the job's end, it looks at the job
/// after sleeping 2 s, then 8 s, then 32 s at a time (Slurm 22.05 `src/sbatch/sbatch.c`
/// `_job_wait()`: the sleep grows fourfold while below `MinJobAge / 2` and
/// `MAX_WAIT_SLEEP_TIME` 32; `MinJobAge=300` here), so it returns 2, 10, 42, ... s after the
/// submission. A job that ends at once is seen at 2 s; `sleep 3` is still running at 2 s and
/// seen at 10 s. Both sides measure the wall time of the command.
#[test]
fn sbatch_wait_returns_at_its_polling_times() {
    differential(
        "sbatch_wait_polling_times",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            // The jobs run one after the other: the background time-limit case may hold the
            // node's other CPU, and a job that pends would be seen later.
            for (script, from, to) in [("true", 2.0, 4.0), ("sleep 3", 10.0, 12.0)] {
                // The job before may still hold its CPU while it completes (`sbatch --wait`
                // returns once the job's state is final, before its epilog is done); a job
                // submitted then pends until the controller's next scheduling pass.
                if s.is_real() {
                    s.wait_for_quiet_node();
                }
                let argv = [
                    "sbatch",
                    "--wait",
                    "-c",
                    "1",
                    "--mem",
                    "100",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    script,
                ];
                let started = std::time::Instant::now();
                s.run(&format!("sbatch --wait `{script}`"), &argv)?;
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "{}: `sbatch --wait --wrap '{script}'` returned after {secs:.2} s",
                    s.env.kind()
                );
                let when = if (from..to).contains(&secs) {
                    format!("within [{from} s, {to} s) of the submission")
                } else {
                    format!("after {secs:.2} s, outside [{from} s, {to} s)")
                };
                s.note(&format!("`{script}` returned"), when);
            }
            Ok(())
        },
    );
}

#[test]
fn srun_passes_exit_status_through() {
    differential("srun_exit_status", FakeCluster::mirroring_ci_slurm(), |s| {
        s.run(
            "srun hostname",
            &["srun", "-c", "1", "--mem", "100", "hostname"],
        )?;
        s.run(
            "srun exit 7",
            &[
                "srun",
                "-c",
                "1",
                "--mem",
                "100",
                "bash",
                "-c",
                "echo before; exit 7",
            ],
        )?;
        s.run(
            "srun exit 300",
            &["srun", "-c", "1", "--mem", "100", "bash", "-c", "exit 300"],
        )?;
        s.run(
            "srun kill -TERM",
            &[
                "srun",
                "-c",
                "1",
                "--mem",
                "100",
                "bash",
                "-c",
                "kill -TERM $$",
            ],
        )?;
        s.run(
            "salloc true",
            &["salloc", "-c", "1", "--mem", "100", "true"],
        )?;
        s.run(
            "salloc exit 5",
            &["salloc", "-c", "1", "--mem", "100", "bash", "-c", "exit 5"],
        )?;
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Cancellation.

#[test]
fn scancel_of_a_running_job() {
    differential("scancel_running", FakeCluster::mirroring_ci_slurm(), |s| {
        let argv = [
            "sbatch",
            "--wait",
            "-c",
            "1",
            "--mem",
            "100",
            "-J",
            "to-cancel",
            "-o",
            "cancel-%j.out",
            "--wrap",
            "echo started; exec sleep 600",
        ];
        let (running, id) = s.spawn_sbatch_wait(&argv)?;
        s.wait_for_state(id, &["RUNNING"])?;
        let file = format!("cancel-{id}.out");
        poll_until(STATE_DEADLINE, || {
            s.env
                .read_file(&file)
                .is_some_and(|t| t.contains("started"))
        });
        s.run("scancel", &["scancel", &id.to_string()])?;
        s.finish("sbatch --wait", &argv, running)?;
        s.record_file("output file", &file);
        s.run(
            "squeue -h -j (finished)",
            &["squeue", "-h", "-j", &id.to_string()],
        )?;
        s.record_final_state("squeue -t all", id)?;
        s.record_scontrol("scontrol", id, &["JobState", "Reason", "ExitCode"])?;
        s.record_sacct("sacct", id, 2)?;
        if real_accounting() {
            // What an executor asks once `sbatch --wait` has returned.
            let id_text = id.to_string();
            s.run(
                "sacct -X --format",
                &[
                    "sacct",
                    "-X",
                    "-j",
                    &id_text,
                    "-n",
                    "-P",
                    "--format",
                    "State,ExitCode",
                ],
            )?;
            // Right after a job ends, real slurmdbd may still hold a provisional job row
            // (JobName `allocation`, no partition, ReqMem `16?`): wait for the full record.
            let argv = [
                "sacct",
                "-j",
                &id_text,
                "-n",
                "-P",
                "-o",
                "JobID,JobName,Partition,Account,AllocCPUS,ReqMem,State,ExitCode",
            ];
            let out = s.env.run_until(&argv, SACCT_DEADLINE, |out| {
                out.stdout
                    .lines()
                    .next()
                    .is_some_and(|row| row.split('|').nth(2).is_some_and(|p| !p.is_empty()))
            })?;
            s.record("sacct more fields", &argv, &out);
        }
        Ok(())
    });
}

#[test]
fn scancel_of_a_pending_job() {
    differential("scancel_pending", FakeCluster::mirroring_ci_slurm(), |s| {
        let filler = s.fill_node()?;
        let argv = [
            "sbatch",
            "--wait",
            "-c",
            "1",
            "--mem",
            "200",
            "-J",
            "pending",
            "-o",
            "pending-%j.out",
            "--wrap",
            "echo should-not-run",
        ];
        let (running, id) = s.spawn_sbatch_wait(&argv)?;
        s.wait_for_pending_reason(id)?;
        s.record_state("squeue before scancel", id)?;
        s.run("scancel", &["scancel", &id.to_string()])?;
        let result = s.finish("sbatch --wait", &argv, running);
        s.cancel_quietly(filler);
        result?;
        s.record_files("files");
        s.record_final_state("squeue -t all", id)?;
        s.record_scontrol("scontrol", id, &["JobState", "Reason", "ExitCode"])?;
        s.record_sacct("sacct", id, 1)?;
        Ok(())
    });
}

#[test]
fn srun_cancelled_while_running_and_while_pending() {
    differential("srun_cancel", FakeCluster::mirroring_ci_slurm(), |s| {
        let argv = [
            "srun",
            "-c",
            "1",
            "--mem",
            "100",
            "-J",
            "srun-cancel",
            "bash",
            "-c",
            "echo started; exec sleep 600",
        ];
        let running = s.env.spawn(&argv)?;
        poll_until(STATE_DEADLINE, || {
            running.stdout_so_far().contains("started")
        });
        let id = job_of_name(s, "srun-cancel")?;
        s.run("scancel running srun", &["scancel", &id.to_string()])?;
        // srun's own message and the one slurmstepd forwards race each other on the real
        // Slurm: compare the lines, not their order.
        let mut out = running.wait()?;
        let mut lines: Vec<&str> = out.stderr.lines().collect();
        lines.sort_unstable();
        out.stderr = lines.join("\n");
        s.record("srun (cancelled while running; stderr sorted)", &argv, &out);
        s.record_final_state("squeue -t all (running srun)", id)?;

        let filler = s.fill_node()?;
        let argv = [
            "srun",
            "-c",
            "1",
            "--mem",
            "200",
            "-J",
            "srun-pending",
            "true",
        ];
        let running = s.env.spawn(&argv)?;
        poll_until(STATE_DEADLINE, || {
            running.stderr_so_far().contains("queued and waiting")
        });
        let id = job_of_name(s, "srun-pending")?;
        s.run("scancel pending srun", &["scancel", &id.to_string()])?;
        let result = s.finish("srun (cancelled while pending)", &argv, running);
        s.cancel_quietly(filler);
        result?;
        s.record_final_state("squeue -t all (pending srun)", id)?;
        Ok(())
    });
}

/// The id of this case's only pending or running job named `name`.
fn job_of_name(s: &mut Side, name: &str) -> Result<u64, CaseError> {
    let mut id = None;
    poll_until(STATE_DEADLINE, || {
        id = s
            .env
            .run(&["squeue", "-h", "-n", name, "-o", "%i"])
            .ok()
            .and_then(|o| o.stdout.trim().parse().ok());
        id.is_some()
    });
    match id {
        Some(id) => {
            s.norm.learn(id);
            Ok(id)
        }
        None => fail(format!("no job named {name} appeared in squeue")),
    }
}

// ---------------------------------------------------------------------------------------------
// Refused submissions.

#[test]
fn unknown_options_are_refused() {
    differential("unknown_option", FakeCluster::mirroring_ci_slurm(), |s| {
        s.run("sbatch --bogus", &["sbatch", "--bogus", "--wrap", "true"])?;
        s.run("srun --bogus", &["srun", "--bogus", "true"])?;
        s.run("sbatch -t abc", &["sbatch", "-t", "abc", "--wrap", "true"])?;
        s.run("sbatch nonexistent.sh", &["sbatch", "nonexistent.sh"])?;
        s.run_with(
            "sbatch without #!",
            &["sbatch"],
            &RunOptions {
                stdin: Some(b"echo no-shebang\n".to_vec()),
                ..RunOptions::default()
            },
        )?;
        s.run_with(
            "bad #SBATCH directive",
            &["sbatch"],
            &RunOptions {
                stdin: Some(b"#!/bin/bash\n#SBATCH --bogus-directive\necho x\n".to_vec()),
                ..RunOptions::default()
            },
        )?;
        s.record_files("files");
        Ok(())
    });
}

#[test]
fn unknown_partition_is_refused() {
    differential(
        "unknown_partition",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            s.run(
                "sbatch -p nope",
                &["sbatch", "-p", "nope", "--wrap", "true"],
            )?;
            s.run("srun -p nope", &["srun", "-p", "nope", "true"])?;
            s.run("salloc -p nope", &["salloc", "-p", "nope", "true"])?;
            Ok(())
        },
    );
}

#[test]
fn unsatisfiable_memory_is_refused() {
    differential(
        "unsatisfiable_memory",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            s.run(
                "sbatch --mem 100000",
                &["sbatch", "--mem", "100000", "--wrap", "true"],
            )?;
            s.run(
                "sbatch --mem 9000",
                &["sbatch", "--mem", "9000", "--wrap", "true"],
            )?;
            s.run("srun --mem 100000", &["srun", "--mem", "100000", "true"])?;
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Queue.

#[test]
fn pending_reasons() {
    differential("pending_reasons", FakeCluster::mirroring_ci_slurm(), |s| {
        let filler = s.fill_node()?;
        let mut ids = vec![filler];
        let waiters: [(&str, &[&str]); 4] = [
            ("first waiter", &["-c", "1", "--mem", "200"]),
            ("second waiter", &["-c", "1", "--mem", "200"]),
            ("more cpus than the node", &["-c", "4", "--mem", "200"]),
            (
                "above the partition time limit",
                &["-p", "gitlab-ci", "-t", "120", "-c", "1", "--mem", "200"],
            ),
        ];
        let mut outcome = Ok(());
        for (key, opts) in waiters {
            let mut argv = vec!["sbatch", "-o", "/dev/null"];
            argv.extend_from_slice(opts);
            argv.extend_from_slice(&["--wrap", "true"]);
            match s.submit(key, &argv) {
                Ok(id) => ids.push(id),
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        if outcome.is_ok() {
            for id in &ids[1..] {
                if let Err(e) = s.wait_for_pending_reason(*id) {
                    outcome = Err(e);
                    break;
                }
            }
        }
        // Each waiter's settled reason (the first pass may show another one, e.g. Priority
        // before Resources, PartitionConfig before PartitionTimeLimit).
        let settled = [
            "Resources",
            "Priority",
            "PartitionConfig",
            "PartitionTimeLimit",
        ];
        for (id, reason) in ids[1..].iter().zip(settled) {
            if outcome.is_ok() {
                outcome = s.wait_for_reason(*id, reason);
            }
        }
        if outcome.is_ok() {
            let list: Vec<String> = ids.iter().map(u64::to_string).collect();
            let list = list.join(",");
            outcome = s
                .run(
                    "squeue %i|%T|%r",
                    &["squeue", "-h", "-j", &list, "-o", "%i|%T|%r", "-S", "i"],
                )
                .map(|_| ());
            if outcome.is_ok() {
                outcome = s.record_scontrol(
                    "scontrol of the second waiter",
                    ids[2],
                    &["JobState", "Reason"],
                );
            }
        }
        for id in ids.iter().rev() {
            s.cancel_quietly(*id);
        }
        outcome
    });
}

#[test]
fn squeue_scontrol_and_scancel_on_unknown_and_finished_jobs() {
    differential(
        "unknown_and_finished_jobs",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            s.run("squeue -j 999999", &["squeue", "-j", "999999"])?;
            s.run("squeue -h -j 999999", &["squeue", "-h", "-j", "999999"])?;
            s.run("squeue -j abc", &["squeue", "-j", "abc"])?;
            s.run(
                "scontrol show job 999999",
                &["scontrol", "show", "job", "999999"],
            )?;
            s.run("scancel 999999", &["scancel", "999999"])?;
            s.run("scancel abc", &["scancel", "abc"])?;
            s.run("scancel (no id)", &["scancel"])?;
            let id = s.submit(
                "sbatch --wait",
                &[
                    "sbatch",
                    "--wait",
                    "-c",
                    "1",
                    "--mem",
                    "100",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "exit 3",
                ],
            )?;
            let id = id.to_string();
            s.run("squeue -j (finished)", &["squeue", "-j", &id])?;
            s.run("squeue -h -j (finished)", &["squeue", "-h", "-j", &id])?;
            s.run(
                "squeue -h -t all -j (finished)",
                &["squeue", "-h", "-t", "all", "-j", &id, "-o", "%i %T %r"],
            )?;
            s.run("scancel (finished)", &["scancel", &id])?;
            s.run(
                "scancel -s TERM (finished)",
                &["scancel", "-s", "TERM", &id],
            )?;
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// srun as the docker+slurm placeholder.

const PLACEHOLDER: &str = r#"echo "gitlab-runner: hostname: $(hostname)"; echo "gitlab-runner: cpuset: $(taskset -cp $$ | sed -e "s/.*: //")"; exec cat"#;

/// Keeps the placeholder's lines comparable: the cpuset becomes its number of CPUs (which CPU
/// Slurm picks depends on what else runs).
fn cpuset_as_count(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("gitlab-runner: cpuset: ") {
            Some(set) => format!("gitlab-runner: cpuset: <{} cpu(s)>", cpu_count(set)),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn cpu_count(set: &str) -> usize {
    set.split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => match (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => usize::from(part.trim().parse::<usize>().is_ok()),
        })
        .sum()
}

#[test]
fn srun_placeholder_starts_at_once_and_ends_when_stdin_closes() {
    differential("srun_placeholder", FakeCluster::mirroring_ci_slurm(), |s| {
        let argv = [
            "srun",
            "-c",
            "1",
            "--mem",
            "100",
            "-J",
            "placeholder",
            "bash",
            "-c",
            PLACEHOLDER,
        ];
        let mut running = s.env.spawn(&argv)?;
        let ready = poll_until(STATE_DEADLINE, || {
            running.stdout_so_far().contains("cpuset")
        });
        s.note("placeholder reported", ready.to_string());
        let id = job_of_name(s, "placeholder")?;
        s.record_state("squeue while it runs", id)?;
        running.write_stdin(b"line1\nline2\n")?;
        let echoed = poll_until(STATE_DEADLINE, || running.stdout_so_far().contains("line2"));
        s.note("stdin echoed while running", echoed.to_string());
        s.note(
            "still running before EOF",
            (!running.has_exited()).to_string(),
        );
        running.close_stdin();
        let out = running.wait()?;
        let mut out = out;
        out.stdout = cpuset_as_count(&out.stdout);
        s.record("srun placeholder", &argv, &out);
        s.run(
            "squeue -h -j (released)",
            &["squeue", "-h", "-j", &id.to_string()],
        )?;
        s.record_final_state("squeue -t all", id)?;
        Ok(())
    });
}

#[test]
fn srun_placeholder_waits_for_resources() {
    differential(
        "srun_placeholder_waits",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let filler = s.fill_node()?;
            let argv = [
                "srun",
                "-c",
                "1",
                "--mem",
                "200",
                "-J",
                "placeholder",
                "bash",
                "-c",
                PLACEHOLDER,
            ];
            let mut running = s.env.spawn(&argv)?;
            let queued = poll_until(STATE_DEADLINE, || {
                running
                    .stderr_so_far()
                    .contains("queued and waiting for resources")
            });
            s.note("queued message seen", queued.to_string());
            let stderr_while_waiting = s.norm.text(&running.stderr_so_far());
            s.note("stderr while waiting", stderr_while_waiting);
            let id = job_of_name(s, "placeholder")?;
            s.wait_for_pending_reason(id)?;
            s.run(
                "squeue while waiting",
                &["squeue", "-h", "-j", &id.to_string(), "-o", "%T|%r"],
            )?;
            s.run("scancel filler", &["scancel", &filler.to_string()])?;
            let ready = poll_until(STATE_DEADLINE, || {
                running.stdout_so_far().contains("cpuset")
            });
            s.note(
                "placeholder reported after the filler ended",
                ready.to_string(),
            );
            running.write_stdin(b"after-allocation\n")?;
            running.close_stdin();
            let mut out = running.wait()?;
            out.stdout = cpuset_as_count(&out.stdout);
            s.record("srun placeholder", &argv, &out);
            s.record_final_state("squeue -t all", id)?;
            Ok(())
        },
    );
}

#[test]
fn salloc_waits_for_resources() {
    differential("salloc_waits", FakeCluster::mirroring_ci_slurm(), |s| {
        let filler = s.fill_node()?;
        let argv = [
            "salloc",
            "-c",
            "1",
            "--mem",
            "200",
            "-J",
            "alloc",
            "bash",
            "-c",
            "echo inside; exit 4",
        ];
        let running = s.env.spawn(&argv)?;
        poll_until(STATE_DEADLINE, || {
            running
                .stderr_so_far()
                .contains("queued and waiting for resources")
        });
        s.run("scancel filler", &["scancel", &filler.to_string()])?;
        s.finish("salloc", &argv, running)?;
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Output files, directives, environment.

#[test]
fn output_file_name_patterns() {
    differential("output_patterns", FakeCluster::mirroring_ci_slurm(), |s| {
        let common = ["sbatch", "--wait", "-c", "1", "--mem", "100"];
        let cases: [(&str, &[&str]); 5] = [
            (
                "all codes",
                &[
                    "-J",
                    "pat",
                    "-o",
                    "pat-%j-%x-%u-%N-%%-%8j.out",
                    "--wrap",
                    "echo all",
                ],
            ),
            ("escaped", &["-o", r"esc-\%j.out", "--wrap", "echo escaped"]),
            (
                "default name",
                &["--wrap", "echo default; echo to-stderr >&2"],
            ),
            (
                "separate stderr",
                &[
                    "-o",
                    "o-%j.out",
                    "-e",
                    "e-%j.err",
                    "--wrap",
                    "echo out; echo err >&2",
                ],
            ),
            (
                "-D with relative -o",
                &[
                    "-D",
                    "sub",
                    "-o",
                    "in-sub-%j.out",
                    "--wrap",
                    "echo in-sub; pwd",
                ],
            ),
        ];
        std::fs::create_dir_all(s.env.cwd().join("sub"))
            .map_err(|e| CaseError(format!("mkdir sub: {e}")))?;
        for (key, opts) in cases {
            let mut argv = common.to_vec();
            argv.extend_from_slice(opts);
            s.run(key, &argv)?;
        }
        s.record_files("files");
        for file in s.env.list_files() {
            let key = format!("content of {}", s.norm.name(&file));
            s.record_file(&key, &file);
        }
        Ok(())
    });
}

#[test]
fn sbatch_directives_and_script_arguments() {
    differential(
        "sbatch_directives",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            s.env.write_file(
            "job.sh",
            "#!/bin/bash\n\
             #SBATCH --job-name=from-directive\n\
             #SBATCH -o directive-%x-%j.out\n\
             #SBATCH -e directive-%x-%j.err\n\
             #SBATCH --partition=gitlab-ci\n\
             #SBATCH --time=00:02:00\n\
             #SBATCH -c 1\n\
             #SBATCH --mem=150\n\
             echo \"name=$SLURM_JOB_NAME part=$SLURM_JOB_PARTITION cpus=$SLURM_CPUS_ON_NODE mem=$SLURM_MEM_PER_NODE\"\n\
             echo to-stderr >&2\n\
             echo \"args=$# [$1] [$2]\"\n",
        )?;
            let id = s.submit("directives", &["sbatch", "--wait", "job.sh", "a1", "b 2"])?;
            s.record_scontrol(
                "scontrol",
                id,
                &[
                    "JobName",
                    "Partition",
                    "TimeLimit",
                    "NumCPUs",
                    "StdOut",
                    "StdErr",
                    "WorkDir",
                ],
            )?;
            s.submit(
                "command line wins",
                &["sbatch", "--wait", "-J", "cli-wins", "-t", "3", "job.sh"],
            )?;
            s.record_files("files");
            for file in s.env.list_files() {
                if file != "job.sh" {
                    let key = format!("content of {}", s.norm.name(&file));
                    s.record_file(&key, &file);
                }
            }
            Ok(())
        },
    );
}

/// The job's `SLURM*` variables, one per line, normalised; volatile values become placeholders.
const ENV_DUMP: &str = "env | grep -E '^SLURM' | grep -v -E '^SLURM_CONF=' | sort; echo PWD=$PWD; echo MYVAR=${MYVAR-unset} EXTRA=${EXTRA-unset}";

fn normalize_env_dump(s: &mut Side, text: &str) -> String {
    text.lines()
        .map(|line| match line.split_once('=') {
            Some(("SLURM_TASK_PID", _)) => "SLURM_TASK_PID=<PID>".to_string(),
            Some(("SLURM_WORKING_CLUSTER", v)) => {
                let cluster = v.split(':').next().unwrap_or("");
                format!("SLURM_WORKING_CLUSTER={cluster}:<controller address and protocol>")
            }
            _ => s.norm.text(line),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn job_environment() {
    differential("job_environment", FakeCluster::mirroring_ci_slurm(), |s| {
        let variants: [(&str, &[&str]); 5] = [
            (
                "plain --wrap",
                &["-c", "1", "--mem", "100", "-o", "plain.out"],
            ),
            (
                "-c 1 -n 1 --mem 500 -p gitlab-ci -J env-job",
                &[
                    "-c",
                    "1",
                    "-n",
                    "1",
                    "--mem",
                    "500",
                    "-p",
                    "gitlab-ci",
                    "-J",
                    "env-job",
                    "-o",
                    "opts.out",
                ],
            ),
            (
                "--export=NONE",
                &["--export=NONE", "-c", "1", "--mem", "100", "-o", "none.out"],
            ),
            (
                "--export=ALL,EXTRA=x",
                &[
                    "--export=ALL,EXTRA=x",
                    "-c",
                    "1",
                    "--mem",
                    "100",
                    "-o",
                    "all.out",
                ],
            ),
            (
                "--mem-per-cpu 100 -N 1 -A root -q normal",
                &[
                    "--mem-per-cpu",
                    "100",
                    "-N",
                    "1",
                    "-A",
                    "root",
                    "-q",
                    "normal",
                    "-c",
                    "1",
                    "-o",
                    "per-cpu.out",
                ],
            ),
        ];
        let files = [
            "plain.out",
            "opts.out",
            "none.out",
            "all.out",
            "per-cpu.out",
        ];
        for ((key, opts), file) in variants.iter().zip(files) {
            let mut argv = vec!["sbatch", "--wait"];
            argv.extend_from_slice(opts);
            argv.extend_from_slice(&["--wrap", ENV_DUMP]);
            s.run_with(
                key,
                &argv,
                &RunOptions {
                    env: vec![("MYVAR".into(), "from-submitter".into())],
                    ..RunOptions::default()
                },
            )?;
            let dump = s
                .env
                .read_file(file)
                .unwrap_or_else(|| "(no such file)".into());
            let dump = normalize_env_dump(s, &dump);
            s.note(&format!("environment of {key}"), dump);
        }
        // A script read from stdin: the job is named `sbatch` but SLURM_JOB_NAME is not set.
        let script = format!("#!/bin/bash\n{ENV_DUMP}\n");
        let out = s.run_with(
            "script on stdin",
            &["sbatch", "--wait", "-c", "1", "--mem", "100"],
            &RunOptions {
                stdin: Some(script.into_bytes()),
                ..RunOptions::default()
            },
        )?;
        if let Some(id) = submitted_job_id(&out.stdout) {
            let dump = s
                .env
                .read_file(format!("slurm-{id}.out"))
                .unwrap_or_else(|| "(no such file)".into());
            let dump = normalize_env_dump(s, &dump);
            s.note("environment of a script on stdin", dump);
            s.record_scontrol("scontrol of the stdin job", id, &["JobName"])?;
        }
        Ok(())
    });
}

#[test]
fn chdir_and_export_reach_the_job() {
    differential("chdir_and_export", FakeCluster::mirroring_ci_slurm(), |s| {
        std::fs::create_dir_all(s.env.cwd().join("wd"))
            .map_err(|e| CaseError(format!("mkdir wd: {e}")))?;
        let script = "echo PWD=$PWD SUBMIT_DIR=$SLURM_SUBMIT_DIR; echo MYVAR=${MYVAR-unset} EXTRA=${EXTRA-unset}";
        let variants: [(&str, &[&str]); 3] = [
            ("-D wd", &["-D", "wd", "-o", "d.out"]),
            ("--export=EXTRA=y", &["--export=EXTRA=y", "-o", "e.out"]),
            ("--export=NONE", &["--export=NONE", "-o", "n.out"]),
        ];
        for (key, opts) in variants {
            let mut argv = vec!["sbatch", "--wait", "-c", "1", "--mem", "100"];
            argv.extend_from_slice(opts);
            argv.extend_from_slice(&["--wrap", script]);
            s.run_with(
                key,
                &argv,
                &RunOptions {
                    env: vec![("MYVAR".into(), "from-submitter".into())],
                    ..RunOptions::default()
                },
            )?;
        }
        s.record_files("files");
        s.record_file("-D wd output", "wd/d.out");
        s.record_file("--export=EXTRA=y output", "e.out");
        s.record_file("--export=NONE output", "n.out");
        Ok(())
    });
}

#[test]
fn parsable_quiet_and_stdin_submission() {
    differential(
        "parsable_quiet_stdin",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let id = s.submit(
                "--parsable",
                &[
                    "sbatch",
                    "--parsable",
                    "-c",
                    "1",
                    "--mem",
                    "100",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "true",
                ],
            )?;
            s.run(
                "-Q",
                &[
                    "sbatch",
                    "-Q",
                    "-c",
                    "1",
                    "--mem",
                    "100",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "true",
                ],
            )?;
            s.run_with(
                "script on stdin",
                &["sbatch", "--wait", "-c", "1", "--mem", "100"],
                &RunOptions {
                    stdin: Some(b"#!/bin/bash\necho from-stdin\n".to_vec()),
                    ..RunOptions::default()
                },
            )?;
            s.record_files("files");
            for file in s.env.list_files() {
                let key = format!("content of {}", s.norm.name(&file));
                s.record_file(&key, &file);
            }
            s.wait_for_state(id, &["COMPLETED"])?;
            s.record_scontrol(
                "scontrol of the --parsable job",
                id,
                &["JobName", "JobState", "ExitCode", "StdOut"],
            )?;
            Ok(())
        },
    );
}

#[test]
fn scontrol_and_squeue_describe_a_running_job() {
    differential(
        "running_job_records",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let id = s.submit(
                "sbatch",
                &[
                    "sbatch",
                    "-c",
                    "1",
                    "--mem",
                    "300",
                    // Without -t the limit shows as UNLIMITED or 365-00:00:00, depending on whether
                    // the main or the backfill scheduler started the job (slurm-observed.md, 16).
                    "-t",
                    "30",
                    "-J",
                    "runner",
                    "-o",
                    "run-%j.out",
                    "--wrap",
                    "exec sleep 600",
                ],
            )?;
            let outcome = (|| {
                s.wait_for_state(id, &["RUNNING"])?;
                let id_text = id.to_string();
                s.run(
                    "squeue -o",
                    &[
                        "squeue",
                        "-h",
                        "-j",
                        &id_text,
                        "-o",
                        "%i|%j|%T|%t|%r|%P|%D|%C|%m|%l|%u|%N",
                    ],
                )?;
                let joined = format!("-j{id_text}");
                s.run(
                    "squeue -h -o %T -j<id>",
                    &["squeue", "-h", "-o", "%T", &joined],
                )?;
                s.run(
                    "squeue filters",
                    &[
                        "squeue", "-h", "-u", "root", "-t", "R", "-n", "runner", "-o", "%j|%T",
                    ],
                )?;
                s.run(
                    "squeue --me",
                    &["squeue", "--me", "-h", "-n", "runner", "-o", "%j|%t"],
                )?;
                s.run(
                    "squeue -O",
                    &["squeue", "-h", "-j", &id_text, "-O", "Name,State,Partition"],
                )?;
                let out = s.env.run(&["squeue", "-j", &id_text])?;
                // Column widths depend on the id's length: compare the header as printed and the
                // rows column by column.
                let mut lines = out.stdout.lines();
                let header = lines.next().unwrap_or("").to_string();
                let rows: Vec<String> = lines.map(|l| default_squeue_row(&mut s.norm, l)).collect();
                let stderr = s.norm.text(&out.stderr);
                let status = out.status_text();
                s.note(
                    "squeue default format",
                    format!("{header}\n{}\n[{status}]\n{stderr}", rows.join("\n")),
                );
                s.record_scontrol(
                    "scontrol",
                    id,
                    &[
                        "JobId",
                        "JobName",
                        "JobState",
                        "Reason",
                        "ExitCode",
                        "TimeLimit",
                        "Partition",
                        "NodeList",
                        "BatchHost",
                        "NumNodes",
                        "NumCPUs",
                        "NumTasks",
                        "CPUs/Task",
                        "TRES",
                        "MinMemoryNode",
                        "StdIn",
                        "StdOut",
                        "StdErr",
                        "WorkDir",
                    ],
                )?;
                let out = s.env.run(&["scontrol", "show", "job", &id_text])?;
                s.note("scontrol show job layout", scontrol_layout(&out));
                // Static partition facts only: the node's state depends on what else runs.
                s.run("sinfo -o", &["sinfo", "-h", "-o", "%P|%a|%l|%D|%c|%m|%N"])?;
                Ok(())
            })();
            s.cancel_quietly(id);
            outcome
        },
    );
}

#[test]
fn unwritable_output_file_fails_the_job() {
    differential(
        "unwritable_output",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let id = s.submit(
                "sbatch --wait -o /nonexistent/dir/x.out",
                &[
                    "sbatch",
                    "--wait",
                    "-c",
                    "1",
                    "--mem",
                    "100",
                    "-o",
                    "/nonexistent/dir/x.out",
                    "--wrap",
                    "echo never-seen",
                ],
            )?;
            s.record_final_state("squeue -t all", id)?;
            s.record_scontrol("scontrol", id, &["JobState", "Reason", "ExitCode"])?;
            s.record_sacct("sacct", id, 2)?;
            Ok(())
        },
    );
}

#[test]
fn scancel_options() {
    differential("scancel_options", FakeCluster::mirroring_ci_slurm(), |s| {
        // The batch shell traps USR1; `scancel -s USR1` without `--batch` signals the job's
        // steps (a batch job without steps: what happens is what this case pins).
        let script = "trap 'echo got-USR1' USR1; echo started; while :; do sleep 1; done";
        let id = s.submit(
            "sbatch",
            &[
                "sbatch",
                "-c",
                "1",
                "--mem",
                "100",
                "-J",
                "signalled",
                "-o",
                "sig-%j.out",
                "--wrap",
                script,
            ],
        )?;
        s.wait_for_state(id, &["RUNNING"])?;
        let file = format!("sig-{id}.out");
        poll_until(STATE_DEADLINE, || {
            s.env
                .read_file(&file)
                .is_some_and(|t| t.contains("started"))
        });
        let id_text = id.to_string();
        s.run(
            "scancel -b -s USR1",
            &["scancel", "-b", "-s", "USR1", &id_text],
        )?;
        let got = poll_until(Duration::from_secs(10), || {
            s.env
                .read_file(&file)
                .is_some_and(|t| t.contains("got-USR1"))
        });
        s.note("batch shell got USR1", got.to_string());
        s.run(
            "squeue after USR1",
            &["squeue", "-h", "-j", &id_text, "-o", "%T"],
        )?;
        s.run(
            "scancel -n (wrong name)",
            &["scancel", "-n", "no-such-name"],
        )?;
        s.run(
            "squeue after wrong name",
            &["squeue", "-h", "-j", &id_text, "-o", "%T"],
        )?;
        s.run("scancel -n", &["scancel", "-n", "signalled"])?;
        s.record_final_state("squeue -t all", id)?;
        s.run("scancel -Q unknown", &["scancel", "-Q", "999999"])?;
        s.run("scancel -v finished", &["scancel", "-v", &id_text])?;
        Ok(())
    });
}

#[test]
fn time_limit_formats() {
    differential(
        "time_limit_formats",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            // Held jobs never start, so the limits are only parsed and shown.
            let limits = [
                "0",
                "90",
                "5:30",
                "1:30:00",
                "2-0",
                "1-2:3",
                "1-2:3:4",
                "UNLIMITED",
            ];
            for limit in limits {
                let key = format!("-t {limit}");
                let argv = [
                    "sbatch",
                    "-H",
                    "-t",
                    limit,
                    "-c",
                    "1",
                    "--mem",
                    "100",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "true",
                ];
                let out = s.run(&key, &argv)?;
                if let Some(id) = submitted_job_id(&out.stdout) {
                    s.record_scontrol(
                        &format!("{key}: scontrol"),
                        id,
                        &["JobState", "Reason", "TimeLimit"],
                    )?;
                    let id_text = id.to_string();
                    s.run(
                        &format!("{key}: squeue %l"),
                        &["squeue", "-h", "-j", &id_text, "-o", "%l|%r"],
                    )?;
                    s.cancel_quietly(id);
                }
            }
            s.run(
                "-t above the partition limit, held",
                &[
                    "sbatch",
                    "-H",
                    "-p",
                    "gitlab-ci",
                    "-t",
                    "61",
                    "-c",
                    "1",
                    "--mem",
                    "100",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "true",
                ],
            )?;
            Ok(())
        },
    );
}

#[test]
fn output_is_written_live_and_stdin_is_dev_null() {
    differential(
        "live_output_and_stdin",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            // The job writes a first line, then waits for a file the case creates: the executor's
            // tailer relies on seeing output while the job still runs.
            let marker = s.env.cwd().join("go-on");
            let marker_text = marker.to_string_lossy().into_owned();
            let script = format!(
                "echo first; while [ ! -e '{marker_text}' ]; do sleep 0.2; done; \
             cat; echo cat-rc=$?; readlink /proc/$$/fd/0; echo second"
            );
            let argv = [
                "sbatch",
                "--wait",
                "-c",
                "1",
                "--mem",
                "100",
                "-o",
                "live-%j.out",
                "--wrap",
                &script,
            ];
            let (running, id) = s.spawn_sbatch_wait(&argv)?;
            let file = format!("live-{id}.out");
            let seen = poll_until(STATE_DEADLINE, || {
                s.env.read_file(&file).is_some_and(|t| t.contains("first"))
            });
            s.note("first line seen before the job ends", seen.to_string());
            let state = s.state(id)?;
            s.note("state while the first line is there", state);
            std::fs::write(&marker, b"")
                .map_err(|e| CaseError(format!("creating {marker_text}: {e}")))?;
            s.finish("sbatch --wait", &argv, running)?;
            s.record_file("output file", &file);
            Ok(())
        },
    );
}

#[test]
fn output_and_error_file_combinations() {
    differential(
        "output_error_combinations",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            s.env.write_file("existing.out", "old content\n")?;
            s.env.write_file("appended.out", "old content\n")?;
            let script = "echo to-out; echo to-err >&2";
            let cases: [(&str, &[&str]); 4] = [
                ("-e only", &["-e", "only-err-%j.err"]),
                (
                    "-o and -e the same file",
                    &["-o", "same-%j.log", "-e", "same-%j.log"],
                ),
                ("-o an existing file", &["-o", "existing.out"]),
                (
                    "--open-mode=append",
                    &["-o", "appended.out", "--open-mode=append"],
                ),
            ];
            for (key, opts) in cases {
                let mut argv = vec!["sbatch", "--wait", "-c", "1", "--mem", "100"];
                argv.extend_from_slice(opts);
                argv.extend_from_slice(&["--wrap", script]);
                s.run(key, &argv)?;
            }
            s.record_files("files");
            for file in s.env.list_files() {
                let key = format!("content of {}", s.norm.name(&file));
                s.record_file(&key, &file);
            }
            Ok(())
        },
    );
}
