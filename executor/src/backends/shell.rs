//! `shell`: the job runs on the executor's host in a clean login shell.
//!
//! The script is fed to `/bin/bash --login` on standard input, with an empty environment but
//! for a few basics (HOME, USER, LOGNAME, SHELL, LANG): the job's variables come from the
//! script itself, nothing of batchci's own environment (tokens, configuration) reaches it. This
//! is the same shell batchci uses for the stages that always run on the host (`after_script`).

use std::path::Path;

use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::{Backend, JobContext, JobFailure, StepOutcome};
use crate::command::{CommandSpec, Input};

/// The `shell` backend.
#[derive(Debug, Default)]
pub struct ShellBackend;

impl Backend for ShellBackend {
    async fn prepare(&mut self, _ctx: &JobContext) -> Result<(), JobFailure> {
        Ok(())
    }

    async fn run_step(
        &mut self,
        ctx: &JobContext,
        script: &Path,
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, JobFailure> {
        let text = std::fs::read(script)
            .map_err(|e| JobFailure::system(format!("cannot read {}: {e}", script.display())))?;
        run_login_shell(ctx, &text, cancel).await
    }

    async fn cleanup(&mut self, _ctx: &JobContext) {}
}

/// Runs `script` in a clean `bash --login` on this host, streaming its output to the job log.
pub async fn run_login_shell(
    ctx: &JobContext,
    script: &[u8],
    cancel: &CancellationToken,
) -> Result<StepOutcome, JobFailure> {
    let mut spec = CommandSpec::new("/bin/bash", ["--login"], &ctx.dirs.tmp_dir)
        .input(Input::Piped)
        .run_as(ctx.run_as)
        .env("SHELL", "/bin/bash");
    for key in ["HOME", "USER", "LOGNAME", "LANG"] {
        if let Some(value) = std::env::var_os(key) {
            spec = spec.env(key, value);
        }
    }
    let mut running = spec
        .spawn_merged()
        .map_err(|e| JobFailure::system(e.to_string()))?;
    if let Some(mut stdin) = running.child.stdin.take() {
        // A script that exits early closes the pipe; that is its business, not an error.
        let _ = stdin.write_all(script).await;
        drop(stdin);
    }
    let log = ctx.log.clone();
    let pid = running.child.id();
    let mut stream = Box::pin(running.stream_to_end(move |bytes| log.write(bytes)));
    tokio::select! {
        result = &mut stream => {
            let code = result.map_err(|e| JobFailure::system(format!("job shell failed: {e}")))?;
            Ok(StepOutcome::Exited(code))
        }
        _ = cancel.cancelled() => {
            if let Some(pid) = pid {
                signal_group_then_kill(pid, ctx.kill_timeout).await;
            }
            // The group is gone: the output pipe closes and the wait returns.
            let _ = stream.await;
            Ok(StepOutcome::Cancelled)
        }
    }
}

/// SIGTERM to the group, SIGKILL after `grace` unless it already went away.
async fn signal_group_then_kill(pid: u32, grace: std::time::Duration) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    let group = Pid::from_raw(pid as i32);
    if killpg(group, Signal::SIGTERM).is_err() {
        return;
    }
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        // Signal 0 probes whether any member of the group is left.
        if killpg(group, None).is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = killpg(group, Signal::SIGKILL);
}
