//! The synchronous client side of the daemon protocol, used by every fake command. No async
//! runtime here: a fake must start and answer in about a millisecond.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::socket_path;
use crate::protocol::{Request, Response};

/// Environment variable that selects the state directory for the fakes.
pub const STATE_DIR_ENV: &str = "MOCK_CLUSTER_STATE_DIR";
/// Set to `1` to stop fakes from starting a daemon.
pub const NO_AUTOSTART_ENV: &str = "MOCK_CLUSTER_NO_AUTOSTART";
/// Set in every job's environment: the simulated node the job runs on (its first node).
pub const NODE_ENV: &str = "MOCK_CLUSTER_NODE";

/// The default state directory, `/tmp/mock-cluster-<uid>`.
pub fn default_state_dir() -> PathBuf {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    PathBuf::from(format!("/tmp/mock-cluster-{uid}"))
}

/// The file `mock-cluster env` leaves in a state directory's `bin/`, so that a fake run from
/// there knows its cluster.
pub const BIN_MARKER: &str = ".mock-cluster-state-dir";

/// The state directory the fakes use: `MOCK_CLUSTER_STATE_DIR` when it is set; else the
/// cluster whose `bin/` the command was run from, so that a fake found on `PATH` reaches its
/// own cluster in an environment scrubbed of the variable (`sudo`, `env -i`, a CI runner's
/// job environment); else the default.
pub fn state_dir_from_env() -> PathBuf {
    match std::env::var_os(STATE_DIR_ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => executed_path()
            .and_then(|path| state_dir_of_fake(&path))
            .unwrap_or_else(default_state_dir),
    }
}

/// The path this process was started as: the file name given to `execve`, which a shell or
/// `execvp` resolved through `PATH` (argv[0] is only the name typed, and `/proc/self/exe`
/// the symlink's target).
fn executed_path() -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: getauxval has no preconditions; AT_EXECFN, when present, points to a
    // NUL-terminated string on the process's initial stack that lives as long as it does.
    let name = unsafe { libc::getauxval(libc::AT_EXECFN) } as *const libc::c_char;
    if name.is_null() {
        return None;
    }
    // SAFETY: see above: non-null, NUL-terminated, never freed.
    let bytes = unsafe { std::ffi::CStr::from_ptr(name) }.to_bytes();
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(bytes));
    if path.is_absolute() {
        Some(path)
    } else {
        std::env::current_dir().ok().map(|cwd| cwd.join(path))
    }
}

/// The state directory of a fake at `path`: `<dir>` for `<dir>/bin/<name>` when that `bin/`
/// is one `mock-cluster env` made (it holds [`BIN_MARKER`]).
pub fn state_dir_of_fake(path: &Path) -> Option<PathBuf> {
    let bin = path.parent()?;
    if bin.file_name()? != "bin" || !bin.join(BIN_MARKER).is_file() {
        return None;
    }
    bin.parent().map(Path::to_path_buf)
}

/// A connection to the daemon.
#[derive(Debug)]
pub struct Conn {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

/// The daemon could not be reached.
#[derive(Debug)]
pub struct Unreachable {
    /// The socket tried.
    pub socket: PathBuf,
    /// Why.
    pub error: std::io::Error,
}

impl Conn {
    /// Connects without starting anything.
    pub fn connect(dir: &Path) -> Result<Conn, Unreachable> {
        let socket = socket_path(dir);
        match UnixStream::connect(&socket) {
            Ok(s) => {
                let reader = s.try_clone().map_err(|error| Unreachable {
                    socket: socket.clone(),
                    error,
                })?;
                Ok(Conn {
                    writer: s,
                    reader: BufReader::new(reader),
                })
            }
            Err(error) => Err(Unreachable { socket, error }),
        }
    }

    /// Connects, starting the daemon first when none answers (unless disabled by env).
    pub fn connect_or_start(dir: &Path) -> Result<Conn, Unreachable> {
        match Conn::connect(dir) {
            Ok(c) => Ok(c),
            Err(e) if std::env::var(NO_AUTOSTART_ENV).is_ok_and(|v| v == "1") => Err(e),
            Err(first) => {
                if let Err(error) = spawn_daemon(dir) {
                    return Err(Unreachable {
                        socket: first.socket,
                        error,
                    });
                }
                wait_for_daemon(dir, Duration::from_secs(10))
            }
        }
    }

    /// Sends one request.
    pub fn send(&mut self, req: &Request) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.writer.write_all(&line)
    }

    /// Reads one response.
    pub fn recv(&mut self) -> std::io::Result<Response> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "daemon closed the connection",
            ));
        }
        serde_json::from_str(&line).map_err(std::io::Error::other)
    }

    /// Sends a request and reads its response.
    pub fn call(&mut self, req: &Request) -> std::io::Result<Response> {
        self.send(req)?;
        self.recv()
    }

    /// Splits into the writing half and the buffered reading half.
    pub fn split(self) -> (UnixStream, BufReader<UnixStream>) {
        (self.writer, self.reader)
    }

    /// A second handle for writing from another thread.
    pub fn writer_clone(&self) -> std::io::Result<UnixStream> {
        self.writer.try_clone()
    }
}

/// Starts a daemon for `dir` in the background (its own session, output to `daemon.log`).
pub fn spawn_daemon(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let exe = std::env::current_exe()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("daemon.log"))?;
    let mut cmd = Command::new(exe);
    cmd.arg0("mock-cluster")
        .arg("daemon")
        .arg("--state-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    crate::daemon::launch::in_new_session(&mut cmd);
    let child = cmd.spawn()?;
    // The daemon outlives us; nobody needs its exit status, so reap it if it exits early.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    Ok(())
}

/// Polls until the daemon answers a ping.
pub fn wait_for_daemon(dir: &Path, timeout: Duration) -> Result<Conn, Unreachable> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_micros(500);
    loop {
        match Conn::connect(dir) {
            Ok(mut c) => {
                if matches!(c.call(&Request::Ping), Ok(Response::Pong { .. })) {
                    return Conn::connect(dir);
                }
            }
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            return Err(Unreachable {
                socket: socket_path(dir),
                error: std::io::Error::new(std::io::ErrorKind::TimedOut, "daemon did not answer"),
            });
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}
