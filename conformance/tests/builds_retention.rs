//! `builds_retention` in a running `batchci run`: after a job of a second project, the first
//! project's build directory goes (`max_count = 1`), with a line in batchci's log, and the job
//! that just ended keeps its own.

mod support;

use std::time::Duration;

use mock_gitlab::api::NewPipeline;
use support::{Batchci, Site};

#[tokio::test(flavor = "multi_thread")]
async fn after_a_job_only_the_max_count_most_recently_used_build_directories_stay() {
    let site = Site::start(&["shell"]).await;
    let other = site
        .gitlab
        .create_project("other", Some(&site.dir.path().join("repo")))
        .unwrap();
    let config = site.write_config("shell", "builds_retention = { max_count = 1 }\n");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("concurrent = 2", "concurrent = 1");
    std::fs::write(&config, text).unwrap();
    let yaml = "build:\n  tags: [shell]\n  script:\n    - cat README.md\n";
    let first = site.pipeline(yaml, &[]);
    let batchci = Batchci::run(&config, &[("BATCHCI_LOG", "info")]);
    site.finished(first.jobs[0].id).await;
    let slot = site
        .dir
        .path()
        .join("builds")
        .join(batchci::stages::short_token(&site.runner_token))
        .join("0/group");
    let demo = slot.join("demo");
    assert!(demo.join("README.md").is_file(), "the first job's checkout");

    let second = site
        .gitlab
        .create_pipeline(NewPipeline {
            project_id: other,
            ci_yaml: yaml.into(),
            ..Default::default()
        })
        .unwrap();
    let (job, trace) = site.finished(second.jobs[0].id).await;
    assert_eq!(job.status, mock_gitlab::JobStatus::Success, "{trace}");

    // The pass logs what it removed once it is done.
    batchci.wait_for_log("removed an old build directory", Duration::from_secs(30));
    assert!(!demo.exists());
    assert!(
        slot.join("other/README.md").is_file(),
        "the last job's checkout stays"
    );
    let removed: Vec<String> = batchci
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("removed an old build directory"))
        .collect();
    assert_eq!(removed.len(), 1, "{removed:#?}");
    assert!(
        removed[0].ends_with(&format!(
            "INFO removed an old build directory (builds_retention) runner=conformance directory={}",
            demo.display()
        )),
        "{removed:#?}"
    );
}
