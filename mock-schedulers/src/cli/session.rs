//! An allocation held open while a command runs in it: what every interactive submit command
//! shares (Slurm's `srun` and `salloc`, LSF's `bsub -I`, Flux's `flux alloc`).
//!
//! The front end asks the daemon for an allocation over its own connection and keeps that
//! connection open: the daemon releases the allocation when the front end says the command has
//! ended, or when the connection closes because the front end died. While the command runs,
//! signals sent to the front end go to the command's process group, and an allocation the
//! scheduler takes back (a cancel, a time limit) is told to the front end, which says so in its
//! scheduler's words; the command's group then gets SIGCONT and SIGTERM (the scheduler's
//! [`crate::flavor::Rules::term_signal`]), and SIGKILL from the daemon after `kill_wait`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use super::Call;
use crate::client::Unreachable;
use crate::model::{Job, JobRequest, JobState};
use crate::protocol::{Request, Response};

static CHILD_PGID: AtomicI32 = AtomicI32::new(0);
static REVOKED: AtomicBool = AtomicBool::new(false);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pgid = CHILD_PGID.load(Ordering::SeqCst);
    if pgid > 1 {
        // SAFETY: killpg is async-signal-safe.
        unsafe {
            if libc::killpg(pgid, sig) != 0 {
                libc::kill(pgid, sig);
            }
        }
    }
}

extern "C" fn let_pass(_sig: libc::c_int) {}

/// For an srun whose tasks share its process group `pgid`: the signals that group gets reach
/// the tasks by themselves, and srun outlives them to report their ends. A handler, not
/// SIG_IGN, since an ignored signal would stay ignored in the tasks. A revocation of srun's own
/// allocation signals that group.
pub fn let_step_signals_pass(pgid: i32) {
    CHILD_PGID.store(pgid, Ordering::SeqCst);
    for sig in FORWARDED {
        // SAFETY: the handler does nothing.
        unsafe {
            libc::signal(sig, let_pass as *const () as libc::sighandler_t);
        }
    }
}

/// Forwards the signals srun passes on (INT, TERM, HUP, QUIT, USR1, USR2) to process group
/// `pgid`.
pub fn forward_signals_to(pgid: i32) {
    CHILD_PGID.store(pgid, Ordering::SeqCst);
    install_forwarding();
}

/// The signals srun passes on to its command.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

fn install_forwarding() {
    for sig in FORWARDED {
        // SAFETY: the handler only reads an atomic and calls killpg.
        unsafe {
            libc::signal(sig, forward_signal as *const () as libc::sighandler_t);
        }
    }
}

/// What the daemon said while the allocation was pending.
#[derive(Debug)]
pub enum Progress {
    /// The job is queued: it waits for resources.
    Queued(u32),
}

/// The allocation was not granted.
#[derive(Debug)]
pub enum Denied {
    /// Refused, in the words of the request's scheduler (see `crate::flavor::Rules::words`).
    Refused {
        /// Lines said before the error.
        detail: Vec<String>,
        /// The error.
        message: String,
    },
    /// Cancelled while it was pending.
    CancelledWhilePending(Box<Job>),
    /// The daemon went away.
    Lost,
}

/// A granted allocation.
#[derive(Debug)]
pub struct Granted {
    /// The job, running.
    pub job: Box<Job>,
    /// The real cores it holds.
    pub cpus: Vec<usize>,
    /// The variables its scheduler sets.
    pub env: BTreeMap<String, String>,
}

/// The scheduler takes the allocation back while the command runs.
#[derive(Debug, Clone)]
pub struct Revocation {
    /// The job.
    pub job_id: u32,
    /// Cancelled or timed out.
    pub ending: JobState,
    /// When, in simulated local time.
    pub at: String,
    /// Its first node.
    pub node: String,
    /// Simulated seconds until SIGKILL.
    pub kill_wait: u64,
}

/// How the command ran.
#[derive(Debug)]
pub enum Ran {
    /// It ended with this raw wait status.
    Ended(std::process::ExitStatus),
    /// It could not be started.
    NotStarted(std::io::Error),
}

impl Ran {
    /// The raw wait status the daemon records (`2 << 8` when nothing started, as a shell's
    /// `exec` failure would say).
    pub fn raw_status(&self) -> i32 {
        match self {
            Ran::Ended(status) => status.into_raw(),
            Ran::NotStarted(_) => 2 << 8,
        }
    }
}

/// Whether the allocation was taken back while the command ran.
pub fn was_revoked() -> bool {
    REVOKED.load(Ordering::SeqCst)
}

/// An allocation asked for, and then held, over a connection of its own.
pub struct Session {
    writer: UnixStream,
    /// The daemon's side of the connection: read here until the allocation is granted, then by
    /// the thread that watches for a revocation until the daemon closes it.
    reader: Option<BufReader<UnixStream>>,
    watcher: Option<std::thread::JoinHandle<()>>,
    job_id: Option<u32>,
    /// The scheduler of the request, whose signal ends a revoked allocation's command.
    flavor: crate::flavor::Flavor,
}

impl Session {
    /// Asks the daemon for an allocation for `req`.
    pub fn request(call: &mut Call, req: JobRequest) -> Result<Session, Unreachable> {
        let conn = call.take_conn()?;
        let (writer, reader) = conn.split();
        let mut session = Session {
            writer,
            reader: Some(reader),
            watcher: None,
            job_id: None,
            flavor: req.flavor,
        };
        if session
            .send(&Request::Allocate { req: Box::new(req) })
            .is_err()
        {
            return Err(Unreachable {
                socket: crate::daemon::socket_path(&call.dir),
                error: std::io::Error::other("the daemon closed the connection"),
            });
        }
        Ok(session)
    }

