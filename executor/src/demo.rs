//! `batchci demo`: the whole system on one machine, with nothing to install.
//!
//! It starts a mock GitLab (in this process) and a simulated Slurm cluster (the fake commands
//! are this very binary under other names), registers one runner per backend, creates a sample
//! pipeline that exercises every backend — success, failure, `after_script`, a masked variable,
//! scheduler parameters, a refused parameter — and runs it with a real `batchci run`. It prints
//! each job's log and a summary, and exits 0 when every job ended as the sample expects.

use std::time::Duration;

use anyhow::{Context, bail};
use mock_gitlab::api::{NewPipeline, NewRunner, Variable};
use mock_gitlab::{JobStatus, MockConfig, MockGitlab};

use crate::mock_site;

/// One job of the sample pipeline and how it must end.
struct Expected {
    name: &'static str,
    executor: &'static str,
    status: JobStatus,
    exit_code: Option<i64>,
    log_contains: &'static [&'static str],
}

const SAMPLE_PIPELINE: &str = r#"stages: [build, test]

shell-build:
  stage: build
  tags: [shell]
  script:
    - echo "building with the shell executor"
    - cat README.md

slurm-build:
  stage: build
  tags: [slurm]
  variables:
    SCHEDULER_PARAMETERS: "-p gitlab-ci -t 10 -c 2"
  script:
    - echo "Slurm job $SLURM_JOB_ID on $SLURM_JOB_NODELIST in $SLURM_JOB_PARTITION with $SLURM_CPUS_PER_TASK CPUs"

slurm-secret:
  stage: test
  tags: [slurm]
  script:
    - echo "the deploy token is $DEPLOY_TOKEN"

slurm-fails:
  stage: test
  tags: [slurm]
  allow_failure: true
  script:
    - echo "this job fails on purpose"
    - exit 3
  after_script:
    - echo "after_script ran on the runner host with CI_JOB_STATUS=$CI_JOB_STATUS"

slurm-refused:
  stage: test
  tags: [slurm]
  allow_failure: true
  variables:
    SCHEDULER_PARAMETERS: "--output=/etc/motd"
  script:
    - echo "never submitted"

pbs-build:
  stage: build
  tags: [pbs]
  variables:
    SCHEDULER_PARAMETERS: "-q gitlab-ci -l walltime=00:10:00"
  script:
    - echo "PBS job $PBS_JOBID named $PBS_JOBNAME"

cobalt-build:
  stage: build
  tags: [cobalt]
  variables:
    SCHEDULER_PARAMETERS: "-t 10 -n 1 -q gitlab-ci"
  script:
    - echo "Cobalt job $COBALT_JOBID"

lsf-build:
  stage: build
  tags: [lsf]
  variables:
    SCHEDULER_PARAMETERS: "-q gitlab-ci -n 1"
  script:
    - echo "LSF job $LSB_JOBID in queue $LSB_QUEUE"

flux-build:
  stage: build
  tags: [flux]
  variables:
    SCHEDULER_PARAMETERS: "-n 1 -t 10m"
  script:
    - echo "Flux allocation $FLUX_ENCLOSING_ID"

docker-build:
  stage: build
  tags: [docker+slurm]
  image: alpine
  script:
    - echo "in a container on CPUs $(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)"

shell-fails:
  stage: test
  tags: [shell]
  allow_failure: true
  script:
    - exit 3
  after_script:
    - echo "after_script ran with CI_JOB_STATUS=$CI_JOB_STATUS"
"#;

