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
use crate::users::User;
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
    share_with_local_users(dir, &sock);
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

/// The directories of a state directory where the commands and jobs of every user make
/// files of their own (world-writable and sticky, as `/tmp` is): `tmp/` (PBS's per-job
/// `TMPDIR`, LSF's interactive scripts) and Flux's `flux/` (the output of jobs, `kvs/`, and
/// their temporary directories).
const SHARED_SCRATCH: &[&str] = &["tmp", "flux", "flux/kvs"];

/// Makes a cluster started by root usable by every local user, as a real scheduler is: the
/// state directory and its `bin/` readable and searchable, the socket connectable by anyone
/// (the daemon learns who connected from the kernel), [`SHARED_SCRATCH`] `1777`. The journal,
/// the call record and the job files stay private (see [`State::open`]). A cluster of another
/// user is its user's alone: the socket is `0600`.
fn share_with_local_users(dir: &Path, sock: &Path) {
    if crate::users::is_root() {
        crate::users::open_up_dir(dir);
        let bin = dir.join("bin");
        if bin.is_dir() {
            crate::users::open_up_dir(&bin);
        }
        for scratch in SHARED_SCRATCH {
            let path = dir.join(scratch);
            if let Err(error) = std::fs::create_dir_all(&path) {
                tracing::warn!(path = %path.display(), %error, "cannot create a shared directory");
                continue;
            }
            crate::users::set_mode(&path, 0o1777);
        }
        crate::users::set_mode(sock, 0o666);
    } else {
        crate::users::set_mode(sock, 0o600);
    }
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

/// Puts the caller's identity, as the kernel reported it for the connection, into every
/// request that carries one: a client cannot claim to be someone else.
fn stamp(req: &mut Request, peer: &User) {
    match req {
        Request::Submit { req, .. } | Request::TestOnly { req } | Request::Allocate { req } => {
            req.uid = peer.uid;
            req.gid = peer.gid;
            req.user = peer.name.clone();
        }
        Request::Cancel(c) => c.uid = peer.uid,
        Request::Record(call) => {
            call.uid = peer.uid;
            call.user = peer.name.clone();
        }
        _ => {}
    }
}

fn handle_connection(shared: &Arc<Shared>, stream: UnixStream) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let peer = match User::of_peer(&stream) {
        Ok(peer) => peer,
        Err(e) => {
            return write_response(
                &mut writer,
                &Response::Error {
                    detail: vec![],
                    message: format!("cannot tell who connected: {e}"),
                },
            );
        }
    };
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
        let mut req: Request = match serde_json::from_slice(&line) {
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
        stamp(&mut req, &peer);
        match req {
            Request::Allocate { req } => {
                return handle_allocation(shared, reader, writer, *req, &peer);
            }
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
                let resp = handle_simple(shared, other, &peer);
                write_response(&mut writer, &resp)?;
            }
        }
    }
}

/// A refusal of a caller who may not act on a job or on the cluster.
fn denied(message: &str) -> Response {
    Response::Error {
        detail: vec![],
        message: message.into(),
    }
}

/// The answer to a job update (`scontrol update`); a done one wakes the scheduling pass, which
/// may now start the job.
fn job_updated(shared: &Shared, updated: Result<(), String>) -> Response {
    match updated {
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

fn handle_simple(shared: &Shared, req: Request, peer: &User) -> Response {
    let mut st = shared.lock();
    match req {
        Request::Ping => Response::Pong {
            pid: std::process::id(),
            started: st.started(),
            now: st.now(),
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
        } => match st.create_step(job_id, name, ntasks, cpus, peer.uid) {
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
            // The daemon signals this process group later: it must be the caller's own.
            if !st.may_act_on(job_id, peer.uid) || !st.owns_process(peer.uid, pgid) {
                return denied(crate::flavor::slurm::ACCESS_DENIED);
            }
            st.step_running(job_id, step_id, pgid);
            Response::Ok
        }
        Request::StepEnded {
            job_id,
            step_id,
            status,
        } => {
            if !st.may_act_on(job_id, peer.uid) {
                return denied(crate::flavor::slurm::ACCESS_DENIED);
            }
            st.step_ended(job_id, step_id, status);
            shared.changed.notify_all();
            Response::Ok
        }
        Request::Control { verb, id } => match st.control(verb, id, peer.uid) {
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
            if let Err(message) = st.admin_only(peer.uid, "change the injections of") {
                return denied(&message);
            }
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
        Request::UpdateBeginTime { id, after } => {
            job_updated(shared, st.update_begin_time(id, after, peer.uid))
        }
        Request::UpdateDependency { id, dependency } => {
            job_updated(shared, st.update_dependency(id, &dependency, peer.uid))
        }
        Request::Shutdown => {
            if let Err(message) = st.admin_only(peer.uid, "stop") {
                return denied(&message);
            }
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
    peer: &User,
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
    let peer = peer.clone();
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
            let Ok(mut msg) = serde_json::from_slice::<Request>(&line) else {
                continue;
            };
            stamp(&mut msg, &peer);
            let mut st = shared.lock();
            match msg {
                // The daemon signals this process group later: it must be the caller's own.
                Request::StepStarted { pgid, name } if st.owns_process(peer.uid, pgid) => {
                    st.step_started(id, pgid, name)
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CallRecord;
    use crate::protocol::CancelRequest;

    #[test]
    fn what_a_client_says_it_is_gives_way_to_what_the_kernel_says() {
        let peer = User {
            uid: 1001,
            gid: 1002,
            name: "ci-alice".into(),
        };
        let mut cancel = Request::Cancel(CancelRequest {
            ids: vec![7],
            uid: 0,
            ..CancelRequest::default()
        });
        stamp(&mut cancel, &peer);
        assert!(matches!(cancel, Request::Cancel(c) if c.uid == 1001 && c.ids == [7]));
        let mut record = Request::Record(Box::new(CallRecord {
            program: "sbatch".into(),
            argv: vec!["sbatch".into()],
            cwd: "/".into(),
            uid: 0,
            user: "root".into(),
            env: Default::default(),
            exit_code: 0,
            time: String::new(),
            job_id: None,
        }));
        stamp(&mut record, &peer);
        assert!(matches!(record, Request::Record(c) if c.uid == 1001 && c.user == "ci-alice"));
    }
}