    fn send(&mut self, req: &Request) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.writer.write_all(&line)
    }

    /// Waits until the allocation is granted or denied, telling `progress` what happens
    /// meanwhile. A signal meanwhile ends the front end; the daemon then drops the pending job
    /// because the connection closes.
    pub fn wait(
        &mut self,
        call: &mut Call,
        mut progress: impl FnMut(Progress),
    ) -> Result<Granted, Denied> {
        let Some(reader) = self.reader.as_mut() else {
            return Err(Denied::Lost);
        };
        loop {
            match read(reader) {
                Some(Response::Queued { id }) => {
                    call.set_job_id(id);
                    self.job_id = Some(id);
                    progress(Progress::Queued(id));
                }
                Some(Response::Allocated { job, cpus, env }) => {
                    call.set_job_id(job.id);
                    self.job_id = Some(job.id);
                    return Ok(Granted { job, cpus, env });
                }
                Some(Response::Error { detail, message }) => {
                    return Err(Denied::Refused { detail, message });
                }
                Some(Response::Finished { job }) => return Err(Denied::CancelledWhilePending(job)),
                Some(_) => {}
                None => return Err(Denied::Lost),
            }
        }
    }

    /// Runs `command` in the allocation with `env`, bound to `cpus`, until it ends. When the
    /// scheduler takes the allocation back, `on_revoked` says so first; the command's group
    /// then gets SIGCONT and SIGTERM (or the scheduler's own signal).
    pub fn run(
        &mut self,
        command: &[String],
        env: &BTreeMap<String, String>,
        cpus: Vec<usize>,
        stdin_none: bool,
        on_revoked: impl Fn(&Revocation) + Send + 'static,
    ) -> Ran {
        self.watch(on_revoked);
        run_command(command, env, cpus, stdin_none, |pgid, name| {
            let _ = self.send(&Request::StepStarted { pgid, name });
        })
    }

    /// From now on, when the scheduler takes the allocation back, `on_revoked` says so and the
    /// process group of the command (or of srun's step) gets SIGCONT and SIGTERM (or the
    /// scheduler's own signal).
    pub fn watch(&mut self, on_revoked: impl Fn(&Revocation) + Send + 'static) {
        let job_id = self.job_id.unwrap_or_default();
        if let Some(reader) = self.reader.take() {
            self.watcher = Some(watch_revocation(reader, job_id, self.flavor, on_revoked));
        }
    }

    /// Releases the allocation with the command's raw wait status and records the call with
    /// the front end's exit `code`.
    pub fn finish(mut self, call: &mut Call, status: i32, code: i32) {
        let _ = self.send(&Request::Release { status });
        let _ = self.send(&Request::Record(Box::new(call.record(code))));
        call.recorded = true;
        let _ = self.writer.shutdown(std::net::Shutdown::Write);
        // The daemon answers the release with the final record and then closes: wait for it,
        // so the job is finished when the front end exits.
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        } else if let Some(mut reader) = self.reader.take() {
            while read(&mut reader).is_some() {}
        }
    }
}

fn read(reader: &mut BufReader<UnixStream>) -> Option<Response> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => serde_json::from_str(&line).ok(),
    }
}

/// Watches the daemon's messages while the command runs, for a revocation.
fn watch_revocation(
    mut reader: BufReader<UnixStream>,
    job_id: u32,
    flavor: crate::flavor::Flavor,
    on_revoked: impl Fn(&Revocation) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while let Some(response) = read(&mut reader) {
            let Response::Revoked {
                ending,
                at,
                node,
                kill_wait,
            } = response
            else {
                continue;
            };
            REVOKED.store(true, Ordering::SeqCst);
            on_revoked(&Revocation {
                job_id,
                ending,
                at,
                node,
                kill_wait,
            });
            let pgid = CHILD_PGID.load(Ordering::SeqCst);
            if pgid > 1 {
                // SAFETY: signalling our own child's process group.
                unsafe {
                    for sig in [libc::SIGCONT, flavor.rules().term_signal(ending)] {
                        if libc::killpg(pgid, sig) != 0 {
                            libc::kill(pgid, sig);
                        }
                    }
                }
            }
        }
    })
}

/// Runs `command` with exactly `env`, bound to `cpus`, in a process group of its own (except on
/// a terminal, where it must stay in the foreground group to read it), with this process's
/// signals forwarded to that group; `started` learns the group and the command's name.
pub fn run_command(
    command: &[String],
    env: &BTreeMap<String, String>,
    cpus: Vec<usize>,
    stdin_none: bool,
    started: impl FnOnce(i32, String),
) -> Ran {
    let Some(program) = command.first() else {
        return Ran::NotStarted(std::io::Error::other("no command"));
    };
    let mut cmd = Command::new(program);
    cmd.args(&command[1..]).env_clear().envs(env);
    // SAFETY: isatty has no preconditions.
    if unsafe { libc::isatty(0) } == 0 {
        cmd.process_group(0);
    }
    if stdin_none {
        cmd.stdin(Stdio::null());
    }
    // SAFETY: bind_cpus only calls sched_setaffinity.
    unsafe {
        cmd.pre_exec(move || crate::daemon::launch::bind_cpus(&cpus));
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(error) => return Ran::NotStarted(error),
    };
    let pgid = child.id() as i32;
    CHILD_PGID.store(pgid, Ordering::SeqCst);
    install_forwarding();
    started(pgid, base_name(program));
    match child.wait() {
        Ok(status) => Ran::Ended(status),
        Err(error) => Ran::NotStarted(error),
    }
}

/// The file name of a command, as the scheduler shows it.
pub fn base_name(cmd: &str) -> String {
    std::path::Path::new(cmd)
        .file_name()
        .map_or(cmd.to_string(), |f| f.to_string_lossy().into_owned())
}
