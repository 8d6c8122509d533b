//! `docker+slurm`: Slurm hands out the resources, Docker runs the build.
//!
//! ```text
//! srun --job-name=batchci-<token>-job-<id> --ntasks=1 --time=<build timeout + overhead>
//!      [--partition --qos --cpus-per-task --mem] <allocation script>      (stdin kept open)
//! docker -H tcp://<node>:2376 [--tlsverify ...] run --interactive --name=... \
//!      --cpuset-cpus=<allocated CPUs> --memory=<allocated memory> ... <image> sh -c <shell>
//! ```
//!
//! `prepare` starts the placeholder job and waits until its script reports the node and the
//! CPUs Slurm gave it ([`allocation`]); the wait does not count against the build's timeout.
//! The build's script then runs in a container on that node's Docker daemon ([`docker`]),
//! limited to those CPUs and that memory, with the job's project directory (and its `.tmp`
//! sibling) mounted at the same path (it must be on a file system the nodes share, as for
//! every batch executor). `cleanup`
//! removes the containers and ends the placeholder job, whatever happened before.

mod allocation;
pub(crate) mod custom;
mod docker;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use self::allocation::{Handle, Placeholder, Request, format_duration, srun_args};
use self::docker::{Container, Daemon, memory_limits};
use super::{Backend, JobContext, JobFailure, StepOutcome};
use crate::command::RunAs;
use crate::config::RunnerConfig;

/// How the executor runs a build, for `batchci check`.
pub(crate) const HOW: &str = "srun holds the allocation (placeholder job); docker run on the allocated node, limited to its CPUs and memory";

/// The programs it needs.
pub(crate) const PROGRAMS: &[&str] = &["srun", "squeue", "scancel", "docker"];

/// Default minutes added to the build timeout for the placeholder's Slurm time limit. None:
/// a job with GitLab's default hour must fit a partition whose limit is an hour; should Slurm
/// end the placeholder before the build, the build is stopped and says so.
const DEFAULT_OVERHEAD_MINUTES: u64 = 0;

/// Default seconds between progress lines while the allocation is pending.
const DEFAULT_PROGRESS_SECONDS: u64 = 30;

/// Placeholder jobs of this process that have no allocation yet: from the moment GitLab
/// hands out the job ([`claim`]) until its placeholder runs or fails. `squeue` cannot show a
/// job that srun has not submitted yet; without these, a runner would ask for more jobs in
/// that gap than `max_pending_builds` allows.
static ALLOCATING: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn allocating() -> std::sync::MutexGuard<'static, std::collections::BTreeSet<String>> {
    ALLOCATING.lock().unwrap_or_else(|e| e.into_inner())
}

/// The placeholder job name of CI job `job_id` of `runner`.
fn placeholder_name(runner: &RunnerConfig, job_id: u64) -> String {
    format!("{}{job_id}", name_prefix(runner))
}

/// CI job `job_id`, just handed to `runner`, counted as waiting for its allocation until its
/// placeholder runs or this guard goes (the job task ends, whichever way).
#[derive(Debug)]
pub struct Claim(String);

impl Drop for Claim {
    fn drop(&mut self) {
        allocating().remove(&self.0);
    }
}

pub(crate) fn claim(runner: &RunnerConfig, job_id: u64) -> Claim {
    let name = placeholder_name(runner, job_id);
    allocating().insert(name.clone());
    Claim(name)
}

/// The job's placeholder runs, failed, or was never started.
fn settled(runner: &RunnerConfig, job_id: u64) {
    allocating().remove(&placeholder_name(runner, job_id));
}

/// The `docker+slurm` backend of one job.
#[derive(Debug, Default)]
pub struct DockerSlurmBackend {
    placeholder: Option<Placeholder>,
    daemon: Option<Daemon>,
    handle: Option<Handle>,
    image: String,
    timeout: Option<Duration>,
    run_as: Option<RunAs>,
    containers: Vec<String>,
    /// The job's network, once its services run.
    network: Option<String>,
    services_started: bool,
}

/// The placeholder jobs' name prefix of a runner: `batchci-<token>-job-`.
fn name_prefix(runner: &RunnerConfig) -> String {
    format!("batchci-{}-job-", crate::stages::short_token(&runner.token))
}

