//! Many concurrent batch jobs in one `batchci run`: every job's output file is followed live
//! with one inotify instance for the whole process, and by polling when the kernel has none to
//! give. Each case runs batchci in a user namespace whose inotify limit the case sets, so the
//! host's own limit and other processes' instances do not matter.

mod support;

use std::path::Path;

use mock_gitlab::JobStatus;
use support::cluster::Cluster;
use support::{Batchci, Site, plain_lines};

/// `jobs` jobs that say they started, then hold until `release` exists. Each asks for little
/// memory: like real Slurm, the simulated cluster gives a job without `--mem` a whole node.
fn held_jobs(jobs: usize, release: &Path) -> String {
    let mut yaml = String::new();
    for n in 0..jobs {
        yaml.push_str(&format!(
            "job-{n}:\n  tags: [slurm]\n  variables:\n    SCHEDULER_PARAMETERS: \"--mem=100M\"\n  script:\n    - echo \"$CI_JOB_NAME started\"\n    - while [ ! -e {release} ]; do sleep 0.1; done\n    - echo \"$CI_JOB_NAME released\"\n",
            release = release.display()
        ));
    }
    yaml
}

/// Starts batchci with `concurrent = jobs` in a namespace allowing `instances` inotify instances.
fn start(site: &Site, cluster: &Cluster, jobs: usize, instances: u32) -> Batchci {
    let config = site.write_config("slurm", &cluster.batch_table(""));
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("concurrent = 2", &format!("concurrent = {jobs}"));
    std::fs::write(&config, text).unwrap();
    let env = cluster.batchci_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Batchci::run_with_inotify_instances(&config, &env, instances)
}

/// Runs `jobs` held jobs, checks batchci while they all run, releases them and checks each log.
async fn run_held_jobs(jobs: usize, instances: u32) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let site = Site::start(&["slurm"]).await;
    let release = site.dir.path().join("release");
    let pipeline = site.pipeline(&held_jobs(jobs, &release), &[]);
    let batchci = start(&site, &cluster, jobs, instances);

    for job in &pipeline.jobs {
        let started = format!("{} started", job.name);
        site.wait_for_line(job.id, |line| (line == started).then_some(()))
            .await;
    }
    let open_instances = batchci.inotify_instances();
    std::fs::write(&release, b"").unwrap();

    for job in &pipeline.jobs {
        let (view, trace) = site.finished(job.id).await;
        assert_eq!(view.status, JobStatus::Success, "{}:\n{trace}", job.name);
        let lines = plain_lines(&trace);
        let started = lines
            .iter()
            .position(|l| *l == format!("{} started", job.name));
        let released = lines
            .iter()
            .position(|l| *l == format!("{} released", job.name));
        assert!(
            started.is_some() && started < released,
            "{} has its output in order:\n{trace}",
            job.name
        );
    }
    let mut log = batchci.log_lines();
    log.push(format!(
        "inotify instances while the jobs ran: {open_instances}"
    ));
    log
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_concurrent_jobs_share_one_inotify_instance() {
    // Four instances allowed: a watcher per job would hold all four and leave four jobs without.
    let log = run_held_jobs(8, 4).await;

    assert_eq!(
        log.last().map(String::as_str),
        Some("inotify instances while the jobs ran: 1"),
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("inotify is unavailable")),
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_any_inotify_instance_output_is_polled_and_the_log_says_so_once() {
    let log = run_held_jobs(4, 0).await;

    assert_eq!(
        log.last().map(String::as_str),
        Some("inotify instances while the jobs ran: 0"),
        "{log:#?}"
    );
    let said: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("inotify is unavailable"))
        .collect();
    assert_eq!(said.len(), 1, "{log:#?}");
    assert!(
        said[0].contains("output files are polled every 100ms"),
        "{}",
        said[0]
    );
}
