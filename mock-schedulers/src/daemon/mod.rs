//! The cluster daemon: one per state directory, serving the fake CLIs over
//! `<state-dir>/daemon.sock`.

mod clock;
mod journal;
pub mod launch;
mod state;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::Cluster;
use crate::model::{JobKind, JobState};
use crate::protocol::{Request, Response};

pub use crate::flavor::slurm::compress_counts;
use state::{Effect, State};
pub use state::{absolute, format_sim_time};

/// Daemon-wide shared data.
struct Shared {
    state: Mutex<State>,
    /// Notified on every change a waiting client may care about.
    changed: Condvar,
    /// Wakes the scheduler thread.
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another thread must not take the cluster down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Path of the daemon socket in a state directory.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("daemon.sock")
}

/// Whether a daemon process holds the state directory (its lock is released when it exits).
pub fn is_locked(dir: &Path) -> bool {
    let Ok(f) = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("daemon.lock"))
    else {
        return false;
    };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    // SAFETY: flock on a descriptor we own; released when `f` is dropped.
    unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) != 0 }
}

/// Path of the stored cluster configuration in a state directory.
pub fn stored_config_path(dir: &Path) -> PathBuf {
    dir.join("cluster.toml")
}

/// Runs the daemon in the current process until `stop`. Returns Ok(false) when another daemon
/// already owns the state directory.
pub fn run(dir: &Path, cluster: Cluster) -> anyhow::Result<bool> {
    std::fs::create_dir_all(dir)?;
    let lock_path = dir.join("daemon.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&lock),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    } != 0
    {
        return Ok(false);
    }
    // /proc/self/exe still reaches this binary after a rebuild replaced the file on disk, so job
    // launchers keep starting.
    let proc_exe = PathBuf::from("/proc/self/exe");
    let exe = if proc_exe.exists() {
        proc_exe
    } else {
        std::env::current_exe()?
    };
    let state = State::open(cluster, dir, exe)?;
    let sock = socket_path(dir);
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock)?;
    let _ = std::fs::write(dir.join("daemon.pid"), std::process::id().to_string());
    let shared = Arc::new(Shared {
        state: Mutex::new(state),
        changed: Condvar::new(),
        wake: Condvar::new(),
    });
    {
        let mut st = shared.lock();
        run_effects(&shared, &mut st);
    }
    let sched = {
        let shared = shared.clone();
        std::thread::spawn(move || scheduler_loop(&shared))
    };
    {
        let shared = shared.clone();
        let dir = dir.to_path_buf();
        std::thread::spawn(move || watch_state_dir(&shared, &dir));
    }
    for conn in listener.incoming() {
        if shared.lock().shutdown {
            break;
        }
        let Ok(stream) = conn else { continue };
        let shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let _ = handle_connection(&shared, stream);
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start connection thread: {e}");
        }
    }
    let _ = sched.join();
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(dir.join("daemon.pid"));
    drop(lock);
    Ok(true)
}

/// Exits when the state directory disappears (a test's temporary directory was removed).
fn watch_state_dir(shared: &Shared, dir: &Path) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if !socket_path(dir).exists() {
            let mut st = shared.lock();
            st.kill_all();
            st.shutdown = true;
            shared.wake.notify_all();
            drop(st);
            // Unblock the accept loop.
            let _ = UnixStream::connect(socket_path(dir));
            std::process::exit(0);
        }
    }
}

fn scheduler_loop(shared: &Arc<Shared>) {
    let mut st = shared.lock();
    loop {
        if st.shutdown {
            return;
        }
        let began = Instant::now();
        let next = st.tick();
        run_effects(shared, &mut st);
        shared.changed.notify_all();
        // With a long queue a pass is expensive: after a wake-up, wait four times as long as
        // the last pass took (at most 20 ms) so a burst of requests is not serialised behind
        // one pass each. Timed events still wake the loop on time.
        let min_gap = if st.pending_count() > 1000 {
            (began.elapsed() * 4).min(Duration::from_millis(20))
        } else {
            Duration::ZERO
        };
        let due = next.map(|t| st.clock.instant_of(t));
        let timeout = match due {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(1),
        }
        .min(Duration::from_secs(1));
        if timeout.is_zero() {
            continue;
        }
        let (guard, result) = shared
            .wake
            .wait_timeout(st, timeout)
            .unwrap_or_else(|p| p.into_inner());
        st = guard;
        if result.timed_out() || st.shutdown {
            continue;
        }
        // Woken by a change: let a burst of requests through before the next (long) pass.
        if !min_gap.is_zero() && due.is_none_or(|d| d > Instant::now() + min_gap) {
            drop(st);
            std::thread::sleep(min_gap);
            st = shared.lock();
        }
    }
}