fn run_as(runner: &RunnerConfig) -> Result<Option<RunAs>, JobFailure> {
    match runner.slurm.user.as_deref().filter(|u| !u.is_empty()) {
        None => Ok(None),
        Some(user) => RunAs::lookup(user, runner.slurm.group.as_deref())
            .map(Some)
            .map_err(|e| JobFailure::system(format!("[runners.slurm] user: {e}"))),
    }
}

/// The placeholder job of CI job `job_id` of `runner`, for a build of `timeout`.
fn request(runner: &RunnerConfig, job_id: u64, timeout: Duration) -> Request {
    let overhead = runner
        .slurm
        .overhead_time
        .unwrap_or(DEFAULT_OVERHEAD_MINUTES);
    Request {
        name: placeholder_name(runner, job_id),
        time_minutes: timeout.as_secs().div_ceil(60) + overhead,
        timeout: runner.slurm.allocation_timeout.map(Duration::from_secs),
        progress_interval: Duration::from_secs(
            runner
                .slurm
                .allocation_progress_interval
                .unwrap_or(DEFAULT_PROGRESS_SECONDS)
                .max(1),
        ),
        abort_on_expected_timeout: runner.slurm.abort_on_expected_allocation_timeout,
    }
}

/// The build timeout: the job's, within `[runners.slurm] timeout` (minutes), shortened to it
/// with `truncate_job_timeout`, refused without.
fn build_timeout(runner: &RunnerConfig, job: Duration) -> Result<Duration, JobFailure> {
    let Some(minutes) = runner.slurm.timeout else {
        return Ok(job);
    };
    let limit = Duration::from_secs(minutes.saturating_mul(60));
    if job <= limit {
        Ok(job)
    } else if runner.slurm.truncate_job_timeout {
        Ok(limit)
    } else {
        Err(JobFailure::script(
            format!(
                "the job's timeout of {} is longer than this runner allows ({minutes}m, [runners.slurm] timeout); give the job or project a shorter timeout",
                format_duration(job)
            ),
            None,
        ))
    }
}

impl DockerSlurmBackend {
    /// Everything checked and decided before Slurm is asked: programs, run-as user, build
    /// timeout, memory, image. Returns the placeholder job's request.
    fn plan(&mut self, ctx: &JobContext) -> Result<Request, JobFailure> {
        let runner = &ctx.runner;
        let path = crate::command::search_path(runner.batch.scheduler_bin.as_deref());
        let docker_program = runner
            .docker
            .docker_program
            .clone()
            .unwrap_or_else(|| "docker".into());
        for program in ["srun", "squeue", "scancel"]
            .into_iter()
            .chain(std::iter::once(docker_program.to_str().unwrap_or("docker")))
        {
            if crate::command::resolve(program, &path).is_none() {
                return Err(JobFailure::system(format!(
                    "{program} not found (PATH={})",
                    path.to_string_lossy()
                )));
            }
        }
        self.run_as = run_as(runner)?;
        let timeout = build_timeout(runner, ctx.job.timeout())?;
        self.timeout = Some(timeout);
        memory_limits(&runner.slurm)?;
        self.image = ctx
            .job
            .image
            .as_ref()
            .map(|image| image.name.clone())
            .filter(|name| !name.is_empty())
            .or_else(|| runner.docker.image.clone())
            .ok_or_else(|| {
                JobFailure::script(
                    "the job names no image and the runner has no default ([runners.docker] image)",
                    None,
                )
            })?;
        if self.image.starts_with('-') || self.image.contains(char::is_whitespace) {
            return Err(JobFailure::script(
                format!("{:?} is not an image name", self.image),
                None,
            ));
        }
        Ok(request(runner, ctx.job.id, timeout))
    }

    /// Takes the allocation `handle` of Slurm job `job_id`: the node's daemon must answer.
    async fn attach(
        &mut self,
        ctx: &JobContext,
        handle: Handle,
        job_id: &str,
        quiet: bool,
    ) -> Result<(), JobFailure> {
        let daemon = Daemon::of(&ctx.runner.docker, &handle.hostname)?;
        self.record(ctx, job_id, Some(&daemon));
        if !quiet {
            daemon.check(ctx).await?;
            ctx.log.info(&format!(
                "Slurm job {job_id} holds CPUs {} on {}; the build runs in {} on {}",
                handle.cpuset, handle.hostname, self.image, daemon.host
            ));
        }
        self.daemon = Some(daemon);
        self.handle = Some(handle);
        Ok(())
    }
}

