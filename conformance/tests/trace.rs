//! The job log under stress: a flaky GitLab, a log larger than the limit, a log that must arrive
//! in many patches. The stored trace must always be exactly what the job printed (masked), and
//! GitLab's checksum must match it.

mod support;

use mock_gitlab::JobStatus;
use mock_gitlab::api::{FaultEndpoint, FaultSpec, JobCall};
use support::{Batchci, Site, plain_lines};

fn fault(
    endpoint: FaultEndpoint,
    status: Option<u16>,
    rate: f64,
    count: u64,
    drop_connection: bool,
) -> FaultSpec {
    FaultSpec {
        endpoint,
        status,
        rate,
        delay_ms: 0,
        drop_connection,
        count: Some(count),
        retry_after_s: None,
        mode: None,
    }
}

/// The lines the job printed itself (between the step_script header and the next section).
fn script_output(trace: &str) -> Vec<String> {
    plain_lines(trace)
        .into_iter()
        .skip_while(|l| l != "Executing \"step_script\" stage of the job script")
        .skip(1)
        .take_while(|l| !l.starts_with("Cleaning up project directory"))
        .filter(|l| !l.starts_with("$ "))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flaky_gitlab_loses_no_log_line() {
    let site = Site::start(&["shell"]).await;
    let config = site.write_config("shell", "");
    site.gitlab
        .add_fault(fault(FaultEndpoint::Trace, Some(500), 0.5, 40, false))
        .unwrap();
    site.gitlab
        .add_fault(fault(FaultEndpoint::Trace, None, 0.2, 10, true))
        .unwrap();
    site.gitlab
        .add_fault(fault(FaultEndpoint::Update, Some(502), 1.0, 2, false))
        .unwrap();
    let pipeline = site.pipeline(
        "noisy:\n  tags: [shell]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - for i in $(seq 1 3000); do echo \"line $i\"; if [ $((i % 500)) = 0 ]; then sleep 0.3; fi; done\n",
        &[],
    );
    let _batchci = Batchci::run(&config, &[]);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(job.status, JobStatus::Success, "{trace}");
    let expected: Vec<String> = (1..=3000).map(|i| format!("line {i}")).collect();
    assert_eq!(script_output(&trace), expected);
    assert_eq!(job.trace_bytes as usize, trace.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_over_the_output_limit_ends_with_gitlabs_notice_and_the_job_still_succeeds() {
    let site = Site::start(&["shell"]).await;
    let config = site.write_config("shell", "output_limit = 8");
    let pipeline = site.pipeline(
        "chatty:\n  tags: [shell]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - for i in $(seq 1 2000); do echo \"line $i\"; done\n    - echo done\n",
        &[],
    );
    let _batchci = Batchci::run(&config, &[]);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(job.status, JobStatus::Success);
    assert!(
        trace.len() <= 8 * 1024 + 200,
        "{} bytes stored",
        trace.len()
    );
    assert!(
        trace.ends_with("\n\x1b[33;1mJob's log exceeded limit of 8192 bytes.\nJob execution will continue but no more output will be collected.\x1b[0;m\n"),
        "{:?}",
        &trace[trace.len().saturating_sub(300)..]
    );
    assert!(
        !trace.contains("Job succeeded"),
        "nothing is collected after the limit"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_log_arrives_whole_in_one_mebibyte_patches() {
    let site = Site::start(&["shell"]).await;
    let config = site.write_config("shell", "output_limit = 16384");
    let pipeline = site.pipeline(
        "big:\n  tags: [shell]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - head -c 3000000 /dev/zero | tr '\\0' 'x' | fold -w 100; echo\n",
        &[],
    );
    let _batchci = Batchci::run(&config, &[]);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(job.status, JobStatus::Success);
    let output = script_output(&trace);
    assert_eq!(output.iter().map(String::len).sum::<usize>(), 3_000_000);
    assert!(output.iter().all(|l| l.bytes().all(|b| b == b'x')));
    let largest_patch = site
        .gitlab
        .job_calls(job.id)
        .unwrap()
        .iter()
        .filter_map(|call| match call {
            JobCall::Patch { bytes, .. } => Some(*bytes),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    assert!(
        largest_patch <= 1024 * 1024,
        "a patch of {largest_patch} bytes"
    );
    assert!(largest_patch > 0);
}
