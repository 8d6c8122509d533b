//! docker+slurm under gitlab-runner's custom executor, where every stage is its own process.
//!
//! `prepare` starts the placeholder job so that it outlives `prepare` itself
//! ([`Placeholder::start_detached`]) and waits for it; `run` runs a stage in a container on the
//! allocated node; `cleanup` removes the containers and ends the placeholder job. What one
//! stage hands the next lives in the job's private scratch directory
//! (`docker-slurm.json`), written before anything is waited for, so that a `prepare` killed
//! mid-wait still leaves `cleanup` what it needs.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::DockerSlurmBackend;
use super::allocation::{Handle, Placeholder, release_detached, srun_args};
use super::docker::Daemon;
use crate::backends::{Backend, JobContext, JobFailure, StepOutcome};

/// The file in the job's scratch directory.
const FILE: &str = "docker-slurm.json";

/// What the stages share.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    name: String,
    holder_pid: u32,
    srun_pid: u32,
    job_id: String,
    hostname: String,
    cpuset: String,
    containers: Vec<String>,
}

fn path(ctx: &JobContext) -> PathBuf {
    ctx.dirs.tmp_dir.join(FILE)
}

fn save(ctx: &JobContext, saved: &Saved) -> Result<(), JobFailure> {
    let path = path(ctx);
    let text = serde_json::to_vec_pretty(saved).map_err(|e| JobFailure::system(e.to_string()))?;
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|e| JobFailure::system(format!("cannot write {}: {e}", path.display())))
}

fn load(ctx: &JobContext) -> Result<Saved, JobFailure> {
    let path = path(ctx);
    let text = std::fs::read(&path).map_err(|e| {
        JobFailure::system(format!(
            "no allocation for this job ({}: {e}); did `prepare` run?",
            path.display()
        ))
    })?;
    serde_json::from_slice(&text)
        .map_err(|e| JobFailure::system(format!("{} is unreadable: {e}", path.display())))
}

/// `batchci custom prepare` for docker+slurm: allocates and waits for the allocation.
pub(crate) async fn prepare(
    ctx: &JobContext,
    cancel: &CancellationToken,
) -> Result<(), JobFailure> {
    let mut backend = DockerSlurmBackend::default();
    let request = backend.plan(ctx)?;
    crate::stages::create_private_dir(&ctx.dirs.tmp_dir).map_err(|e| {
        JobFailure::system(format!("cannot create {}: {e}", ctx.dirs.tmp_dir.display()))
    })?;
    let (mut placeholder, holder_pid, srun_pid) = Placeholder::start_detached(
        ctx,
        srun_args(&ctx.runner.slurm, &request),
        &request.name,
        backend.run_as.as_ref(),
        &ctx.dirs.tmp_dir,
    )?;
    let mut saved = Saved {
        name: request.name.clone(),
        holder_pid,
        srun_pid,
        ..Saved::default()
    };
    let waited = match save(ctx, &saved) {
        Ok(()) => {
            placeholder
                .wait_for_handle(ctx, &request, backend.run_as.as_ref(), cancel)
                .await
        }
        Err(error) => Err(error),
    };
    let attached = match waited {
        Ok(handle) => {
            saved.job_id = placeholder.job_id.clone().unwrap_or_default();
            saved.hostname = handle.hostname.clone();
            saved.cpuset = handle.cpuset.clone();
            match save(ctx, &saved) {
                Ok(()) => backend.attach(ctx, handle, &saved.job_id, false).await,
                Err(error) => Err(error),
            }
        }
        Err(error) => Err(error),
    };
    if attached.is_err() {
        placeholder.release(ctx, backend.run_as.as_ref()).await;
        let _ = std::fs::remove_file(path(ctx));
    }
    attached
}

/// `batchci custom run` of a stage that runs in the container.
pub(crate) async fn run(
    ctx: &JobContext,
    script: &[u8],
    cancel: &CancellationToken,
) -> Result<StepOutcome, JobFailure> {
    let mut saved = load(ctx)?;
    let mut backend = DockerSlurmBackend::default();
    backend.plan(ctx)?;
    backend.containers = std::mem::take(&mut saved.containers);
    let handle = Handle {
        hostname: saved.hostname.clone(),
        cpuset: saved.cpuset.clone(),
    };
    backend.attach(ctx, handle, &saved.job_id, true).await?;
    // The container's name is saved before it exists: a stage killed outright still leaves
    // it to `cleanup`, and the next stage takes the next name.
    saved.containers = backend.containers.clone();
    saved.containers.push(backend.next_container(ctx));
    save(ctx, &saved)?;
    let outcome = backend.run_step(ctx, script, cancel).await;
    saved.containers = backend.containers;
    save(ctx, &saved)?;
    outcome
}

/// `batchci custom cleanup` for docker+slurm: removes the containers and ends the allocation.
pub(crate) async fn cleanup(ctx: &JobContext) {
    let Ok(saved) = load(ctx) else { return };
    let run_as = super::run_as(&ctx.runner).ok().flatten();
    if !saved.hostname.is_empty()
        && let Ok(daemon) = Daemon::of(&ctx.runner.docker, &saved.hostname)
    {
        for name in &saved.containers {
            daemon.remove(ctx, name).await;
        }
    }
    release_detached(
        ctx,
        &saved.name,
        saved.holder_pid,
        saved.srun_pid,
        run_as.as_ref(),
    )
    .await;
    let _ = std::fs::remove_file(path(ctx));
}