impl Backend for DockerSlurmBackend {
    async fn prepare(
        &mut self,
        ctx: &JobContext,
        cancel: &CancellationToken,
    ) -> Result<(), JobFailure> {
        let request = self.plan(ctx)?;
        self.record(ctx, "", None);
        let placeholder = self.placeholder.insert(Placeholder::start(
            ctx,
            srun_args(&ctx.runner.slurm, &request),
            &request.name,
            self.run_as.as_ref(),
        )?);
        let waited = placeholder
            .wait_for_handle(ctx, &request, self.run_as.as_ref(), cancel)
            .await;
        settled(&ctx.runner, ctx.job.id);
        let handle = waited?;
        let job_id = placeholder.job_id.clone().unwrap_or_default();
        self.attach(ctx, handle, &job_id, false).await
    }

    fn build_timeout(&self, ctx: &JobContext) -> Duration {
        self.timeout.unwrap_or_else(|| ctx.job.timeout())
    }

    fn runs_all_user_stages(&self) -> bool {
        true
    }

    async fn run_step(
        &mut self,
        ctx: &JobContext,
        script: &[u8],
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, JobFailure> {
        let (Some(daemon), Some(handle)) = (self.daemon.clone(), self.handle.clone()) else {
            return Err(JobFailure::system("the build has no allocation"));
        };
        let (memory, kernel_memory) = memory_limits(&ctx.runner.slurm)?;
        if !self.services_started {
            self.services_started = true;
            self.start_services(ctx, &daemon, &handle).await?;
        }
        let name = self.next_container(ctx);
        self.containers.push(name.clone());
        let job_id = self
            .placeholder
            .as_ref()
            .and_then(|p| p.job_id.clone())
            .unwrap_or_default();
        self.record(ctx, &job_id, Some(&daemon));
        let args = daemon.run_args(&Container {
            name: &name,
            job_id: ctx.job.id,
            image: &self.image,
            cpuset: &handle.cpuset,
            memory: memory.clone(),
            kernel_memory,
            docker: &ctx.runner.docker,
            workdir: &ctx.dirs.project_dir,
            network: self.network.as_deref(),
        });
        let running = daemon
            .command(ctx, args)
            .spawn_merged_with_script(script)
            .await
            .map_err(|e| JobFailure::system(e.to_string()))?;
        let log = ctx.log.clone();
        let tail = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let kept = tail.clone();
        let mut stream = Box::pin(running.stream_to_end(move |bytes| {
            log.write(bytes);
            let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
            kept.extend_from_slice(bytes);
            let excess = kept.len().saturating_sub(4096);
            kept.drain(..excess);
        }));
        let grace = ctx.kill_timeout.max(Duration::from_secs(1));
        // The allocation must outlast the build: Slurm may end the placeholder (its time
        // limit, preemption, an admin's scancel) and give its CPUs to another job.
        let placeholder_ended = async {
            match self.placeholder.as_mut() {
                Some(placeholder) => placeholder.ended().await,
                None => std::future::pending().await,
            }
        };
        let code = tokio::select! {
            result = &mut stream => result.map_err(|e| JobFailure::system(format!("docker failed: {e}")))?,
            () = cancel.cancelled() => {
                daemon.remove(ctx, &name).await;
                let _ = tokio::time::timeout(grace, &mut stream).await;
                return Ok(StepOutcome::Cancelled);
            }
            code = placeholder_ended => {
                daemon.remove(ctx, &name).await;
                let _ = tokio::time::timeout(grace, &mut stream).await;
                return Err(JobFailure::system(format!(
                    "Slurm job {job_id} ended during the build (srun exit code {}); the build was stopped",
                    code.map_or("unknown".to_string(), |c| c.to_string())
                )));
            }
        };
        let said =
            String::from_utf8_lossy(&tail.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
        match code {
            // 125 is Docker's own failure only when Docker said so; a script may exit 125 too.
            125 if said.contains("docker: ") || said.contains("Unable to find image") => {
                Err(docker_refusal(&said, &self.image, &daemon.host))
            }
            // The kernel kills the largest process of the container; the exit code is what the
            // script makes of that, so Docker's record says whether it was the memory limit.
            code if code != 0 && daemon.oom_killed(ctx, &name).await => Err(JobFailure::script(
                format!(
                    "the build used more memory than its allocation ({}) and was killed (out of memory)",
                    memory.unwrap_or_else(|| "no limit".into())
                ),
                Some(code),
            )),
            code => Ok(StepOutcome::Exited(code)),
        }
    }

    async fn cleanup(&mut self, ctx: &JobContext) {
        settled(&ctx.runner, ctx.job.id);
        if let Some(daemon) = &self.daemon {
            for name in &self.containers {
                daemon.remove(ctx, name).await;
            }
            if let Some(network) = &self.network {
                daemon.remove_network(ctx, network).await;
            }
        }
        if let Some(placeholder) = self.placeholder.take() {
            placeholder.release(ctx, self.run_as.as_ref()).await;
        }
        if let Some(store) = &ctx.state {
            store.remove(&ctx.runner.url, ctx.job.id);
        }
    }
}

impl DockerSlurmBackend {
    /// Starts the job's services (`services:`) on a network of the job's own, each under its
    /// aliases and, with `resource_limits_for_services`, within the allocation's CPUs and
    /// memory. Their containers are the job's, removed with it.
    async fn start_services(
        &mut self,
        ctx: &JobContext,
        daemon: &Daemon,
        handle: &Handle,
    ) -> Result<(), JobFailure> {
        if ctx.job.services.is_empty() {
            return Ok(());
        }
        let network = placeholder_name(&ctx.runner, ctx.job.id);
        let create = daemon.command(ctx, ["network", "create", network.as_str()]);
        let created = create
            .output()
            .await
            .map_err(|e| JobFailure::system(e.to_string()))?;
        if created.code != 0 {
            return Err(JobFailure::system(format!(
                "{} failed (exit code {}): {}",
                create.display(),
                created.code,
                created.stderr_text().trim()
            )));
        }
        self.network = Some(network.clone());
        let job_id = self
            .placeholder
            .as_ref()
            .and_then(|p| p.job_id.clone())
            .unwrap_or_default();
        let (memory, _) = memory_limits(&ctx.runner.slurm)?;
        for (index, service) in ctx.job.services.iter().enumerate() {
            let name = format!(
                "{}-svc-{}",
                placeholder_name(&ctx.runner, ctx.job.id),
                index + 1
            );
            self.containers.push(name.clone());
            self.record(ctx, &job_id, Some(daemon));
            let limits = ctx
                .runner
                .docker
                .resource_limits_for_services
                .then_some((handle.cpuset.as_str(), memory.as_deref()));
            let spec = daemon.command(
                ctx,
                docker::service_args(service, &name, ctx.job.id, &network, limits),
            );
            ctx.log.info(&format!(
                "Starting service {} as {}",
                service.name,
                docker::service_aliases(service).join(", ")
            ));
            let started = spec
                .output()
                .await
                .map_err(|e| JobFailure::system(e.to_string()))?;
            if started.code != 0 {
                let said = started.stderr_text();
                let said = said.trim();
                return Err(if started.code == 125 {
                    docker_refusal(said, &service.name, &daemon.host)
                } else {
                    JobFailure::system(format!(
                        "service {} did not start (docker exit code {}): {said}",
                        service.name, started.code
                    ))
                });
            }
        }
        Ok(())
    }

    /// The name of the job's next container (`batchci-<token>-job-<id>-<n>`).
    fn next_container(&self, ctx: &JobContext) -> String {
        format!(
            "{}-{}",
            placeholder_name(&ctx.runner, ctx.job.id),
            self.containers.len() + 1
        )
    }

    /// Records the Slurm job and the containers to remove should batchci die before cleanup:
    /// before srun starts (the job then has only its name), again once it runs, and before
    /// each container. Runner mode only: under the custom executor every stage is a process
    /// of its own, and the job's `docker-slurm.json` is what `cleanup` releases from.
    fn record(&self, ctx: &JobContext, job_id: &str, daemon: Option<&Daemon>) {
        let Some(store) = &ctx.state else { return };
        if ctx.gitlab.is_none() {
            return;
        }
        let mut submission = ctx.record();
        submission.scheduler_job_id = job_id.to_string();
        let argv = |spec: crate::command::CommandSpec| -> Vec<String> {
            std::iter::once(spec.program.display().to_string())
                .chain(spec.args.iter().map(|a| a.to_string_lossy().into_owned()))
                .collect()
        };
        if let Some(daemon) = daemon {
            for name in &self.containers {
                submission
                    .leftovers
                    .push(argv(daemon.command(ctx, ["rm", "--force", name.as_str()])));
            }
            if let Some(network) = &self.network {
                submission.leftovers.push(argv(
                    daemon.command(ctx, ["network", "rm", network.as_str()]),
                ));
            }
        }
        let name = placeholder_name(&ctx.runner, ctx.job.id);
        submission
            .leftovers
            .push(vec!["scancel".into(), format!("--name={name}")]);
        if let Err(error) = store.record(&submission) {
            ctx.log
                .warning(&format!("cannot record Slurm job {job_id}: {error}"));
        }
    }
}

/// docker's exit code 125: the daemon refused to run the container. A missing image is the
/// job's to fix; anything else is the node's.
fn docker_refusal(said: &str, image: &str, host: &str) -> JobFailure {
    let last = said
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("See '"))
        .unwrap_or("")
        .to_string();
    let missing = [
        "Unable to find image",
        "pull access denied",
        "No such image",
        "manifest unknown",
        "not found: manifest",
    ];
    if missing.iter().any(|m| said.contains(m)) {
        JobFailure::script(
            format!("the image {image} is not available to the Docker daemon at {host}: {last}"),
            None,
        )
    } else {
        JobFailure::system(format!(
            "the Docker daemon at {host} did not run the container (docker exit code 125): {last}"
        ))
    }
}

/// Whether `runner` may ask GitLab for another job: fewer than `max_pending_builds` of its
/// placeholder jobs pending in its partition. Any error of `squeue` lets it ask (the
/// concurrency limit still holds), and is logged.
pub(crate) async fn can_take_job(runner: &RunnerConfig) -> bool {
    let Some(limit) = runner.slurm.max_pending_builds else {
        return true;
    };
    let mut args = vec![
        "--noheader".to_string(),
        "--states=PENDING".to_string(),
        "--format=%j".to_string(),
    ];
    if let Some(partition) = &runner.slurm.partition {
        args.push(format!("--partition={partition}"));
    }
    let mut spec = crate::command::CommandSpec::new("squeue", args, "/");
    let run_as = run_as(runner).ok().flatten();
    spec.env = super::scheduler_env(runner, run_as.as_ref());
    spec = spec.run_as(run_as.as_ref());
    let prefix = name_prefix(runner);
    match spec.output().await {
        Ok(out) if out.code == 0 => {
            let mut waiting: std::collections::BTreeSet<String> = out
                .stdout_text()
                .lines()
                .map(str::trim)
                .filter(|name| name.starts_with(&prefix))
                .map(str::to_string)
                .collect();
            waiting.extend(
                allocating()
                    .iter()
                    .filter(|n| n.starts_with(&prefix))
                    .cloned(),
            );
            let pending = waiting.len();
            if pending >= limit {
                tracing::debug!(runner = %runner.name, pending, limit, "max_pending_builds reached; not asking for a job");
            }
            pending < limit
        }
        Ok(out) => {
            tracing::warn!(runner = %runner.name, code = out.code, stderr = %out.stderr_text().trim(), "squeue failed; counting only this process's pending allocations");
            allocating()
                .iter()
                .filter(|n| n.starts_with(&prefix))
                .count()
                < limit
        }
        Err(error) => {
            tracing::warn!(runner = %runner.name, %error, "squeue failed; counting only this process's pending allocations");
            allocating()
                .iter()
                .filter(|n| n.starts_with(&prefix))
                .count()
                < limit
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner(extra: &str) -> RunnerConfig {
        let text = format!(
            "[[runners]]\nname = \"d\"\nurl = \"http://127.0.0.1:9\"\ntoken = \"glrt-abcdefgh123\"\nexecutor = \"docker+slurm\"\n[runners.slurm]\n{extra}"
        );
        crate::config::Config::parse(std::path::Path::new("t.toml"), &text)
            .unwrap()
            .runners
            .remove(0)
    }

    #[test]
    fn the_build_timeout_is_the_jobs_within_the_runners() {
        let hour = Duration::from_secs(3600);
        assert_eq!(build_timeout(&runner(""), hour).unwrap(), hour);
        assert_eq!(
            build_timeout(&runner("timeout = 65\n"), hour).unwrap(),
            hour
        );
        let truncated = runner("timeout = 30\ntruncate_job_timeout = true\n");
        assert_eq!(
            build_timeout(&truncated, hour).unwrap(),
            Duration::from_secs(1800)
        );
        let refused = build_timeout(&runner("timeout = 30\n"), hour).unwrap_err();
        assert_eq!(refused.reason, super::super::FailureReason::ScriptFailure);
        assert_eq!(
            refused.message,
            "the job's timeout of 1h0m is longer than this runner allows (30m, [runners.slurm] timeout); give the job or project a shorter timeout"
        );
    }

    /// The proposal's sample configuration (docs/examples/docker-slurm.toml) means what its
    /// comments say: each runner's placeholder asks for its partition, QoS, CPUs, memory and
    /// the build timeout plus the overhead; the first shortens a too-long job timeout, the
    /// second refuses it.
    #[test]
    fn the_sample_configuration_means_what_it_says() {
        let text = include_str!("../../../../docs/examples/docker-slurm.toml");
        let config =
            crate::config::Config::parse(std::path::Path::new("docker-slurm.toml"), text).unwrap();
        let [big, small] = &config.runners[..] else {
            panic!("two runners")
        };
        let two_hours = Duration::from_secs(7200);
        let request = |runner: &RunnerConfig, timeout: Duration| request(runner, 1, timeout);
        let timeout = build_timeout(big, two_hours).unwrap();
        assert_eq!(timeout, Duration::from_secs(65 * 60));
        assert_eq!(
            srun_args(&big.slurm, &request(big, timeout)),
            [
                "--job-name=batchci--job-1",
                "--ntasks=1",
                "--time=70",
                "--partition=gitlab-ci",
                "--qos=2c",
                "--cpus-per-task=4",
                "--mem=4G",
                "/cluster/bin/ciscript.sh"
            ]
        );
        assert_eq!(
            memory_limits(&big.slurm).unwrap(),
            (Some("4096m".into()), Some("4096m".into()))
        );
        assert_eq!(big.limit, 30);
        assert_eq!(big.slurm.max_pending_builds, Some(1));
        assert!(big.docker.tls_verify && big.docker.resource_limits_for_services);

        assert!(build_timeout(small, two_hours).is_err());
        let timeout = build_timeout(small, Duration::from_secs(20 * 60)).unwrap();
        let args = srun_args(&small.slurm, &request(small, timeout));
        assert_eq!(
            &args[2..7],
            [
                "--time=25",
                "--partition=gitlab_ci",
                "--qos=1c",
                "--cpus-per-task=1",
                "--mem=2G"
            ]
        );
        assert!(request(small, timeout).abort_on_expected_timeout);
        assert_eq!(small.slurm.max_pending_builds, Some(5));
    }

    #[test]
    fn placeholder_jobs_are_named_after_runner_and_job() {
        assert_eq!(name_prefix(&runner("")), "batchci-abcdefgh-job-");
    }

    #[test]
    fn a_missing_image_is_the_jobs_to_fix() {
        let said = "Unable to find image 'nope:latest' locally\ndocker: Error response from daemon: pull access denied for nope, repository does not exist or may require 'docker login': denied: requested access to the resource is denied.\nSee 'docker run --help'.\n";
        let failure = docker_refusal(said, "nope", "tcp://n:2376");
        assert_eq!(failure.reason, super::super::FailureReason::ScriptFailure);
        assert!(
            failure
                .message
                .ends_with("requested access to the resource is denied."),
            "{}",
            failure.message
        );
        let other = docker_refusal(
            "docker: Error response from daemon: Requested CPUs are not available.\n",
            "alpine",
            "tcp://n:2376",
        );
        assert_eq!(
            other.reason,
            super::super::FailureReason::RunnerSystemFailure
        );
    }
}
