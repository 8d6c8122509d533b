//! The supervisor of one running container (`mock-cluster __container STORE ID STDIN
//! ATTACH`), in the part containerd-shim plays for dockerd: started in a session of its own,
//! so it outlives the `docker` client that started it (a killed `docker run` leaves its
//! container running, as with a real daemon). It
//!
//! - starts the container's command as a real process in a new session (`setsid`), in its
//!   working directory, with exactly the container's environment, bound by
//!   `sched_setaffinity` to `--cpuset-cpus`;
//! - writes what the command prints to the container's `json-file` log, and, when a client is
//!   attached (file descriptor 3), also to that client, framed as the Engine API's attach
//!   stream (8-byte header: stream, 0, 0, 0, big-endian length);
//! - enforces `--memory`: every 50 ms it sums the resident memory of the processes of the
//!   container's session (`/proc/<pid>/stat`); over the limit, it kills the largest with
//!   SIGKILL, as the kernel's OOM killer does in the container's cgroup, and the container is
//!   `OOMKilled`;
//! - passes SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGALRM on to the
//!   command (an attached `docker run` sends it what it receives: `--sig-proxy`);
//! - when the command ends, kills what is left of its session (the end of a container's PID 1
//!   ends the container), records the exit code (128+N for signal N), the end time and
//!   `OOMKilled`, removes the container when it was started with `--rm`, and exits with the
//!   exit code.
//!
//! STDIN is `inherit` (the container reads the supervisor's standard input: the attached
//! client's pipe), `null`, or `hold` (`-d -i`: an open pipe nobody writes to). ATTACH is `1`
//! when file descriptor 3 is the attached client's pipe.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::store::{Record, Store, now};

/// The container's main process, for the signal handlers.
static CONTAINER_PID: AtomicI32 = AtomicI32::new(0);

/// Signals an attached client passes on (docker/cli `ForwardAllSignals` forwards all but
/// SIGCHLD, SIGPIPE and SIGURG; these are the ones a process can be sent in practice).
pub const PROXIED: &[libc::c_int] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
];

extern "C" fn forward(sig: libc::c_int) {
    let pid = CONTAINER_PID.load(Ordering::SeqCst);
    if pid > 1 {
        // SAFETY: kill is async-signal-safe.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// How often the memory limit is checked.
const MEMORY_POLL: Duration = Duration::from_millis(50);

/// The supervisor's main; returns the container's exit code.
pub fn main(args: &[String]) -> i32 {
    let (Some(store_dir), Some(id)) = (args.first(), args.get(1)) else {
        eprintln!("mock-cluster __container: usage: __container STORE ID STDIN ATTACH");
        return 125;
    };
    let stdin_mode = args.get(2).map_or("null", String::as_str);
    let attached = args.get(3).is_some_and(|a| a == "1");
    let store = Store {
        dir: store_dir.into(),
    };
    // SAFETY: installing handlers that only read an atomic and call kill; ignoring SIGPIPE
    // so that a client that went away does not end the supervisor.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        for &sig in PROXIED {
            libc::signal(sig, forward as *const () as libc::sighandler_t);
        }
    }
    let attach = if attached {
        // SAFETY: descriptor 3 was set up for us by the client (see `engine::spawn_shim`);
        // close-on-exec keeps it out of the container.
        unsafe {
            libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC);
        }
        // SAFETY: as above; nothing else owns descriptor 3.
        Some(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(3) })
    } else {
        None
    };
    let Some(rec) = store.load(id) else {
        return 125;
    };
    supervise(&store, rec, stdin_mode, attach)
}