fn run_effects(shared: &Arc<Shared>, st: &mut State) {
    for effect in std::mem::take(&mut st.effects) {
        match effect {
            Effect::WatchLauncher(id, mut child) => {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = child.wait();
                    let mut st = shared.lock();
                    let (_, _, _, status_file) = launch::job_paths(st.dir(), id);
                    let status = launch::read_status(&status_file).unwrap_or(1 << 8);
                    st.end_job(id, status, None);
                    shared.wake.notify_all();
                    shared.changed.notify_all();
                });
            }
            Effect::PollLauncher(id) => {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_millis(50));
                        let mut st = shared.lock();
                        if st.poll_adopted(id) {
                            shared.wake.notify_all();
                            shared.changed.notify_all();
                            return;
                        }
                    }
                });
            }
        }
    }
}

fn write_response(stream: &mut UnixStream, resp: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(resp).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)
}

/// Jobs this connection submitted whose client may not have read its answer yet. They wait
/// for the client to ask something else than to record its call, or to hang up (`sbatch`
/// exiting), whatever way the connection ends: a job never starts before its `sbatch` has
/// returned.
struct Unanswered<'a> {
    shared: &'a Arc<Shared>,
    ids: Vec<u32>,
}

impl Unanswered<'_> {
    fn release(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        let mut st = self.shared.lock();
        st.answered(&self.ids);
        self.ids.clear();
        self.shared.wake.notify_all();
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

fn handle_connection(shared: &Arc<Shared>, stream: UnixStream) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let mut unanswered = Unanswered {
        shared,
        ids: Vec::new(),
    };
    loop {
        line.clear();
        // Bytes, not a String: a line that is not UTF-8 gets an answer like any other garbage.
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let req: Request = match serde_json::from_slice(&line) {
            Ok(r) => r,
            Err(e) => {
                write_response(
                    &mut writer,
                    &Response::Error {
                        detail: vec![],
                        message: format!("bad request: {e}"),
                    },
                )?;
                continue;
            }
        };
        // The record of the call is the last thing a fake sends before it exits: its jobs
        // wait for the hang-up. Anything else means the client has read its answer.
        if !matches!(req, Request::Record(_)) {
            unanswered.release();
        }
        match req {
            Request::Allocate { req } => return handle_allocation(shared, reader, writer, *req),
            Request::Submit { req, wait } => {
                let mut st = shared.lock();
                let result = st.submit(*req);
                match result {
                    Err(e) => write_response(&mut writer, &e)?,
                    Ok(id) => {
                        shared.wake.notify_all();
                        drop(st);
                        unanswered.ids.push(id);
                        write_response(&mut writer, &Response::Submitted { id })?;
                        if wait {
                            // `sbatch --wait` stays connected: its answer is out.
                            unanswered.release();
                            let mut st = shared.lock();
                            loop {
                                // An array is waited for until all its tasks have ended.
                                match st.finished_array(id) {
                                    Some(mut j) => {
                                        j.req.env.clear();
                                        j.req.script = None;
                                        drop(st);
                                        write_response(
                                            &mut writer,
                                            &Response::Finished { job: Box::new(j) },
                                        )?;
                                        break;
                                    }
                                    None if st.jobs.contains_key(&id) => {}
                                    None => break,
                                }
                                st = shared
                                    .changed
                                    .wait_timeout(st, Duration::from_secs(1))
                                    .map(|(g, _)| g)
                                    .unwrap_or_else(|p| p.into_inner().0);
                            }
                        }
                    }
                }
            }
            other => {
                let resp = handle_simple(shared, other);
                write_response(&mut writer, &resp)?;
            }
        }
    }
}

fn handle_simple(shared: &Shared, req: Request) -> Response {
    let mut st = shared.lock();
    match req {
        Request::Ping => Response::Pong {
            pid: std::process::id(),
        },
        Request::Jobs {
            ids,
            accounting,
            status_command,
        } => {
            if status_command && st.inject.status_timeout {
                return Response::StatusTimeout;
            }
            Response::Jobs {
                jobs: st.jobs_for_client(ids.as_deref(), accounting),
                now: st.now(),
                cluster_name: st.cluster.cluster_name.clone(),
            }
        }
        Request::TestOnly { req } => st.test_only(*req),
        Request::Cluster { status_command } => {
            if status_command && st.inject.status_timeout {
                return Response::StatusTimeout;
            }
            Response::Cluster {
                cluster: Box::new(st.cluster.clone()),
                usage: st.node_usage(),
                now: st.now(),
            }
        }
        Request::Cancel(c) => {
            let results = st.cancel(&c);
            shared.wake.notify_all();
            shared.changed.notify_all();
            Response::Cancelled { results }
        }
        Request::StepCreate {
            job_id,
            name,
            ntasks,
            cpus,
        } => match st.create_step(job_id, name, ntasks, cpus) {
            Ok(step_id) => Response::StepCreated { step_id },
            Err(message) => Response::Error {
                detail: vec![],
                message,
            },
        },
        Request::StepRunning {
            job_id,
            step_id,
            pgid,
        } => {
            st.step_running(job_id, step_id, pgid);
            Response::Ok
        }
        Request::StepEnded {
            job_id,
            step_id,
            status,
        } => {
            st.step_ended(job_id, step_id, status);
            shared.changed.notify_all();
            Response::Ok
        }
        Request::Control { verb, id } => match st.control(verb, id) {
            Ok(()) => {
                shared.wake.notify_all();
                shared.changed.notify_all();
                Response::Ok
            }
            Err(message) => Response::Error {
                detail: vec![],
                message,
            },
        },
        Request::Record(call) => {
            st.record_call(*call);
            Response::Ok
        }
        Request::Calls => Response::Calls {
            calls: st.calls().to_vec(),
        },
        Request::Inject(i) => {
            st.apply_injection(&i);
            shared.wake.notify_all();
            shared.changed.notify_all();
            Response::Injections {
                inject: st.inject.clone(),
            }
        }
        Request::Status => Response::Status {
            summary: st.summary(),
        },
        Request::UpdateDependency { id, dependency } => {
            match st.update_dependency(id, &dependency) {
                Ok(()) => {
                    shared.wake.notify_all();
                    Response::Ok
                }
                Err(message) => Response::Error {
                    detail: Vec::new(),
                    message,
                },
            }
        }
        Request::Shutdown => {
            st.shutdown = true;
            shared.wake.notify_all();
            let sock = socket_path(st.dir());
            drop(st);
            // Unblock accept() so the daemon can exit.
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                let _ = UnixStream::connect(sock);
            });
            Response::Ok
        }
        Request::StepStarted { .. } | Request::Release { .. } => Response::Error {
            detail: vec![],
            message: "no allocation on this connection".into(),
        },
        Request::Submit { .. } | Request::Allocate { .. } => Response::Error {
            detail: vec![],
            message: "unexpected".into(),
        },
    }
}

