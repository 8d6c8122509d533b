//! Starting batch jobs as real processes. The daemon starts a small launcher (`mock-cluster
//! __launch SPEC`) in its own session; the launcher opens the output files, starts the script in
//! a new process group bound to the allocated CPUs, and writes the script's raw wait status to a
//! file. The status survives a daemon restart, so jobs keep running across one.
//!
//! A job of another user (the daemon runs as root) runs as that user, as slurmstepd runs it:
//! the launcher takes the user's groups and effective ids to open the output files (so they
//! are the user's, and a file the user may not write fails the job), the script runs with the
//! user's real, effective and saved ids, and the launcher is root again only to write its own
//! files in the state directory.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Raw status Slurm records when the output file cannot be opened (`ExitCode=0:53`, observed).
pub const OUTPUT_OPEN_FAILED: i32 = 53;

/// Everything the launcher needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// Job id.
    pub job_id: u32,
    /// Executable script.
    pub script: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Complete environment.
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub work_dir: String,
    /// stdout file.
    pub stdout: String,
    /// stderr file (may equal stdout).
    pub stderr: String,
    /// stdin file.
    pub stdin: String,
    /// Append instead of truncating.
    pub append: bool,
    /// Real CPU ids.
    pub cpus: Vec<usize>,
    /// Real seconds before the output file appears.
    pub output_delay_real: f64,
    /// Where to write the process group id.
    pub pid_file: PathBuf,
    /// Where to write the raw wait status.
    pub status_file: PathBuf,
    /// Node name for messages.
    pub node: String,
    /// The scheduler whose words the node's messages use.
    #[serde(default)]
    pub flavor: crate::flavor::Flavor,
    /// The user the job runs as, when the launcher (root) must become another user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<RunAs>,
}

/// A user a job runs as: ids and the groups `initgroups(3)` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAs {
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Every group of the user, the primary one included.
    pub groups: Vec<u32>,
}

/// Which identity the launcher acts with. Acting as the user sets the effective ids and the
/// groups only: root stays the real and saved uid, so the launcher can be root again.
struct Identity<'a> {
    run_as: Option<&'a RunAs>,
}

impl Identity<'_> {
    /// Takes the user's groups and effective gid and uid (nothing when the job is the
    /// launcher's own user).
    fn user(&self) -> std::io::Result<()> {
        let Some(r) = self.run_as else {
            return Ok(());
        };
        let groups: Vec<nix::unistd::Gid> = r
            .groups
            .iter()
            .map(|g| nix::unistd::Gid::from_raw(*g))
            .collect();
        // Groups and gid first: once the effective uid is not root, they cannot change.
        nix::unistd::setgroups(&groups)?;
        nix::unistd::setegid(nix::unistd::Gid::from_raw(r.gid))?;
        nix::unistd::seteuid(nix::unistd::Uid::from_raw(r.uid))?;
        Ok(())
    }

    /// Root again (the real uid), with root's gid and no supplementary groups.
    fn root(&self) -> std::io::Result<()> {
        if self.run_as.is_none() {
            return Ok(());
        }
        nix::unistd::seteuid(nix::unistd::Uid::from_raw(0))?;
        nix::unistd::setegid(nix::unistd::Gid::from_raw(0))?;
        nix::unistd::setgroups(&[])?;
        Ok(())
    }
}

/// In the job's forked process, before exec: every uid and gid the user's, so the job cannot
/// become root again (the launcher's real and saved uid are root's). Only calls `setresgid`
/// and `setresuid`, which are async-signal-safe.
fn become_user_for_good(run_as: Option<(u32, u32)>) -> std::io::Result<()> {
    let Some((uid, gid)) = run_as else {
        return Ok(());
    };
    // SAFETY: plain system calls on this process's credentials.
    unsafe {
        if libc::setresgid(gid, gid, gid) != 0 || libc::setresuid(uid, uid, uid) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether the launcher, acting as the job's user, may make `dir` its working directory: a
/// directory the user may search (`faccessat` with the effective ids, as `chdir` checks);
/// else the errno `chdir` would fail with.
fn can_enter(dir: &str) -> Result<(), i32> {
    let Ok(path) = std::ffi::CString::new(dir) else {
        return Err(libc::ENOENT);
    };
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    let rc =
        unsafe { libc::faccessat(libc::AT_FDCWD, path.as_ptr(), libc::X_OK, libc::AT_EACCESS) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::ENOENT));
    }
    if !Path::new(dir).is_dir() {
        return Err(libc::ENOTDIR);
    }
    Ok(())
}

