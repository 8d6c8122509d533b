//! docker+slurm on the simulated cluster: a placeholder `srun` job holds the cores and the
//! memory, the build runs in a container of the allocated node's Docker daemon (the cluster's
//! fake `docker`), and the allocation is released whatever happens.

mod support;

use std::process::Command;

use conformance::custom_driver::{Driver, JobSpec, JobStatus as DriverStatus};
use mock_gitlab::JobStatus;
use support::cluster::Cluster;
use support::{Batchci, Site, plain_lines};

/// A docker+slurm runner on `cluster`: partition `gitlab-ci`, one CPU, 512 MB (unless `slurm`
/// sets `memory`), a progress line every second; `slurm` and `docker` are appended to their
/// tables.
fn start(site: &Site, cluster: &Cluster, slurm: &str, docker: &str) -> Batchci {
    // 512 MB unless the case sets its own memory.
    let memory = if slurm.contains("memory =") {
        ""
    } else {
        "  memory = \"512M\"\n"
    };
    let extra = format!(
        "{}\n  [runners.slurm]\n  partition = \"gitlab-ci\"\n  cpus = 1\n{memory}  allocation_progress_interval = 1\n{slurm}\n  [runners.docker]\n  image = \"alpine\"\n{docker}\n",
        cluster.batch_table("")
    );
    let config = site.write_config("docker+slurm", &extra);
    let env = cluster.batchci_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Batchci::run(&config, &env)
}

fn job(script: &str) -> String {
    format!("build:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n  script:\n{script}")
}

