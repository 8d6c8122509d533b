//! Running programs: argv vectors only, never a shell in between.
//!
//! Every scheduler command batchci runs is a [`CommandSpec`]: a program, its arguments, a
//! chosen environment, a working directory and optionally another user to run as. Its exact
//! form is what the job log shows (`$ sbatch --wait ...`), quoted so a person can paste it.
//! Processes start in their own process group so cancelling reaches everything they started.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// How a command becomes another user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Switch {
    /// batchci sets the uid, gid and groups itself in the child before `exec`.
    Setuid,
    /// The child is `sudo -n -u USER -- env -i -C DIR NAME=value... program args` (the sudo
    /// program found at this path).
    Sudo(PathBuf),
}

/// Another user to run a command as; needs root (or CAP_SETUID and CAP_SETGID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (empty: none).
    pub groups: Vec<u32>,
    /// User name.
    pub name: String,
    /// Home directory.
    pub home: PathBuf,
    /// Login shell.
    pub shell: PathBuf,
    /// How the switch is made.
    pub switch: Switch,
}

impl RunAs {
    /// Looks up `user` (and `group`, else the user's primary group), for `[runners.slurm]
    /// user`: no supplementary groups, switched by setuid.
    pub fn lookup(user: &str, group: Option<&str>) -> Result<RunAs, String> {
        let found = nix::unistd::User::from_name(user)
            .map_err(|e| format!("cannot look up user `{user}`: {e}"))?
            .ok_or_else(|| format!("user `{user}` does not exist"))?;
        let gid = match group.filter(|g| !g.is_empty()) {
            Some(group) => {
                nix::unistd::Group::from_name(group)
                    .map_err(|e| format!("cannot look up group `{group}`: {e}"))?
                    .ok_or_else(|| format!("group `{group}` does not exist"))?
                    .gid
            }
            None => found.gid,
        };
        Ok(RunAs {
            uid: found.uid.as_raw(),
            gid: gid.as_raw(),
            groups: Vec::new(),
            name: found.name,
            home: found.dir,
            shell: found.shell,
            switch: Switch::Setuid,
        })
    }

    /// The login basics a command run as this user gets instead of batchci's own: `HOME`,
    /// `USER`, `LOGNAME`, `SHELL`.
    pub fn login_env(&self) -> Vec<(OsString, OsString)> {
        vec![
            ("HOME".into(), self.home.clone().into_os_string()),
            ("USER".into(), self.name.clone().into()),
            ("LOGNAME".into(), self.name.clone().into()),
            ("SHELL".into(), self.shell.clone().into_os_string()),
        ]
    }
}

/// A `std` command for `program args` with exactly `env`, in `cwd`, as `run_as` when given
/// (see [`Switch`]). As another user, nothing of batchci's privileges reaches the program: the
/// child drops to the user's uid, gid and groups, then every capability, then enters `cwd`
/// again as the user; or sudo does the switch and `env -i` gives the program `env` alone.
pub(crate) fn command_as(
    program: &Path,
    args: &[OsString],
    env: &[(OsString, OsString)],
    cwd: &Path,
    run_as: Option<&RunAs>,
) -> std::io::Result<std::process::Command> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let Some(run_as) = run_as else {
        let mut command = std::process::Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(cwd);
        return Ok(command);
    };
    if let Switch::Sudo(sudo) = &run_as.switch {
        // `env` would read a program name with `=` as one more variable.
        if program.as_os_str().as_bytes().contains(&b'=') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "cannot start {} through sudo: its name has `=`",
                    program.display()
                ),
            ));
        }
        let mut command = std::process::Command::new(sudo);
        command
            .args(["-n", "-u"])
            .arg(&run_as.name)
            .args(["--", "/usr/bin/env", "-i", "-C"])
            .arg(cwd);
        for (key, value) in env {
            let mut pair = key.clone();
            pair.push("=");
            pair.push(value);
            command.arg(pair);
        }
        command
            .arg(program)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .current_dir("/");
        return Ok(command);
    }
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd);
    let groups: Vec<libc::gid_t> = run_as.groups.clone();
    let (uid, gid) = (run_as.uid, run_as.gid);
    let cwd = std::ffi::CString::new(cwd.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a NUL in the path"))?;
    // SAFETY: the hook makes system calls only (setgroups, setgid, setuid, capset, chdir) on
    // memory prepared before the fork; all async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            let check = |result: libc::c_int| {
                if result == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            check(libc::setgroups(groups.len(), groups.as_ptr()))?;
            check(libc::setgid(gid))?;
            check(libc::setuid(uid))?;
            // A batchci that is not root keeps its capabilities across setuid: drop them.
            crate::auth::downscope::drop_capabilities()?;
            // Entered as root before; now as the user, with the user's permissions.
            check(libc::chdir(cwd.as_ptr()))
        });
    }
    Ok(command)
}