/// The exec'able command of a record: its program resolved (see `super::engine::resolve`).
fn spawn_container(
    rec: &Record,
    program: &Path,
    stdin: Stdio,
    out: Stdio,
    err: Stdio,
) -> std::io::Result<std::process::Child> {
    let mut cmd = Command::new(program);
    cmd.arg0(&rec.path)
        .args(&rec.args)
        .env_clear()
        .envs(super::engine::process_env(rec))
        .current_dir(if rec.working_dir.is_empty() {
            "/"
        } else {
            &rec.working_dir
        })
        .stdin(stdin)
        .stdout(out)
        .stderr(err);
    // Without --cpuset-cpus a container may run on every CPU of the machine, whatever the
    // affinity of the client that started it.
    let cpus = if rec.host.cpus.is_empty() {
        super::engine::machine_cpus().0
    } else {
        rec.host.cpus.clone()
    };
    // SAFETY: setsid and sched_setaffinity are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            crate::daemon::launch::bind_cpus(&cpus)
        });
    }
    cmd.spawn()
}

/// One stream of the attach protocol and the log.
struct Output {
    attach: Option<std::fs::File>,
    log: Option<std::fs::File>,
    /// Partial lines per stream (stdout, stderr), logged when complete.
    partial: [Vec<u8>; 2],
}

impl Output {
    fn write(&mut self, stream: usize, data: &[u8]) {
        if let Some(a) = self.attach.as_mut() {
            let mut frame = vec![stream as u8 + 1, 0, 0, 0];
            frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
            frame.extend_from_slice(data);
            if a.write_all(&frame).is_err() {
                // The client went away; the container goes on.
                self.attach = None;
            }
        }
        let buf = &mut self.partial[stream];
        buf.extend_from_slice(data);
        // json-file logs one entry per line; dockerd splits longer lines at 16 KiB.
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            log_entry(self.log.as_mut(), stream, &line);
        }
        if buf.len() >= 16 * 1024 {
            let line: Vec<u8> = std::mem::take(buf);
            log_entry(self.log.as_mut(), stream, &line);
        }
    }

    fn flush(&mut self) {
        for stream in 0..2 {
            let line = std::mem::take(&mut self.partial[stream]);
            if !line.is_empty() {
                log_entry(self.log.as_mut(), stream, &line);
            }
        }
    }
}

/// One `json-file` entry: `{"log":"...","stream":"stdout","time":"..."}`.
fn log_entry(log: Option<&mut std::fs::File>, stream: usize, data: &[u8]) {
    let Some(log) = log else { return };
    let text = String::from_utf8_lossy(data);
    let line = format!(
        "{{\"log\":{},\"stream\":\"{}\",\"time\":\"{}\"}}\n",
        super::json::quote(&text),
        if stream == 0 { "stdout" } else { "stderr" },
        now()
    );
    let _ = log.write_all(line.as_bytes());
}