/// `squeue` rows (`%j %T`) of the cluster, all states the fake still shows.
fn slurm_jobs(cluster: &Cluster) -> Vec<String> {
    let out = Command::new("squeue")
        .envs(cluster.batchci_env())
        .args(["--noheader", "--states=all", "--format=%j %T"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Placeholder jobs (named `batchci-...`) that Slurm still runs or queues.
fn live_placeholders(cluster: &Cluster) -> Vec<String> {
    slurm_jobs(cluster)
        .into_iter()
        .filter(|row| {
            row.starts_with("batchci-") && (row.ends_with(" RUNNING") || row.ends_with(" PENDING"))
        })
        .collect()
}

/// Occupies every node of `gitlab-ci`, so a placeholder job has to wait; returns its id.
fn block_the_partition(cluster: &Cluster, dir: &std::path::Path) -> String {
    let out = Command::new("sbatch")
        .envs(cluster.batchci_env())
        .current_dir(dir)
        .args([
            "--parsable",
            "-p",
            "gitlab-ci",
            "-N",
            "2",
            "--exclusive",
            "--wrap",
            "sleep 300",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    cluster.wait_until_running(&id);
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_runs_in_a_container_on_the_allocated_node_within_its_cpus() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(
        &job("    - echo \"cpus $(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)\"\n"),
        &[],
    );
    let _batchci = start(&site, &cluster, "", "");
    let id = pipeline.jobs[0].id;

    let (job, trace) = site.finished(id).await;

    assert_eq!(job.status, JobStatus::Success, "{trace}");
    let lines = plain_lines(&trace);
    let (slurm_job, cpuset, node) = allocation_of(&trace);
    assert!(node.starts_with("node0"), "{node}");
    assert!(!slurm_job.is_empty(), "{trace}");
    assert!(
        lines.contains(&format!("cpus {cpuset}")),
        "the container ran on other CPUs:\n{trace}"
    );

    let srun = cluster.calls_of("srun");
    assert_eq!(srun.len(), 1, "{srun:?}");
    for word in [
        format!("--job-name={}", placeholder_of(&site, id)),
        "--partition=gitlab-ci".into(),
        "--cpus-per-task=1".into(),
        "--mem=512M".into(),
    ] {
        assert!(srun[0].contains(&word), "{word} in {:?}", srun[0]);
    }
    let docker = cluster.calls_of("docker");
    let run = docker
        .iter()
        .find(|argv| argv.iter().any(|a| a == "run"))
        .unwrap_or_else(|| panic!("no docker run in {docker:?}"));
    let host = format!("tcp://{node}:2376");
    assert!(
        run.windows(2).any(|w| w[0] == "-H" && w[1] == host),
        "{run:?}"
    );
    assert!(run.contains(&format!("--cpuset-cpus={cpuset}")), "{run:?}");
    assert!(run.contains(&"--memory=512m".to_string()), "{run:?}");
    assert!(run.contains(&"alpine".to_string()), "{run:?}");
    assert!(
        docker.iter().any(|argv| argv.iter().any(|a| a == "rm")),
        "the container was removed: {docker:?}"
    );
    assert_eq!(live_placeholders(&cluster), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_build_reports_the_containers_exit_code_and_releases_the_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(&job("    - echo failing\n    - exit 3\n"), &[]);
    let _batchci = start(&site, &cluster, "", "");

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(job.status, JobStatus::Failed, "{trace}");
    assert_eq!(job.failure_reason.as_deref(), Some("script_failure"));
    assert_eq!(
        plain_lines(&trace).last().map(String::as_str),
        Some("ERROR: Job failed: exit code 3")
    );
    assert_eq!(live_placeholders(&cluster), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pending_allocation_says_so_and_is_released_at_the_allocation_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let blocker = block_the_partition(&cluster, dir.path());
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(&job("    - echo never\n"), &[]);
    let _batchci = start(&site, &cluster, "  allocation_timeout = 3\n", "");

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;
    let _ = Command::new("scancel")
        .envs(cluster.batchci_env())
        .arg(&blocker)
        .output();

    assert_eq!(job.status, JobStatus::Failed, "{trace}");
    assert_eq!(job.failure_reason.as_deref(), Some("runner_system_failure"));
    let lines = plain_lines(&trace);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("waiting for a Slurm allocation: job ")
                && l.contains(" pending (")),
        "{trace}"
    );
    let last = lines.last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("ERROR: Job failed (system failure): Slurm did not start the placeholder job within the allocation timeout of 3s (job "),
        "{last}"
    );
    assert!(!lines.iter().any(|l| l == "never"), "{trace}");
    assert_eq!(live_placeholders(&cluster), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allocation_script_that_says_something_else_is_a_system_failure_quoting_it() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let script = dir.path().join("alloc.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"hello from $(hostname)\"\necho second\nexec cat\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(&job("    - echo never\n"), &[]);
    let _batchci = start(
        &site,
        &cluster,
        &format!("  allocation_script = {:?}\n", script.display().to_string()),
        "",
    );

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(
        job.failure_reason.as_deref(),
        Some("runner_system_failure"),
        "{trace}"
    );
    let last = plain_lines(&trace).last().cloned().unwrap_or_default();
    assert!(
        last.starts_with(
            "ERROR: Job failed (system failure): the allocation script printed \"hello from node0"
        ) && last.ends_with("where `gitlab-runner: hostname: <value>` was expected"),
        "{last}"
    );
    assert_eq!(live_placeholders(&cluster), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_docker_daemon_fails_the_job_and_releases_the_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(&job("    - echo never\n"), &[]);
    let _batchci = start(
        &site,
        &cluster,
        "",
        "  host = \"tcp://{hostname}-nowhere:2376\"\n",
    );

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(
        job.failure_reason.as_deref(),
        Some("runner_system_failure"),
        "{trace}"
    );
    let last = plain_lines(&trace).last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("ERROR: Job failed (system failure): the Docker daemon at tcp://node0")
            && last.contains("-nowhere:2376 cannot be used"),
        "{last}"
    );
    assert_eq!(live_placeholders(&cluster), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_tls_files_fail_the_job_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let pki = dir.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(&job("    - echo never\n"), &[]);
    let _batchci = start(
        &site,
        &cluster,
        "",
        &format!(
            "  tls_verify = true\n  tls_cert_path = {:?}\n",
            pki.display().to_string()
        ),
    );

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(
        job.failure_reason.as_deref(),
        Some("runner_system_failure"),
        "{trace}"
    );
    let last = plain_lines(&trace).last().cloned().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "ERROR: Job failed (system failure): [runners.docker] tls_cert_path: cannot read {}/ca.pem: ",
            pki.display()
        )),
        "{last}"
    );
    assert_eq!(live_placeholders(&cluster), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_the_daemon_lacks_is_the_jobs_failure() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(
        "build:\n  tags: [slurm]\n  image: no-such-image:1\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - echo never\n",
        &[],
    );
    let _batchci = start(&site, &cluster, "", "");

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(
        job.failure_reason.as_deref(),
        Some("script_failure"),
        "{trace}"
    );
    let last = plain_lines(&trace).last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("ERROR: Job failed: the image no-such-image:1 is not available to the Docker daemon at tcp://node0"),
        "{last}"
    );
    assert_eq!(live_placeholders(&cluster), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_timeout_longer_than_the_runner_allows_fails_before_anything_is_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(&job("    - echo never\n"), &[]);
    // GitLab's default job timeout is an hour; this runner allows 30 minutes.
    let _batchci = start(&site, &cluster, "  timeout = 30\n", "");

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(
        job.failure_reason.as_deref(),
        Some("script_failure"),
        "{trace}"
    );
    let last = plain_lines(&trace).last().cloned().unwrap_or_default();
    assert!(
        last.contains("is longer than this runner allows (30m, [runners.slurm] timeout)"),
        "{last}"
    );
    assert_eq!(cluster.calls_of("srun"), Vec::<Vec<String>>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn at_max_pending_builds_no_further_job_is_requested() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let blocker = block_the_partition(&cluster, dir.path());
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(
        "a:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - echo a\nb:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - echo b\n",
        &[],
    );
    let _batchci = start(&site, &cluster, "  max_pending_builds = 1\n", "");
    let (first, second) = (pipeline.jobs[0].id, pipeline.jobs[1].id);

    // Three seconds of progress lines: the runner has polled its pending placeholders
    // (every check_interval, one second) several times meanwhile.
    site.wait_for_line(first, |l| {
        let waited = l
            .strip_prefix("waiting for a Slurm allocation")?
            .rsplit_once(", ")?
            .1;
        let seconds: u64 = waited.strip_suffix('s')?.parse().ok()?;
        (seconds >= 3).then_some(())
    })
    .await;
    let waiting = site.gitlab.job(second).unwrap();
    let placeholders_while_waiting = live_placeholders(&cluster);
    let _ = Command::new("scancel")
        .envs(cluster.batchci_env())
        .arg(&blocker)
        .output();
    let (a, trace_a) = site.finished(first).await;
    let (b, trace_b) = site.finished(second).await;

    assert_eq!(
        waiting.status,
        JobStatus::Pending,
        "job b was requested while job a's allocation was pending"
    );
    assert_eq!(
        placeholders_while_waiting.len(),
        1,
        "{placeholders_while_waiting:?}"
    );
    assert_eq!(a.status, JobStatus::Success, "{trace_a}");
    assert_eq!(b.status, JobStatus::Success, "{trace_b}");
    assert_eq!(cluster.calls_of("srun").len(), 2);
}

/// The Docker engine `ci/docker` started, reached over TLS with client certificates.
struct RealDocker {
    host: String,
    pki: String,
}

impl RealDocker {
    /// The engine, when `ci/test` started one. In CI a missing engine is a failure, not a skip.
    fn get() -> Option<RealDocker> {
        let wanted = std::env::var("BATCHCI_REAL_DOCKER").is_ok_and(|v| v == "1");
        let host = std::env::var("BATCHCI_DOCKER_TLS_HOST").ok();
        let pki = std::env::var("BATCHCI_DOCKER_PKI").ok();
        match (wanted, host, pki) {
            (true, Some(host), Some(pki)) => Some(RealDocker { host, pki }),
            (true, _, _) => panic!(
                "BATCHCI_REAL_DOCKER=1 but BATCHCI_DOCKER_TLS_HOST or BATCHCI_DOCKER_PKI is unset: eval \"$(ci/docker env)\""
            ),
            (false, _, _) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!(
                    "CI=true but no real Docker: run the suite through ci/test, which starts one"
                )
            }
            (false, _, _) => {
                eprintln!(
                    "NOTE: real Docker not available (BATCHCI_REAL_DOCKER unset): the real docker+slurm case did NOT run"
                );
                None
            }
        }
    }

    /// `[runners.docker]` for this engine and the busybox image `ci/docker` imported.
    fn table(&self) -> String {
        format!(
            "  [runners.docker]\n  image = \"batchci-busybox:latest\"\n  host = {:?}\n  tls_verify = true\n  tls_cert_path = {:?}\n",
            self.host, self.pki
        )
    }

    /// The output of `docker args` against this engine; the call must succeed.
    fn cli(&self, args: &[&str]) -> String {
        let pki = &self.pki;
        let out = Command::new("docker")
            .args(["-H", &self.host, "--tlsverify"])
            .arg(format!("--tlscacert={pki}/ca.pem"))
            .arg(format!("--tlscert={pki}/cert.pem"))
            .arg(format!("--tlskey={pki}/key.pem"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The containers of CI job `id` the engine still has.
    fn containers_of(&self, id: u64) -> String {
        self.cli(&[
            "ps",
            "--all",
            "--quiet",
            "--filter",
            &format!("label=com.batchci.job={id}"),
        ])
    }
}

/// The placeholder job (and network) name of CI job `id` of the site's runner.
fn placeholder_of(site: &Site, id: u64) -> String {
    format!(
        "batchci-{}-job-{id}",
        &site.runner_token.trim_start_matches("glrt-")[..8]
    )
}

/// What Slurm still runs or queues under the placeholder name `name` (`%i %T` rows).
fn queued_as(cluster: &Cluster, name: &str) -> String {
    let out = Command::new("squeue")
        .envs(cluster.batchci_env())
        .args([
            "--noheader",
            "--states=PENDING,RUNNING",
            &format!("--name={name}"),
            "--format=%i %T",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts batchci with one docker+slurm runner on the real `cluster`, `slurm` in its
/// `[runners.slurm]` and `docker` as its `[runners.docker]`.
fn start_real(site: &Site, cluster: &Cluster, slurm: &str, docker: &str) -> Batchci {
    let extra = format!(
        "{}\n  [runners.slurm]\n  partition = \"gitlab-ci\"\n  cpus = 1\n  memory = \"64M\"\n  allocation_progress_interval = 1\n{slurm}{docker}",
        cluster.batch_table("")
    );
    let config = site.write_config("docker+slurm", &extra);
    let env = cluster.batchci_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Batchci::run(&config, &env)
}

/// Real Slurm 22.05 allocates one CPU and 64 MB; a real dockerd, reached over TLS with
/// client certificates, runs the build in a busybox container that sees exactly that CPU and
/// that memory limit in its cgroup; afterwards neither the Slurm job nor the container is left.
#[tokio::test(flavor = "multi_thread")]
async fn real_slurm_and_docker_run_the_build_in_the_allocated_cpuset_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = Cluster::real(dir.path()) else {
        return;
    };
    let Some(docker) = RealDocker::get() else {
        return;
    };
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(
        &job("    - echo \"cpus $(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)\"\n    - echo \"memory $(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes)\"\n"),
        &[],
    );
    let _batchci = start_real(&site, &cluster, "", &docker.table());
    let id = pipeline.jobs[0].id;

    let (job, trace) = site.finished(id).await;

    assert_eq!(job.status, JobStatus::Success, "{trace}");
    let lines = plain_lines(&trace);
    let (_, cpuset, _) = allocation_of(&trace);
    assert!(lines.contains(&format!("cpus {cpuset}")), "{trace}");
    assert!(lines.contains(&"memory 67108864".to_string()), "{trace}");
    assert_eq!(
        queued_as(&cluster, &placeholder_of(&site, id)),
        "",
        "the placeholder job is still there"
    );
    assert_eq!(docker.containers_of(id), "", "a container is left");
}

/// The custom executor with real Slurm and Docker: `prepare` allocates, the build's stages
/// run in the container on the allocated CPU, `cleanup` leaves no Slurm job and no container.
#[test]
fn real_custom_executor_allocates_in_prepare_runs_in_the_container_and_releases_in_cleanup() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = Cluster::real(dir.path()) else {
        return;
    };
    let Some(docker) = RealDocker::get() else {
        return;
    };
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {state:?}\n\n[[runners]]\nname = \"custom\"\nurl = \"https://gitlab.example.com\"\ntoken = \"glrt-t3stT0k3n\"\nexecutor = \"docker+slurm\"\nbuilds_dir = {builds:?}\n{batch}\n  [runners.slurm]\n  partition = \"gitlab-ci\"\n  cpus = 1\n  memory = \"64M\"\n{docker}",
            state = dir.path().join("state").display().to_string(),
            builds = dir.path().join("builds").display().to_string(),
            batch = cluster.batch_table(""),
            docker = docker.table(),
        ),
    )
    .unwrap();
    let work = dir.path().join("runner-tmp");
    std::fs::create_dir_all(&work).unwrap();
    let job = JobSpec::new(130)
        .script(&[
            "echo \"cpus $(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)\"",
        ])
        .after_script(&["echo \"after: $CI_JOB_STATUS\""]);

    let report = Driver::batchci(&support::workspace_binary("batchci"), &config, &work)
        .runner_envs(&cluster.batchci_env())
        .graceful_kill_timeout(std::time::Duration::from_secs(10))
        .force_kill_timeout(std::time::Duration::from_secs(10))
        .run(job)
        .unwrap();

    assert_eq!(report.status, DriverStatus::Success, "{}", report.log);
    let lines = report.lines();
    let (_, cpuset, _) = allocation_of(&report.log);
    assert!(lines.contains(&format!("cpus {cpuset}")), "{}", report.log);
    assert!(
        lines.contains(&"after: success".to_string()),
        "{}",
        report.log
    );
    assert_eq!(
        queued_as(&cluster, "batchci-t3stT0k3-job-130"),
        "",
        "the placeholder job is still there"
    );
    assert_eq!(docker.containers_of(130), "", "a container is left");
}

/// The node and CPUs of a build, from its `Slurm job N holds CPUs C on H; ...` line.
fn allocation_of(trace: &str) -> (String, String, String) {
    plain_lines(trace)
        .iter()
        .find_map(|l| {
            let rest = l.strip_prefix("Slurm job ")?;
            let (slurm_job, rest) = rest.split_once(" holds CPUs ")?;
            let (cpuset, rest) = rest.split_once(" on ")?;
            let (node, _) = rest.split_once(';')?;
            Some((slurm_job.to_string(), cpuset.to_string(), node.to_string()))
        })
        .unwrap_or_else(|| panic!("no allocation line in\n{trace}"))
}

/// The containers the fake daemon of `node` still has for CI job `id`.
fn containers_of(cluster: &Cluster, node: &str, id: u64) -> String {
    let out = Command::new("docker")
        .envs(cluster.batchci_env())
        .args([
            "-H",
            &format!("tcp://{node}:2376"),
            "ps",
            "--all",
            "--quiet",
        ])
        .args(["--filter", &format!("label=com.batchci.job={id}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every CPU of a list such as `0-2,5`.
fn cpus(list: &str) -> std::collections::BTreeSet<u32> {
    list.split(',')
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).collect::<Vec<u32>>(),
            None => vec![part.parse().unwrap()],
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_concurrent_builds_on_one_node_never_share_a_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let site = Site::start(&["slurm"]).await;
    let body = "    - echo \"cpus $(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)\"\n    - sleep 1\n";
    let pipeline = site.pipeline(
        &format!("a:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n  script:\n{body}b:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n  script:\n{body}"),
        &[],
    );
    let _batchci = start(&site, &cluster, "", "");

    let (a, trace_a) = site.finished(pipeline.jobs[0].id).await;
    let (b, trace_b) = site.finished(pipeline.jobs[1].id).await;

    assert_eq!(a.status, JobStatus::Success, "{trace_a}");
    assert_eq!(b.status, JobStatus::Success, "{trace_b}");
    let (_, cpus_a, node_a) = allocation_of(&trace_a);
    let (_, cpus_b, node_b) = allocation_of(&trace_b);
    assert!(
        plain_lines(&trace_a).contains(&format!("cpus {cpus_a}")),
        "{trace_a}"
    );
    assert!(
        plain_lines(&trace_b).contains(&format!("cpus {cpus_b}")),
        "{trace_b}"
    );
    // The simulated scheduler fills the first node first: both builds share node01.
    assert_eq!(node_a, node_b);
    assert!(
        cpus(&cpus_a).is_disjoint(&cpus(&cpus_b)),
        "both builds on {node_a} got CPUs {cpus_a} and {cpus_b}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_during_the_build_removes_the_container_and_releases_the_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(&job("    - echo started\n    - sleep 300\n"), &[]);
    let _batchci = start(&site, &cluster, "", "");
    let id = pipeline.jobs[0].id;
    site.wait_for_line(id, |l| (l == "started").then_some(()))
        .await;

    site.gitlab.cancel_job(id, false).unwrap();
    let (job, trace) = site.finished(id).await;

    assert_eq!(job.status, JobStatus::Canceled, "{trace}");
    let (_, _, node) = allocation_of(&trace);
    assert_eq!(
        containers_of(&cluster, &node, id),
        "",
        "the container outlived the cancel"
    );
    assert_eq!(live_placeholders(&cluster), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_while_the_allocation_is_pending_cancels_the_placeholder() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let blocker = block_the_partition(&cluster, dir.path());
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(&job("    - echo never\n"), &[]);
    let _batchci = start(&site, &cluster, "", "");
    let id = pipeline.jobs[0].id;
    site.wait_for_line(id, |l| {
        l.starts_with("waiting for a Slurm allocation: job ")
            .then_some(())
    })
    .await;

    site.gitlab.cancel_job(id, false).unwrap();
    let (job, trace) = site.finished(id).await;
    let placeholders = live_placeholders(&cluster);
    let _ = Command::new("scancel")
        .envs(cluster.batchci_env())
        .arg(&blocker)
        .output();

    assert_eq!(job.status, JobStatus::Canceled, "{trace}");
    assert!(!plain_lines(&trace).iter().any(|l| l == "never"), "{trace}");
    assert_eq!(placeholders, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_executor_removes_the_container_and_the_allocation_when_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(&job("    - echo started\n    - sleep 300\n"), &[]);
    let mut first = start(&site, &cluster, "", "");
    let id = pipeline.jobs[0].id;
    site.wait_for_line(id, |l| (l == "started").then_some(()))
        .await;
    let trace = String::from_utf8_lossy(&site.gitlab.trace(id).unwrap()).into_owned();
    let (slurm_job, _, node) = allocation_of(&trace);

    first.signal(nix::sys::signal::Signal::SIGKILL);
    assert!(first.wait(std::time::Duration::from_secs(10)).is_none());
    assert_ne!(
        containers_of(&cluster, &node, id),
        "",
        "the container runs on after the kill"
    );
    let _second = start(&site, &cluster, "", "");
    let (job, trace) = site.finished(id).await;

    assert_eq!(
        job.failure_reason.as_deref(),
        Some("runner_system_failure"),
        "{trace}"
    );
    assert_eq!(
        plain_lines(&trace).last().map(String::as_str),
        Some(format!(
            "ERROR: Job failed (system failure): the batchci process running this job stopped unexpectedly; its docker+slurm job {slurm_job} was cancelled when batchci restarted"
        ).as_str())
    );
    assert_eq!(
        containers_of(&cluster, &node, id),
        "",
        "the container outlived the recovery"
    );
    assert_eq!(live_placeholders(&cluster), Vec::<String>::new());
}

/// The custom executor on the simulated cluster: `prepare` prints the allocation, the build
/// runs in the container on the allocated CPUs, `cleanup` leaves nothing.
#[test]
fn the_custom_executor_allocates_in_prepare_runs_in_the_container_and_releases_in_cleanup() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let config = custom_config(dir.path(), &cluster);
    let job = JobSpec::new(140).script(&[
        "echo \"cpus $(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)\"",
    ]);

    let report = custom_driver(dir.path(), &config, &cluster)
        .run(job)
        .unwrap();

    assert_eq!(report.status, DriverStatus::Success, "{}", report.log);
    let (_, cpuset, node) = allocation_of(&report.log);
    assert!(
        report.lines().contains(&format!("cpus {cpuset}")),
        "{}",
        report.log
    );
    assert_eq!(containers_of(&cluster, &node, 140), "");
    assert_eq!(live_placeholders(&cluster), Vec::<String>::new());
}

/// gitlab-runner's SIGTERM while `prepare` waits for Slurm: `prepare` itself cancels the
/// placeholder (looked at before `cleanup` runs, which would release it too).
#[test]
fn a_sigterm_while_prepare_waits_releases_the_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let blocker = block_the_partition(&cluster, dir.path());
    let config = custom_config(dir.path(), &cluster);
    let running = custom_driver(dir.path(), &config, &cluster)
        .hold_before_cleanup()
        .start(JobSpec::new(141).script(&["echo never"]))
        .unwrap();
    running.wait_for_log(
        "waiting for a Slurm allocation: job ",
        std::time::Duration::from_secs(60),
    );

    running.cancel();
    running.wait_until_cleanup_is_next(std::time::Duration::from_secs(60));
    let placeholders = live_placeholders(&cluster);
    running.release_cleanup();
    let report = running.finish();
    let _ = Command::new("scancel")
        .envs(cluster.batchci_env())
        .arg(&blocker)
        .output();

    assert_ne!(report.status, DriverStatus::Success, "{}", report.log);
    assert!(
        !report.lines().iter().any(|l| l == "never"),
        "{}",
        report.log
    );
    assert_eq!(placeholders, Vec::<String>::new());
}

/// A one-runner config.toml for the custom executor on the simulated cluster.
fn custom_config(dir: &std::path::Path, cluster: &Cluster) -> std::path::PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {state:?}\n\n[[runners]]\nname = \"custom\"\nurl = \"https://gitlab.example.com\"\ntoken = \"glrt-t3stT0k3n\"\nexecutor = \"docker+slurm\"\nbuilds_dir = {builds:?}\n{batch}\n  [runners.slurm]\n  partition = \"gitlab-ci\"\n  cpus = 1\n  memory = \"512M\"\n  allocation_progress_interval = 1\n  [runners.docker]\n  image = \"alpine\"\n",
            state = dir.join("state").display().to_string(),
            builds = dir.join("builds").display().to_string(),
            batch = cluster.batch_table(""),
        ),
    )
    .unwrap();
    config
}

fn custom_driver(dir: &std::path::Path, config: &std::path::Path, cluster: &Cluster) -> Driver {
    let work = dir.join("runner-tmp");
    std::fs::create_dir_all(&work).unwrap();
    Driver::batchci(&support::workspace_binary("batchci"), config, &work)
        .runner_envs(&cluster.batchci_env())
        .graceful_kill_timeout(std::time::Duration::from_secs(10))
        .force_kill_timeout(std::time::Duration::from_secs(10))
}

/// A build that uses more memory than its allocation: the daemon's OOM kill (`OOMKilled` in
/// `docker inspect`) is the failure's reason, not a bare exit code.
#[tokio::test(flavor = "multi_thread")]
async fn a_build_over_its_memory_is_killed_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let site = Site::start(&["slurm"]).await;
    // tail keeps a 200 MB line in memory; the allocation has 64 MB.
    let pipeline = site.pipeline(
        &job("    - head -c 200000000 /dev/zero | tail -n 1 > /dev/null\n    - echo survived\n"),
        &[],
    );
    let _batchci = start(&site, &cluster, "  memory = \"64M\"\n", "");

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(job.status, JobStatus::Failed, "{trace}");
    assert_eq!(job.failure_reason.as_deref(), Some("script_failure"));
    assert_eq!(
        plain_lines(&trace).last().map(String::as_str),
        Some(
            "ERROR: Job failed: the build used more memory than its allocation (64m) and was killed (out of memory)"
        )
    );
    assert!(
        !plain_lines(&trace).iter().any(|l| l == "survived"),
        "{trace}"
    );
    assert_eq!(live_placeholders(&cluster), Vec::<String>::new());
}

/// Real Slurm expects the placeholder to start only when an hour-long job on the node ends:
/// with `abort_on_expected_allocation_timeout` the CI job fails as soon as Slurm says so,
/// long before the allocation timeout, and the placeholder is cancelled.
#[tokio::test(flavor = "multi_thread")]
async fn real_slurm_an_expected_start_past_the_allocation_timeout_fails_early() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = Cluster::real(dir.path()) else {
        return;
    };
    let blocker = Command::new("sbatch")
        .envs(cluster.batchci_env())
        .current_dir(dir.path())
        .args([
            "--parsable",
            "-p",
            "gitlab-ci",
            "-N",
            "1",
            "--exclusive",
            "--time=60",
            "--wrap",
            "sleep 600",
        ])
        .output()
        .unwrap();
    assert!(blocker.status.success(), "{blocker:?}");
    let blocker = String::from_utf8_lossy(&blocker.stdout).trim().to_string();
    cluster.wait_until_running(&blocker);
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(&job("    - echo never\n"), &[]);
    // Docker is never reached: the job fails while it waits for Slurm.
    let _batchci = start_real(
        &site,
        &cluster,
        "  allocation_timeout = 600\n  abort_on_expected_allocation_timeout = true\n",
        "  [runners.docker]\n  image = \"batchci-busybox:latest\"\n  docker_program = \"/bin/true\"\n",
    );

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;
    let _ = Command::new("scancel")
        .envs(cluster.batchci_env())
        .arg(&blocker)
        .output();

    assert_eq!(
        job.failure_reason.as_deref(),
        Some("runner_system_failure"),
        "{trace}"
    );
    let last = plain_lines(&trace).last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("ERROR: Job failed (system failure): Slurm expects job ")
            && last.ends_with(", after the allocation timeout of 10m0s"),
        "{last}"
    );
    assert_eq!(
        queued_as(&cluster, &placeholder_of(&site, pipeline.jobs[0].id)),
        "",
        "the placeholder is still queued"
    );
}

/// A placeholder Slurm will never start as asked (65 minutes in a 60-minute partition) fails
/// the job at the first look at its pending reason, not at the allocation timeout or never.
#[tokio::test(flavor = "multi_thread")]
async fn a_placeholder_slurm_will_never_start_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(&job("    - echo never\n"), &[]);
    let _batchci = start(&site, &cluster, "  overhead_time = 5\n", "");

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(
        job.failure_reason.as_deref(),
        Some("runner_system_failure"),
        "{trace}"
    );
    let last = plain_lines(&trace).last().cloned().unwrap_or_default();
    assert!(
        last.starts_with(
            "ERROR: Job failed (system failure): Slurm will not start the placeholder job "
        ) && last.contains(" (PartitionTimeLimit): it asks for --time=65 "),
        "{last}"
    );
    assert_eq!(live_placeholders(&cluster), Vec::<String>::new());
}

/// Slurm ends the placeholder while the build runs (an admin's scancel): the build is stopped
/// at once and the job fails saying why; no container stays on CPUs Slurm gave away.
#[tokio::test(flavor = "multi_thread")]
async fn a_placeholder_ended_by_slurm_stops_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(&job("    - echo started\n    - sleep 300\n"), &[]);
    let _batchci = start(&site, &cluster, "", "");
    let id = pipeline.jobs[0].id;
    site.wait_for_line(id, |l| (l == "started").then_some(()))
        .await;
    let trace = String::from_utf8_lossy(&site.gitlab.trace(id).unwrap()).into_owned();
    let (slurm_job, _, node) = allocation_of(&trace);

    let scancel = Command::new("scancel")
        .envs(cluster.batchci_env())
        .arg(&slurm_job)
        .output()
        .unwrap();
    let (job, trace) = site.finished(id).await;

    assert!(scancel.status.success(), "{scancel:?}");
    assert_eq!(
        job.failure_reason.as_deref(),
        Some("runner_system_failure"),
        "{trace}"
    );
    let last = plain_lines(&trace).last().cloned().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "ERROR: Job failed (system failure): Slurm job {slurm_job} ended during the build (srun exit code "
        )),
        "{last}"
    );
    assert_eq!(containers_of(&cluster, &node, id), "");
}