/// Paths of one job's launcher files.
pub fn job_paths(dir: &Path, id: u32) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let jobs = dir.join("jobs");
    (
        jobs.join(format!("{id}.script")),
        jobs.join(format!("{id}.launch.json")),
        jobs.join(format!("{id}.pid")),
        jobs.join(format!("{id}.status")),
    )
}

/// Starts the launcher for a job; returns the launcher's child handle.
pub fn spawn_launcher(
    exe: &Path,
    spec: &LaunchSpec,
    spec_path: &Path,
    log: &Path,
) -> std::io::Result<std::process::Child> {
    let text = serde_json::to_vec(spec).map_err(std::io::Error::other)?;
    // The spec holds the job's environment: the daemon's user alone may read it.
    write_atomic_private(spec_path, &text)?;
    let log = OpenOptions::new().create(true).append(true).open(log)?;
    let mut cmd = Command::new(exe);
    cmd.arg("__launch")
        .arg(spec_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // Its own session detaches the launcher from the daemon's, so jobs outlive a daemon restart.
    in_new_session(&mut cmd);
    cmd.spawn()
}

/// Makes the command start in a session of its own, away from the caller's terminal and
/// process group.
pub fn in_new_session(cmd: &mut Command) {
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// Writes a file via a temporary name and a rename, so readers never see half of it.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

/// [`write_atomic`] of a file only its owner may read (`0600`).
fn write_atomic_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    crate::users::private_file(&tmp)?.write_all(data)?;
    std::fs::rename(&tmp, path)
}

/// Reads a raw wait status written by a launcher.
pub fn read_status(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Reads a process group id written by a launcher.
pub fn read_pgid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Binds the calling process (in a pre_exec hook) to the given CPUs.
pub fn bind_cpus(cpus: &[usize]) -> std::io::Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET and sched_setaffinity only touch it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        for &c in cpus {
            if c < libc::CPU_SETSIZE as usize {
                libc::CPU_SET(c, &mut set);
            }
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The CPUs this process may run on.
pub fn available_cpus() -> Vec<usize> {
    // SAFETY: as in bind_cpus.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect();
        if cpus.is_empty() { vec![0] } else { cpus }
    }
}

fn open_output(path: &str, append: bool) -> std::io::Result<File> {
    if !append {
        File::create(path)?;
    }
    // Always O_APPEND, so the scheduler's own lines (Slurm's slurmstepd) and the job's own output never
    // overwrite each other.
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open(path)
}

/// The launcher's main: returns the process exit code.
pub fn launcher_main(spec_path: &Path) -> i32 {
    let spec: LaunchSpec = match std::fs::read(spec_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "mock-cluster launcher: cannot read {}: {e}",
                spec_path.display()
            );
            return 1;
        }
    };
    let identity = Identity {
        run_as: spec.run_as.as_ref(),
    };
    let status = match identity.user() {
        Ok(()) => run_job(&spec, &identity),
        Err(e) => {
            eprintln!(
                "mock-cluster launcher: job {}: cannot become its user: {e}",
                spec.job_id
            );
            1 << 8
        }
    };
    // Whatever happened, the launcher's own files are written as root.
    if let Err(e) = identity.root() {
        eprintln!("mock-cluster launcher: cannot become root again: {e}");
        return 1;
    }
    if let Err(e) = write_atomic(&spec.status_file, status.to_string().as_bytes()) {
        eprintln!(
            "mock-cluster launcher: cannot write {}: {e}",
            spec.status_file.display()
        );
        return 1;
    }
    0
}

/// The real wait before the output file appears. A delay that is no duration (negative, NaN,
/// or too long for a clock to reach) means none.
fn output_delay(real_secs: f64) -> Duration {
    Duration::try_from_secs_f64(real_secs)
        .ok()
        .filter(|d| Instant::now().checked_add(*d).is_some())
        .unwrap_or(Duration::ZERO)
}