/// An srun/salloc allocation: the connection holds it. A reader thread takes the client's
/// messages (step started, release, call record, EOF); this thread reports queue and allocation
/// events back.
fn handle_allocation(
    shared: &Arc<Shared>,
    mut reader: BufReader<UnixStream>,
    mut writer: UnixStream,
    req: crate::model::JobRequest,
) -> std::io::Result<()> {
    let immediate = req.immediate;
    let (id, passes) = {
        let mut st = shared.lock();
        match st.submit(req) {
            Err(e) => {
                drop(st);
                return write_response(&mut writer, &e);
            }
            Ok(id) => (id, st.passes),
        }
    };
    shared.wake.notify_all();
    let reader_shared = shared.clone();
    std::thread::spawn(move || {
        let shared = reader_shared;
        let mut line = Vec::new();
        let mut released = false;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let Ok(msg) = serde_json::from_slice::<Request>(&line) else {
                continue;
            };
            let mut st = shared.lock();
            match msg {
                Request::StepStarted { pgid, name } => st.step_started(id, pgid, name),
                Request::Release { status } => {
                    st.release(id, Some(status));
                    released = true;
                }
                Request::Record(call) => st.record_call(*call),
                _ => {}
            }
            shared.wake.notify_all();
            shared.changed.notify_all();
        }
        if !released {
            let mut st = shared.lock();
            st.release(id, None);
            shared.wake.notify_all();
            shared.changed.notify_all();
        }
    });
    let mut queued_sent = false;
    let mut allocated_sent = false;
    let mut revoked_sent = false;
    let mut st = shared.lock();
    while let Some(job) = st.jobs.get(&id) {
        if job.run.state == JobState::Pending && st.passes > passes && !queued_sent {
            if immediate {
                st.release(id, None);
                drop(st);
                shared.changed.notify_all();
                return write_response(
                    &mut writer,
                    &Response::Error {
                        detail: vec![],
                        message: "Requested nodes are busy".into(),
                    },
                );
            }
            queued_sent = true;
            let resp = Response::Queued { id };
            drop(st);
            write_response(&mut writer, &resp)?;
            st = shared.lock();
            continue;
        }
        if job.run.state == JobState::Running && !allocated_sent {
            allocated_sent = true;
            let cpus = st.real_cpus(&job.run.alloc);
            let env = st.job_env(job);
            let mut j = job.clone();
            j.req.env.clear();
            let resp = Response::Allocated {
                job: Box::new(j),
                cpus,
                env,
            };
            drop(st);
            write_response(&mut writer, &resp)?;
            st = shared.lock();
            continue;
        }
        if let Some(t) = job.run.term_sent
            && allocated_sent
            && !revoked_sent
        {
            revoked_sent = true;
            let resp = Response::Revoked {
                ending: job.run.ending.unwrap_or(JobState::Cancelled),
                at: format_sim_time(t),
                node: job.first_node(),
                kill_wait: st.cluster.kill_wait,
            };
            drop(st);
            let _ = write_response(&mut writer, &resp);
            st = shared.lock();
            continue;
        }
        if job.run.state.is_finished() {
            let mut j = job.clone();
            j.req.env.clear();
            drop(st);
            let _ = write_response(&mut writer, &Response::Finished { job: Box::new(j) });
            return Ok(());
        }
        debug_assert!(job.req.kind == JobKind::Interactive);
        st = shared
            .changed
            .wait_timeout(st, Duration::from_secs(1))
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0);
    }
    Ok(())
}