/// `after_script` is user code too: it runs in a container on the allocation, never on the
/// executor's host.
#[tokio::test(flavor = "multi_thread")]
async fn after_script_runs_in_a_container_on_the_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(
        &job("    - echo build\n  after_script:\n    - echo \"after on $(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)\"\n"),
        &[],
    );
    let _batchci = start(&site, &cluster, "", "");
    let id = pipeline.jobs[0].id;

    let (job, trace) = site.finished(id).await;

    assert_eq!(job.status, JobStatus::Success, "{trace}");
    let (_, cpuset, node) = allocation_of(&trace);
    assert!(
        plain_lines(&trace).contains(&format!("after on {cpuset}")),
        "{trace}"
    );
    let runs: Vec<Vec<String>> = cluster
        .calls_of("docker")
        .into_iter()
        .filter(|argv| argv.iter().any(|a| a == "run"))
        .collect();
    assert_eq!(runs.len(), 2, "script and after_script: {runs:?}");
    assert_eq!(containers_of(&cluster, &node, id), "");
}

/// Real Slurm and Docker: a job's service (busybox httpd) runs on the job's network and the
/// build reaches it by its alias; afterwards no container and no network is left.
#[tokio::test(flavor = "multi_thread")]
async fn real_a_service_is_reached_by_its_alias_on_the_jobs_network() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = Cluster::real(dir.path()) else {
        return;
    };
    let Some(docker) = RealDocker::get() else {
        return;
    };
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(
        "build:\n  tags: [slurm]\n  services:\n    - name: batchci-busybox:latest\n      alias: web\n      command: [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/etc\"]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://web:8080/passwd && break; sleep 0.2; done | head -1\n",
        &[],
    );
    let _batchci = start_real(&site, &cluster, "", &docker.table());
    let id = pipeline.jobs[0].id;

    let (job, trace) = site.finished(id).await;

    assert_eq!(job.status, JobStatus::Success, "{trace}");
    assert!(
        plain_lines(&trace).contains(&"root:x:0:0:root:/root:/bin/sh".to_string()),
        "{trace}"
    );
    assert_eq!(docker.containers_of(id), "");
    let network = placeholder_of(&site, id);
    assert_eq!(
        docker.cli(&[
            "network",
            "ls",
            "--quiet",
            "--filter",
            &format!("name={network}")
        ]),
        "",
        "the job's network is left"
    );
}