const EXPECTED: &[Expected] = &[
    Expected {
        name: "shell-build",
        executor: "shell",
        status: JobStatus::Success,
        exit_code: Some(0),
        log_contains: &[
            "building with the shell executor",
            "batchci demo repository",
        ],
    },
    Expected {
        name: "slurm-build",
        executor: "slurm",
        status: JobStatus::Success,
        exit_code: Some(0),
        log_contains: &["in gitlab-ci with 2 CPUs"],
    },
    Expected {
        name: "slurm-secret",
        executor: "slurm",
        status: JobStatus::Success,
        exit_code: Some(0),
        log_contains: &["the deploy token is [MASKED]"],
    },
    Expected {
        name: "slurm-fails",
        executor: "slurm",
        status: JobStatus::Failed,
        exit_code: Some(3),
        log_contains: &["CI_JOB_STATUS=failed", "ERROR: Job failed: exit code 3"],
    },
    Expected {
        name: "slurm-refused",
        executor: "slurm",
        status: JobStatus::Failed,
        exit_code: Some(0),
        log_contains: &["-o/--output is set by batchci"],
    },
    Expected {
        name: "pbs-build",
        executor: "pbs",
        status: JobStatus::Success,
        exit_code: Some(0),
        log_contains: &["PBS job ", " named ci-job-"],
    },
    Expected {
        name: "cobalt-build",
        executor: "cobalt",
        status: JobStatus::Success,
        exit_code: Some(0),
        log_contains: &["Cobalt job "],
    },
    Expected {
        name: "lsf-build",
        executor: "lsf",
        status: JobStatus::Success,
        exit_code: Some(0),
        log_contains: &["LSF job ", " in queue gitlab-ci"],
    },
    Expected {
        name: "flux-build",
        executor: "flux",
        status: JobStatus::Success,
        exit_code: Some(0),
        log_contains: &["Flux allocation "],
    },
    Expected {
        name: "docker-build",
        executor: "docker+slurm",
        status: JobStatus::Success,
        exit_code: Some(0),
        log_contains: &["Slurm job ", " holds CPUs ", "in a container on CPUs "],
    },
    Expected {
        name: "shell-fails",
        executor: "shell",
        status: JobStatus::Failed,
        exit_code: Some(3),
        log_contains: &["CI_JOB_STATUS=failed"],
    },
];

const SECRET: &str = "demo-Secret-4711";

/// Options of `batchci demo`.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Keep the demo's directory (logs, builds, cluster state) instead of deleting it.
    pub keep: bool,
    /// Print each job's log.
    pub show_logs: bool,
}