fn supervise(store: &Store, rec: Record, stdin_mode: &str, attach: Option<std::fs::File>) -> i32 {
    let id = rec.id.clone();
    let program = match super::engine::resolve(&rec) {
        Ok(p) => p,
        Err((message, code)) => {
            store.update(&id, |r| {
                r.state.exit_code = code;
                r.state.error = super::engine::oci_error(&message);
            });
            return code;
        }
    };
    let (out_r, out_w) = match std::io::pipe() {
        Ok(p) => p,
        Err(_) => return 125,
    };
    // With a TTY the container has one output stream.
    let (err_r, err_w) = if rec.tty {
        (None, out_w.try_clone().ok())
    } else {
        match std::io::pipe() {
            Ok((r, w)) => (Some(r), Some(w)),
            Err(_) => return 125,
        }
    };
    let mut held_stdin = None;
    let stdin = match stdin_mode {
        "inherit" => Stdio::inherit(),
        "hold" => match std::io::pipe() {
            Ok((r, w)) => {
                held_stdin = Some(w);
                r.into()
            }
            Err(_) => Stdio::null(),
        },
        _ => Stdio::null(),
    };
    let err_stdio: Stdio = match err_w {
        Some(w) => w.into(),
        None => Stdio::null(),
    };
    let mut child = match spawn_container(&rec, &program, stdin, out_w.into(), err_stdio) {
        Ok(c) => c,
        Err(e) => {
            let (message, code) = super::engine::exec_error(&rec.path, &e);
            store.update(&id, |r| {
                r.state.exit_code = code;
                r.state.error = super::engine::oci_error(&message);
            });
            return code;
        }
    };
    let pid = child.id() as i32;
    CONTAINER_PID.store(pid, Ordering::SeqCst);
    let shim = std::process::id() as i32;
    let recorded = store.update(&id, |r| {
        r.state.status = "running".into();
        r.state.pid = pid;
        r.state.shim_pid = shim;
        r.state.exit_code = 0;
        r.state.error.clear();
        r.state.oom_killed = false;
        r.state.started_at = now();
        r.state.finished_at = super::store::ZERO_TIME.into();
    });
    if !recorded {
        // Removed before it started.
        kill_session(pid, libc::SIGKILL);
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(store.log_path(&id))
        .ok();
    let output = Arc::new(Mutex::new(Output {
        attach,
        log,
        partial: [Vec::new(), Vec::new()],
    }));
    let mut readers = Vec::new();
    for (stream, reader) in [(0usize, Some(out_r)), (1, err_r)] {
        let Some(mut reader) = reader else { continue };
        let output = output.clone();
        readers.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut o = output.lock().unwrap_or_else(|p| p.into_inner());
                        o.write(stream, &buf[..n]);
                    }
                }
            }
        }));
    }
    let done = Arc::new(AtomicBool::new(false));
    let oom = Arc::new(AtomicBool::new(false));
    let watcher = (rec.host.memory > 0).then(|| {
        let done = done.clone();
        let oom = oom.clone();
        let limit = rec.host.memory as u64;
        std::thread::spawn(move || watch_memory(pid, limit, &done, &oom))
    });
    let status = child.wait();
    done.store(true, Ordering::SeqCst);
    // The end of PID 1 ends every other process of the container.
    kill_session(pid, libc::SIGKILL);
    drop(held_stdin);
    let deadline = Instant::now() + Duration::from_secs(2);
    for r in readers {
        while !r.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if r.is_finished() {
            let _ = r.join();
        }
    }
    if let Some(w) = watcher {
        let _ = w.join();
    }
    let code = match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => c,
            (None, Some(sig)) => 128 + sig,
            _ => 125,
        },
        Err(_) => 125,
    };
    let oom_killed = oom.load(Ordering::SeqCst);
    let mut auto_remove = false;
    store.update(&id, |r| {
        r.state.status = "exited".into();
        r.state.pid = 0;
        r.state.shim_pid = 0;
        r.state.exit_code = code;
        r.state.oom_killed = oom_killed;
        r.state.finished_at = now();
        auto_remove = r.host.auto_remove;
    });
    {
        let mut o = output.lock().unwrap_or_else(|p| p.into_inner());
        o.flush();
        o.attach = None;
    }
    if auto_remove {
        let _lock = store.lock();
        store.auto_remove(&id, code);
    }
    code
}

/// The processes of a session: (pid, resident bytes).
pub fn session_members(sid: i32) -> Vec<(i32, u64)> {
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name: state ppid pgrp session ... (field 24 is rss, in pages).
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        let session = fields.get(3).and_then(|s| s.parse::<i32>().ok());
        if session != Some(sid) {
            continue;
        }
        let rss = fields
            .get(21)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        out.push((pid, rss.saturating_mul(page)));
    }
    out
}

/// Sends `sig` to every process of the container's session.
pub fn kill_session(sid: i32, sig: libc::c_int) {
    if sid <= 1 {
        return;
    }
    // SAFETY: signalling the container's own processes.
    unsafe {
        libc::killpg(sid, sig);
    }
    for (pid, _) in session_members(sid) {
        // SAFETY: as above.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

fn watch_memory(sid: i32, limit: u64, done: &AtomicBool, oom: &AtomicBool) {
    while !done.load(Ordering::SeqCst) {
        let members = session_members(sid);
        let total: u64 = members.iter().map(|(_, rss)| rss).sum();
        if total > limit
            && let Some(&(victim, _)) = members.iter().max_by_key(|(_, rss)| *rss)
        {
            oom.store(true, Ordering::SeqCst);
            // SAFETY: killing a process of the container, as the OOM killer would.
            unsafe {
                libc::kill(victim, libc::SIGKILL);
            }
        }
        std::thread::sleep(MEMORY_POLL);
    }
}