/// Runs the job and returns its raw wait status. Called acting as the job's user (see
/// [`Identity`]), which it is again when it returns; it is root only to write the pid file.
fn run_job(spec: &LaunchSpec, identity: &Identity<'_>) -> i32 {
    let delay = output_delay(spec.output_delay_real);
    let delayed = !delay.is_zero();
    let same = spec.stdout == spec.stderr;
    let mut work_dir = spec.work_dir.clone();
    let mut early_lines = Vec::new();
    if let Err(errno) = can_enter(&work_dir) {
        early_lines.push(
            spec.flavor
                .rules()
                .chdir_failed(&spec.node, &work_dir, errno),
        );
        work_dir = "/tmp".into();
    }
    let (stdout, stderr): (Stdio, Stdio);
    // With a delay the job writes into a pipe; a copier puts what it wrote into the file once
    // the file "appears". It starts after the pid file is written (see below).
    let mut delayed_output = None;
    if delayed {
        let (reader, writer) = match std::io::pipe() {
            Ok(p) => p,
            Err(_) => return 1 << 8,
        };
        let err_writer = match writer.try_clone() {
            Ok(w) => w,
            Err(_) => return 1 << 8,
        };
        stdout = writer.into();
        stderr = if same {
            err_writer.into()
        } else {
            drop(err_writer);
            match open_output(&spec.stderr, spec.append) {
                Ok(f) => f.into(),
                Err(_) => return OUTPUT_OPEN_FAILED,
            }
        };
        delayed_output = Some((reader, early_lines.concat()));
    } else {
        let out = match open_output(&spec.stdout, spec.append) {
            Ok(f) => f,
            Err(_) => return OUTPUT_OPEN_FAILED,
        };
        let err = if same {
            out.try_clone()
        } else {
            open_output(&spec.stderr, spec.append)
        };
        let mut err = match err {
            Ok(f) => f,
            Err(_) => return OUTPUT_OPEN_FAILED,
        };
        for line in &early_lines {
            let _ = err.write_all(line.as_bytes());
        }
        stdout = out.into();
        stderr = err.into();
    }
    let stdin: Stdio = match File::open(&spec.stdin) {
        Ok(f) => f.into(),
        Err(_) => Stdio::null(),
    };
    let mut cmd = Command::new(&spec.script);
    cmd.args(&spec.args)
        .env_clear()
        .envs(&spec.env)
        .current_dir(&work_dir)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    let cpus = spec.cpus.clone();
    let run_as = spec.run_as.as_ref().map(|r| (r.uid, r.gid));
    let exec = match ExecWithPid::new(spec) {
        Ok(e) => e,
        Err(_) => return 1 << 8,
    };
    // SAFETY: the hook only calls sched_setaffinity, setresgid and setresuid, writes digits
    // into memory prepared before the fork and calls execve; all async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            bind_cpus(&cpus)?;
            become_user_for_good(run_as)?;
            exec.exec()
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            if let Ok(mut f) = open_output(&spec.stderr, true) {
                let line = spec.flavor.rules().exec_failed(
                    &spec.node,
                    &spec.script.display().to_string(),
                    &e.to_string(),
                );
                let _ = f.write_all(line.as_bytes());
            }
            return 1 << 8;
        }
    };
    drop(cmd);
    // The pid file is the launcher's own, in the state directory; the copier opens the job's
    // file as the job's user, so it starts once the launcher is that user again.
    match identity.root() {
        Ok(()) => {
            let _ = write_atomic(&spec.pid_file, child.id().to_string().as_bytes());
        }
        Err(e) => eprintln!("mock-cluster launcher: cannot become root again: {e}"),
    }
    if let Err(e) = identity.user() {
        eprintln!("mock-cluster launcher: cannot become the job's user again: {e}");
    }
    let copier = delayed_output.map(|(reader, early)| {
        let path = spec.stdout.clone();
        let append = spec.append;
        std::thread::spawn(move || delayed_copy(reader, &path, append, delay, early))
    });
    let status = match child.wait() {
        Ok(s) => s.into_raw(),
        Err(_) => 1 << 8,
    };
    if let Some(c) = copier {
        let _ = c.join();
    }
    status
}