/// Runs the demo; `Ok(true)` when every job ended as expected.
pub async fn run(options: DemoOptions) -> anyhow::Result<bool> {
    let exe = std::env::current_exe().context("cannot find the batchci executable")?;
    let dir = tempfile::Builder::new().prefix("batchci-demo-").tempdir()?;
    let root = dir.path().to_path_buf();
    println!("batchci demo in {}", root.display());

    let repo = root.join("repo");
    mock_site::make_repository(&repo, "This is the batchci demo repository.\n")?;
    let mut config = MockConfig::default();
    config.settings.trace_update_interval = 1;
    let gitlab = MockGitlab::start(config).await?;
    println!("mock GitLab at {}", gitlab.url());
    let project = gitlab.create_project("demo", Some(&repo))?;

    // One simulated cluster per scheduler family: PBS and Cobalt both call their commands
    // qsub, qstat and qdel, and a cluster provides one of them.
    let mut clusters = Vec::new();
    for (name, flavor) in [
        ("slurm", None),
        ("pbs", Some("pbs")),
        ("cobalt", Some("cobalt")),
    ] {
        let cluster_dir = root.join(format!("cluster-{name}"));
        let cluster = mock_site::start_cluster(&exe, &cluster_dir, None, flavor)?;
        clusters.push((name, cluster_dir, cluster));
    }
    // LSF's and Flux's commands are there in every cluster: they use the Slurm one.
    let cluster_of = |executor: &str| {
        let cluster = match executor {
            "lsf" | "flux" | "docker+slurm" => "slurm",
            other => other,
        };
        clusters
            .iter()
            .find(|(name, _, _)| *name == cluster)
            .map(|(_, dir, _)| dir.clone())
    };
    println!(
        "simulated Slurm, PBS and Cobalt clusters in {}",
        root.display()
    );

    let mut config_text = format!(
        "concurrent = 7\ncheck_interval = 1\nstate_dir = {:?}\n",
        root.join("state").display().to_string()
    );
    for executor in [
        "shell",
        "slurm",
        "pbs",
        "cobalt",
        "lsf",
        "flux",
        "docker+slurm",
    ] {
        let credentials = gitlab.register_runner(NewRunner {
            description: format!("demo {executor}"),
            tags: vec![executor.to_string()],
            ..NewRunner::default()
        });
        config_text.push_str(&format!(
            "\n[[runners]]\nname = \"demo-{executor}\"\nurl = {:?}\ntoken = {:?}\nexecutor = \"{executor}\"\nbuilds_dir = {:?}\n  [runners.batch]\n  poll_interval = \"100ms\"\n  nfs_timeout = \"5s\"\n",
            gitlab.url(),
            credentials.token,
            root.join("builds").display().to_string(),
        ));
        if let Some(cluster) = cluster_of(executor) {
            config_text.push_str(&format!(
                "  scheduler_bin = {:?}\n  scheduler_environment = [{:?}]\n",
                cluster.join("bin").display().to_string(),
                format!("MOCK_CLUSTER_STATE_DIR={}", cluster.display()),
            ));
        }
        if executor == "docker+slurm" {
            // The simulated cluster's nodes each run a (fake) Docker daemon on port 2376.
            config_text.push_str(
                "  [runners.slurm]\n  partition = \"gitlab-ci\"\n  cpus = 1\n  memory = \"512M\"\n  allocation_progress_interval = 5\n  [runners.docker]\n  host = \"tcp://{hostname}:2376\"\n",
            );
        }
    }
    let config_path = root.join("config.toml");
    std::fs::write(&config_path, config_text)?;

    let pipeline = gitlab.create_pipeline(NewPipeline {
        project_id: project,
        ci_yaml: SAMPLE_PIPELINE.into(),
        variables: vec![Variable {
            key: "DEPLOY_TOKEN".into(),
            value: SECRET.into(),
            masked: true,
        }],
        git_ref: "main".into(),
        ..Default::default()
    })?;

    let mut runner = mock_site::spawn_runner(&exe, &config_path)?;
    println!(
        "batchci run started (pid {}); waiting for {} jobs\n",
        runner.id(),
        pipeline.jobs.len()
    );

    let mut all_ok = true;
    let mut rows = Vec::new();
    for expected in EXPECTED {
        let Some(job) = pipeline.jobs.iter().find(|j| j.name == expected.name) else {
            bail!("the sample pipeline has no job {}", expected.name);
        };
        let view = gitlab
            .wait_for_job(job.id, Duration::from_secs(300))
            .await?;
        let trace = String::from_utf8_lossy(&gitlab.trace(job.id)?).into_owned();
        let mut problems = Vec::new();
        if view.status != expected.status {
            problems.push(format!("status {:?}", view.status));
        }
        if view.exit_code != expected.exit_code {
            problems.push(format!("exit code {:?}", view.exit_code));
        }
        for needle in expected.log_contains {
            if !trace.contains(needle) {
                problems.push(format!("log lacks {needle:?}"));
            }
        }
        if trace.contains(SECRET) {
            problems.push("the masked variable leaked".into());
        }
        if options.show_logs {
            println!("──── {} ({}) ────", expected.name, expected.executor);
            print!("{}", mock_site::readable(&trace));
            println!();
        }
        all_ok &= problems.is_empty();
        rows.push((expected, view, problems));
    }

    runner.stop();
    for (_, _, cluster) in &mut clusters {
        cluster.stop();
    }

    println!(
        "{:<15} {:<12} {:<10} {:<10} {:<5} result",
        "job", "executor", "expected", "got", "exit"
    );
    for (expected, view, problems) in &rows {
        println!(
            "{:<15} {:<12} {:<10} {:<10} {:<5} {}",
            expected.name,
            expected.executor,
            format!("{:?}", expected.status).to_lowercase(),
            format!("{:?}", view.status).to_lowercase(),
            view.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            if problems.is_empty() {
                "ok".to_string()
            } else {
                format!("WRONG: {}", problems.join("; "))
            }
        );
    }
    if options.keep {
        let kept = dir.keep();
        println!("\nkept {}", kept.display());
    }
    println!(
        "\n{}",
        if all_ok {
            "demo passed: every job ended as expected"
        } else {
            "demo FAILED"
        }
    );
    Ok(all_ok)
}