/// A job's service starts on the job's own network under its alias, within the allocation's
/// CPUs and memory; the build joins that network; service and network go with the job.
#[tokio::test(flavor = "multi_thread")]
async fn services_start_on_the_jobs_network_within_the_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(
        "build:\n  tags: [slurm]\n  services:\n    - name: busybox\n      alias: cache\n      command: [\"sleep\", \"300\"]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - echo built\n",
        &[],
    );
    let _batchci = start(&site, &cluster, "", "");
    let id = pipeline.jobs[0].id;

    let (job, trace) = site.finished(id).await;

    assert_eq!(job.status, JobStatus::Success, "{trace}");
    let (_, cpuset, node) = allocation_of(&trace);
    let network = placeholder_of(&site, id);
    let docker = cluster.calls_of("docker");
    let has =
        |argv: &Vec<String>, words: &[&str]| words.iter().all(|w| argv.iter().any(|a| a == w));
    assert!(
        docker
            .iter()
            .any(|argv| has(argv, &["network", "create", &network])),
        "{docker:?}"
    );
    let service = docker
        .iter()
        .find(|argv| has(argv, &["run", "--detach"]))
        .unwrap_or_else(|| panic!("no service started: {docker:?}"));
    for word in [
        format!("--network={network}"),
        "--network-alias=cache".into(),
        "--network-alias=busybox".into(),
        format!("--cpuset-cpus={cpuset}"),
        "--memory=512m".into(),
    ] {
        assert!(service.contains(&word), "{word} in {service:?}");
    }
    let build = docker
        .iter()
        .find(|argv| has(argv, &["run", "--interactive"]))
        .unwrap();
    assert!(build.contains(&format!("--network={network}")), "{build:?}");
    assert!(
        docker
            .iter()
            .any(|argv| has(argv, &["network", "rm", &network])),
        "{docker:?}"
    );
    assert_eq!(containers_of(&cluster, &node, id), "");
    assert!(
        plain_lines(&trace).contains(&"Starting service busybox as cache, busybox".to_string()),
        "{trace}"
    );
}

/// `[runners.slurm] user` names an account this host does not have: the job fails before any
/// Slurm command runs, saying which key and why.
#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_run_as_user_fails_before_slurm_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(&job("    - echo never\n"), &[]);
    let _batchci = start(&site, &cluster, "  user = \"no-such-ci-user\"\n", "");

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(
        job.failure_reason.as_deref(),
        Some("runner_system_failure"),
        "{trace}"
    );
    assert_eq!(
        plain_lines(&trace).last().map(String::as_str),
        Some(
            "ERROR: Job failed (system failure): [runners.slurm] user: user `no-such-ci-user` does not exist"
        )
    );
    assert_eq!(cluster.calls_of("srun"), Vec::<Vec<String>>::new());
}
