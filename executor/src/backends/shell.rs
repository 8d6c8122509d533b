//! `shell`: the job runs on the executor's host in a clean login shell.
//!
//! The script is fed to `/bin/bash --login` on standard input, with an empty environment but
//! for a few basics (HOME, USER, LOGNAME, SHELL, LANG): the job's variables come from the
//! script itself, nothing of batchci's own environment (tokens, configuration) reaches it. This
//! is the same shell batchci uses for the stages that always run on the host (`after_script`).

use tokio_util::sync::CancellationToken;

use super::{Backend, JobContext, JobFailure, StepOutcome};
use crate::command::{CommandSpec, Input};

/// The `shell` backend.
#[derive(Debug, Default)]
pub struct ShellBackend;

impl Backend for ShellBackend {
    async fn prepare(
        &mut self,
        _ctx: &JobContext,
        _cancel: &CancellationToken,
    ) -> Result<(), JobFailure> {
        Ok(())
    }

    async fn run_step(
        &mut self,
        ctx: &JobContext,
        script: &[u8],
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, JobFailure> {
        run_login_shell(ctx, script, cancel).await
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
        .run_as(ctx.run_as.as_ref());
    match &ctx.run_as {
        // The user's own login, not batchci's.
        Some(run_as) => spec
            .env
            .extend(run_as.login_env().into_iter().filter(|(k, _)| k != "SHELL")),
        None => {
            for key in ["HOME", "USER", "LOGNAME"] {
                if let Some(value) = std::env::var_os(key) {
                    spec = spec.env(key, value);
                }
            }
        }
    }
    spec = spec.env("SHELL", "/bin/bash");
    if let Some(value) = std::env::var_os("LANG") {
        spec = spec.env("LANG", value);
    }
    let running = spec
        .spawn_merged_with_script(script)
        .await
        .map_err(|e| JobFailure::system(e.to_string()))?;
    let log = ctx.log.clone();
    let group = running
        .child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .map(nix::unistd::Pid::from_raw);
    let mut stream = Box::pin(running.stream_to_end(move |bytes| log.write(bytes)));
    tokio::select! {
        result = &mut stream => {
            let code = result.map_err(|e| JobFailure::system(format!("job shell failed: {e}")))?;
            Ok(StepOutcome::Exited(code))
        }
        () = cancel.cancelled() => {
            stop_group(group, &mut stream, ctx.kill_timeout).await;
            Ok(StepOutcome::Cancelled)
        }
    }
}

/// SIGTERM to the job's process group; SIGKILL to whatever is left of it after `grace`.
///
/// The shell is reaped while it is waited for (`stream`): a dead shell that nobody reaps stays
/// a zombie, and a zombie still counts as a member of its group, so probing the group alone
/// would wait out the whole grace for a job that ended at once.
async fn stop_group(
    group: Option<nix::unistd::Pid>,
    stream: &mut (impl std::future::Future<Output = std::io::Result<i32>> + Unpin),
    grace: std::time::Duration,
) {
    use nix::sys::signal::{Signal, killpg};
    let Some(group) = group else {
        let _ = stream.await;
        return;
    };
    let deadline = tokio::time::Instant::now() + grace;
    let _ = killpg(group, Signal::SIGTERM);
    if tokio::time::timeout_at(deadline, &mut *stream)
        .await
        .is_err()
    {
        let _ = killpg(group, Signal::SIGKILL);
        let _ = stream.await;
        return;
    }
    // The shell is gone and reaped; a child that left the output pipe but not the group (a
    // daemon of the job's) has the rest of the grace.
    while killpg(group, None).is_ok() {
        if tokio::time::Instant::now() >= deadline {
            let _ = killpg(group, Signal::SIGKILL);
            return;
        }
        tokio::time::sleep(LEFTOVER_POLL).await;
    }
}

/// How often a cancelled job's process group is checked for members that outlived its shell.
const LEFTOVER_POLL: std::time::Duration = std::time::Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::testing::context;
    use std::time::Duration;

    /// A cancelled job whose shell dies of the SIGTERM ends then, not when the grace runs out
    /// (it used to wait the whole grace: the unreaped shell kept its group alive as a zombie).
    #[tokio::test]
    async fn a_cancelled_job_ends_as_soon_as_its_shell_does() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, log) = context(dir.path(), Duration::from_secs(3600));
        let cancel = CancellationToken::new();
        let script = b"echo started\nsleep 300\necho never\n";

        let run = run_login_shell(&ctx, script, &cancel);
        let canceller = async {
            while !log.text().contains("started") {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            cancel.cancel();
        };
        // The bound only turns a regression into a failure instead of an hour-long hang.
        let (outcome, ()) = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(run, canceller)
        })
        .await
        .expect("the cancelled job ended long before its one-hour grace");

        assert_eq!(outcome, Ok(StepOutcome::Cancelled));
        assert_eq!(log.text(), "started\n");
    }
}