/// What the child's standard input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `/dev/null`.
    Null,
    /// A pipe the caller writes to (and closes to signal EOF).
    Piped,
}

/// A command to run.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// The program (a path, or a name looked up in the given PATH).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Its whole environment: nothing of batchci's own environment leaks through.
    pub env: Vec<(OsString, OsString)>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Another user to run as.
    pub run_as: Option<RunAs>,
    /// Standard input.
    pub input: Input,
}

impl CommandSpec {
    /// `program args...` in `cwd` with an empty environment.
    pub fn new<I, S>(program: impl Into<PathBuf>, args: I, cwd: impl Into<PathBuf>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        CommandSpec {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: cwd.into(),
            run_as: None,
            input: Input::Null,
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Sets standard input.
    pub fn input(mut self, input: Input) -> Self {
        self.input = input;
        self
    }

    /// Runs as another user.
    pub fn run_as(mut self, run_as: Option<&RunAs>) -> Self {
        self.run_as = run_as.cloned();
        self
    }

    /// The command as a person would type it, e.g. `sbatch --wait '--job-name=my job' x.sh`:
    /// words are quoted only where a shell would need it.
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(OsString::as_os_str))
            .map(|word| display_word(&word.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn command(&self) -> std::io::Result<Command> {
        let mut command = Command::from(command_as(
            &self.resolved_program(),
            &self.args,
            &self.env,
            &self.cwd,
            self.run_as.as_ref(),
        )?);
        command.process_group(0).stdin(match self.input {
            Input::Null => Stdio::null(),
            Input::Piped => Stdio::piped(),
        });
        Ok(command)
    }

    /// The program with its directory: a bare name is looked up in the command's own `PATH`
    /// here, as `execvp` in the child would. Rust's standard library starts a command with
    /// `posix_spawn` (no copy of batchci's page tables, which grow with the logs it holds)
    /// only when the program is named with a directory or the command keeps batchci's own
    /// `PATH`, and with `fork` otherwise; batchci's commands always set `PATH`. A name found
    /// nowhere stays bare, and starting it fails with "not found" as before.
    fn resolved_program(&self) -> PathBuf {
        let bare = self.program.components().count() == 1
            && !self.program.as_os_str().as_encoded_bytes().contains(&b'/');
        if !bare {
            return self.program.clone();
        }
        let Some((_, path)) = self.env.iter().rev().find(|(key, _)| key == "PATH") else {
            return self.program.clone();
        };
        find_in_path(&self.program, path, &self.cwd).unwrap_or_else(|| self.program.clone())
    }

    /// Starts the command with stdout and stderr merged into one pipe, in the order written.
    pub fn spawn_merged(&self) -> std::io::Result<MergedChild> {
        let (reader, writer) = std::io::pipe()?;
        let error_writer = writer.try_clone()?;
        let mut command = self.command().map_err(|e| self.spawn_error(e))?;
        command.stdout(writer).stderr(error_writer);
        let child = command.spawn().map_err(|e| self.spawn_error(e))?;
        // The command holds the write ends; ours must close for EOF to arrive.
        drop(command);
        let output =
            tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(reader))?;
        Ok(MergedChild { child, output })
    }

    /// Starts the command with stdout and stderr merged, writes `script` to its standard
    /// input and closes it (a script on stdin is never a file anyone else could read).
    pub async fn spawn_merged_with_script(&self, script: &[u8]) -> std::io::Result<MergedChild> {
        use tokio::io::AsyncWriteExt;
        let mut running = self.clone().input(Input::Piped).spawn_merged()?;
        if let Some(mut stdin) = running.child.stdin.take() {
            // Written beside the reading of the output: a long script whose first commands
            // print more than a pipe holds would otherwise wait on its own reader. A program
            // that exits early closes the pipe; that is its business, not an error.
            let script = script.to_vec();
            tokio::spawn(async move {
                let _ = stdin.write_all(&script).await;
            });
        }
        Ok(running)
    }

    /// Runs the command to its end, capturing stdout and stderr separately.
    pub async fn output(&self) -> std::io::Result<CapturedOutput> {
        let mut command = self.command().map_err(|e| self.spawn_error(e))?;
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let output = command.output().await.map_err(|e| self.spawn_error(e))?;
        Ok(CapturedOutput {
            code: exit_code(output.status),
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }

    /// Starts the command with batchci's own stdout and stderr.
    pub fn spawn_inherited(&self) -> std::io::Result<Child> {
        let mut command = self.command().map_err(|e| self.spawn_error(e))?;
        command.stdout(Stdio::inherit()).stderr(Stdio::inherit());
        command.spawn().map_err(|e| self.spawn_error(e))
    }

    /// Starts the command with stdout and stderr piped separately.
    pub fn spawn_piped(&self) -> std::io::Result<Child> {
        let mut command = self.command().map_err(|e| self.spawn_error(e))?;
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        command.spawn().map_err(|e| self.spawn_error(e))
    }

    /// Starts the command with the given standard streams (its own `input` is ignored): for
    /// a process that must outlive batchci, whose streams are files or another's pipe.
    pub fn spawn_with(&self, stdin: Stdio, stdout: Stdio, stderr: Stdio) -> std::io::Result<Child> {
        let mut command = self.command().map_err(|e| self.spawn_error(e))?;
        command.stdin(stdin).stdout(stdout).stderr(stderr);
        command.spawn().map_err(|e| self.spawn_error(e))
    }

    /// Says which was missing: the program, or the directory it was to run in (the kernel
    /// reports both as `No such file or directory`).
    fn spawn_error(&self, error: std::io::Error) -> std::io::Error {
        let program = self.program.display();
        let message = if !self.cwd.is_dir() {
            format!(
                "cannot start {program} in {}: that directory does not exist",
                self.cwd.display()
            )
        } else if error.kind() == std::io::ErrorKind::NotFound {
            let path = self
                .env
                .iter()
                .find(|(key, _)| key == "PATH")
                .map(|(_, value)| value.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("cannot start {program}: not found (PATH={path})")
        } else {
            format!("cannot start {program}: {error}")
        };
        std::io::Error::new(error.kind(), message)
    }
}

/// The first executable regular file named `program` in the directories of `path`, as
/// `execvp` searches them: an empty entry is the working directory, and so are relative
/// entries taken from it (the child's, `cwd`).
fn find_in_path(program: &Path, path: &std::ffi::OsStr, cwd: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path).find_map(|dir| {
        let candidate = cwd.join(dir).join(program);
        let metadata = std::fs::metadata(&candidate).ok()?;
        (metadata.is_file() && metadata.permissions().mode() & 0o111 != 0).then_some(candidate)
    })
}

/// `word` as a shell would need it written: bare when it has only safe characters.
pub fn display_word(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if safe {
        word.to_string()
    } else {
        shell_words::quote(word).into_owned()
    }
}

/// A finished command's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedOutput {
    /// Exit code, or 128 + signal.
    pub code: i32,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

impl CapturedOutput {
    /// Standard output as text, lossily.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text, lossily.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// A running command whose stdout and stderr arrive on one pipe.
#[derive(Debug)]
pub struct MergedChild {
    /// The process.
    pub child: Child,
    /// The merged output.
    pub output: tokio::net::unix::pipe::Receiver,
}

impl MergedChild {
    /// Streams all output into `sink`, then waits for the exit.
    pub async fn stream_to_end(mut self, mut sink: impl FnMut(&[u8])) -> std::io::Result<i32> {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match self.output.read(&mut buffer).await {
                Ok(0) => break,
                Ok(n) => sink(&buffer[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(exit_code(self.child.wait().await?))
    }
}

/// The shell convention for an exit status: the code, or 128 + the signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    }
}

/// [`exit_code`] of a wait that may have failed.
pub fn exit_code_of(status: std::io::Result<ExitStatus>) -> Option<i32> {
    status.ok().map(exit_code)
}

/// Sends SIGTERM to process group `pgid`, then SIGKILL after `grace` if it is still there.
/// Returns once `child` has exited.
pub async fn terminate_group(child: &mut Child, grace: Duration) -> std::io::Result<ExitStatus> {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    let Some(pid) = child.id() else {
        return child.wait().await;
    };
    let group = Pid::from_raw(pid as i32);
    let _ = killpg(group, Signal::SIGTERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => {
            // The leader is gone; make sure nothing it started lingers.
            let _ = killpg(group, Signal::SIGKILL);
            status
        }
        Err(_) => {
            let _ = killpg(group, Signal::SIGKILL);
            child.wait().await
        }
    }
}

/// `PATH` for commands: the scheduler's bin directory first when configured.
pub fn search_path(scheduler_bin: Option<&Path>) -> OsString {
    let inherited = std::env::var_os("PATH").unwrap_or_else(|| {
        OsString::from("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    });
    match scheduler_bin {
        Some(bin) => {
            let mut path = bin.as_os_str().to_os_string();
            path.push(":");
            path.push(inherited);
            path
        }
        None => inherited,
    }
}

/// The environment of scheduler commands: PATH (`scheduler_bin` first), the basics of a login
/// (the user's own `HOME USER LOGNAME SHELL` for a command run as `run_as`), the variables
/// named in `env_vars` taken from batchci's own environment, and the runner's own
/// `scheduler_environment` pairs.
pub fn scheduler_env(
    batch: &crate::config::BatchConfig,
    run_as: Option<&RunAs>,
) -> Vec<(OsString, OsString)> {
    let mut env = vec![(
        OsString::from("PATH"),
        search_path(batch.scheduler_bin.as_deref()),
    )];
    let own: &[&str] = match run_as {
        Some(run_as) => {
            env.extend(run_as.login_env());
            &["LANG", "TZ"]
        }
        None => &["HOME", "USER", "LOGNAME", "LANG", "TZ"],
    };
    let basics: Vec<String> = own.iter().map(|key| key.to_string()).collect();
    for key in basics.iter().chain(&batch.env_vars) {
        if run_as.is_some() && env.iter().any(|(k, _)| k == key.as_str()) {
            continue;
        }
        if let Some(value) = std::env::var_os(key) {
            env.push((key.into(), value));
        }
    }
    for (key, value) in batch
        .scheduler_environment
        .iter()
        .filter_map(|pair| pair.split_once('='))
    {
        env.retain(|(k, _)| k != key);
        env.push((key.into(), value.into()));
    }
    env
}

/// Resolves `program` against `path` the way `execvp` would, for a clear error when missing.
pub fn resolve(program: &str, path: &OsString) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_display_form_is_quoted_for_pasting() {
        let spec = CommandSpec::new("sbatch", ["--wait", "--job-name=my job", "x.sh"], "/tmp");
        assert_eq!(spec.display(), "sbatch --wait '--job-name=my job' x.sh");
    }

    #[tokio::test]
    async fn merged_output_keeps_order_and_the_environment_is_only_what_was_given() {
        let spec = CommandSpec::new(
            "/bin/sh",
            [
                "-c",
                "echo out; echo err >&2; echo \"$ONLY:${HOME:-unset}\"; exit 3",
            ],
            "/",
        )
        .env("ONLY", "given");
        let child = spec.spawn_merged().unwrap();
        let mut output = Vec::new();
        let code = child
            .stream_to_end(|b| output.extend_from_slice(b))
            .await
            .unwrap();
        assert_eq!(code, 3);
        assert_eq!(
            String::from_utf8(output).unwrap(),
            "out\nerr\ngiven:unset\n"
        );
    }

    #[tokio::test]
    async fn a_signalled_process_reports_128_plus_the_signal_and_the_whole_group_goes() {
        let spec = CommandSpec::new("/bin/sh", ["-c", "sleep 100 & sleep 100; echo never"], "/");
        let mut child = spec.spawn_piped().unwrap();
        let status = terminate_group(&mut child, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(exit_code(status), 128 + 15);
    }

    fn write_program(dir: &Path, name: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, "#!/bin/sh\necho \"$0\"\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A bare program name is resolved in the command's own PATH before the start (so that
    /// the standard library can use `posix_spawn`): the first executable regular file wins,
    /// as with `execvp`; a file without execute bits or a directory of that name is passed
    /// over; an empty entry is the working directory.
    #[tokio::test]
    async fn a_bare_program_is_found_in_the_commands_own_path_as_execvp_would() {
        let root = tempfile::tempdir().unwrap();
        let (plain, dir_named, good, later, cwd) = (
            root.path().join("plain"),
            root.path().join("dir-named"),
            root.path().join("good"),
            root.path().join("later"),
            root.path().join("cwd"),
        );
        for dir in [&plain, &dir_named, &good, &later, &cwd] {
            std::fs::create_dir(dir).unwrap();
        }
        write_program(&plain, "sbatch", 0o644);
        std::fs::create_dir(dir_named.join("sbatch")).unwrap();
        write_program(&good, "sbatch", 0o755);
        write_program(&later, "sbatch", 0o755);
        write_program(&cwd, "squeue", 0o755);
        let path = std::env::join_paths([&plain, &dir_named, &good, &later]).unwrap();

        let spec = CommandSpec::new("sbatch", Vec::<String>::new(), &cwd).env("PATH", &path);
        assert_eq!(spec.resolved_program(), good.join("sbatch"));
        let output = spec.output().await.unwrap();
        assert_eq!(
            output.stdout_text(),
            format!("{}\n", good.join("sbatch").display())
        );
        // What the log shows is still what a person would type.
        assert_eq!(spec.display(), "sbatch");

        let here = CommandSpec::new("squeue", Vec::<String>::new(), &cwd)
            .env("PATH", format!("/nonexistent::{}", later.display()));
        assert_eq!(here.resolved_program(), cwd.join("squeue"));

        let named = CommandSpec::new("./sbatch", Vec::<String>::new(), &good).env("PATH", &path);
        assert_eq!(named.resolved_program(), PathBuf::from("./sbatch"));
        let no_path = CommandSpec::new("sbatch", Vec::<String>::new(), &cwd);
        assert_eq!(no_path.resolved_program(), PathBuf::from("sbatch"));
    }

    #[tokio::test]
    async fn a_missing_program_names_itself_and_the_path_searched() {
        let spec = CommandSpec::new("sbatch", Vec::<String>::new(), "/").env("PATH", "/opt/none");
        let error = spec.output().await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot start sbatch: not found (PATH=/opt/none)"
        );
    }

    #[tokio::test]
    async fn a_missing_working_directory_is_named_not_blamed_on_the_program() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("checkout");
        let spec = CommandSpec::new("/bin/true", Vec::<String>::new(), &gone);
        let error = spec.output().await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot start /bin/true in {}: that directory does not exist",
                gone.display()
            )
        );
    }
}