/// execve with the environment plus the flavour's `<VARIABLE>=<own pid>` (Slurm's
/// `SLURM_TASK_PID`), which only the child knows. Everything is allocated before the fork; the
/// child fills in its pid and execs.
struct ExecWithPid {
    path: std::ffi::CString,
    _args: Vec<std::ffi::CString>,
    _env: Vec<std::ffi::CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    /// Where the pid's digits go, after `<VARIABLE>=`; none when the flavour has no such
    /// variable.
    pid_slot: Option<*mut u8>,
}

// SAFETY: the raw pointers point into the CStrings and the pid buffer owned by this value (or
// leaked for the child's lifetime); they are only used in the forked child.
unsafe impl Send for ExecWithPid {}
// SAFETY: as above; no shared mutation happens in the parent.
unsafe impl Sync for ExecWithPid {}

impl ExecWithPid {
    fn new(spec: &LaunchSpec) -> Result<ExecWithPid, std::ffi::NulError> {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let path = CString::new(spec.script.as_os_str().as_bytes())?;
        let mut args = vec![path.clone()];
        for a in &spec.args {
            args.push(CString::new(a.as_bytes())?);
        }
        let pid_variable = spec.flavor.rules().task_pid_variable();
        let mut env = Vec::new();
        for (k, v) in &spec.env {
            if Some(k.as_str()) != pid_variable {
                env.push(CString::new(format!("{k}={v}"))?);
            }
        }
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
        let pid_slot = pid_variable.map(|name| {
            // Room for `NAME=`, 20 digits and the NUL; leaked because the child execs from it.
            let mut slot = format!("{name}=").into_bytes();
            let prefix = slot.len();
            slot.resize(prefix + 21, 0);
            let slot = Box::leak(slot.into_boxed_slice()).as_mut_ptr();
            envp.push(slot as *const libc::c_char);
            // SAFETY: `prefix` is within the buffer just allocated.
            unsafe { slot.add(prefix) }
        });
        envp.push(std::ptr::null());
        Ok(ExecWithPid {
            path,
            _args: args,
            _env: env,
            argv,
            envp,
            pid_slot,
        })
    }

    /// Runs in the child: fills in the pid and execs; returns only on failure.
    fn exec(&self) -> std::io::Result<()> {
        // SAFETY: getpid cannot fail; the pid slot has room for 20 digits and the NUL.
        unsafe {
            if let Some(base) = self.pid_slot {
                let mut pid = libc::getpid() as u64;
                let mut digits = [0u8; 20];
                let mut n = 0;
                loop {
                    digits[n] = b'0' + (pid % 10) as u8;
                    n += 1;
                    pid /= 10;
                    if pid == 0 {
                        break;
                    }
                }
                for i in 0..n {
                    *base.add(i) = digits[n - 1 - i];
                }
                *base.add(n) = 0;
            }
            libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr());
        }
        Err(std::io::Error::last_os_error())
    }
}

fn delayed_copy(
    mut reader: std::io::PipeReader,
    path: &str,
    append: bool,
    delay: Duration,
    early: String,
) {
    let now = Instant::now();
    let deadline = now.checked_add(delay).unwrap_or(now);
    let mut buffered = early.into_bytes();
    // Collect output until the file "appears", then stream the rest straight into it.
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut chunk = vec![0u8; 65536];
        loop {
            match reader.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(chunk[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut done = false;
    while Instant::now() < deadline {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(data) => buffered.extend(data),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                done = true;
                break;
            }
        }
    }
    if done {
        // The job ended before the file appeared: it still appears only at the deadline.
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    }
    let Ok(mut file) = open_output(path, append) else {
        return;
    };
    let _ = file.write_all(&buffered);
    for data in rx {
        let _ = file.write_all(&data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_delays_that_are_no_duration_never_panic() {
        assert_eq!(output_delay(f64::NAN), Duration::ZERO);
        assert_eq!(output_delay(-3.0), Duration::ZERO);
        assert_eq!(output_delay(f64::INFINITY), Duration::ZERO);
        assert_eq!(output_delay(1e300), Duration::ZERO);
        assert_eq!(output_delay(1.5), Duration::from_millis(1500));
    }
}
