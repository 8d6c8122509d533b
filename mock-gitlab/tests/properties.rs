//! Properties of the parsers and of trace ingest under arbitrary chunking.

use mock_gitlab::api::{NewPipeline, NewRunner, Settings};
use mock_gitlab::ci_yaml::{parse, parse_duration};
use mock_gitlab::{JobStatus, MockConfig, MockGitlab};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::OnceLock;

struct Shared {
    runtime: tokio::runtime::Runtime,
    gitlab: MockGitlab,
    runner: String,
    project: u64,
    http: reqwest::Client,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let gitlab = runtime.block_on(async {
            MockGitlab::start(MockConfig {
                settings: Settings {
                    trace_update_interval: 1,
                    ..Settings::default()
                },
                ..MockConfig::default()
            })
            .await
            .unwrap()
        });
        let runner = gitlab.register_runner(NewRunner::default()).token;
        let project = gitlab.create_project("props", None).unwrap();
        Shared {
            runtime,
            gitlab,
            runner,
            project,
            http: reqwest::Client::new(),
        }
    })
}

/// Sends `data` split at `cuts` as a runner would, then the final update with its checksum.
async fn ingest(s: &Shared, data: &[u8], cuts: &[usize]) -> (u64, u16) {
    let pipeline = s
        .gitlab
        .create_pipeline(NewPipeline {
            project_id: s.project,
            ci_yaml: "job:\n  script: [x]\n".into(),
            variables: vec![],
            git_ref: "main".into(),
            ..Default::default()
        })
        .unwrap();
    let id = pipeline.jobs[0].id;
    let base = s.gitlab.url();
    let job: Value = s
        .http
        .post(format!("{base}/api/v4/jobs/request"))
        .json(&json!({"token": s.runner}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(job["id"], id, "jobs are taken in creation order");
    let token = job["token"].as_str().unwrap();
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    bounds.push(0);
    bounds.push(data.len());
    bounds.sort_unstable();
    bounds.dedup();
    for pair in bounds.windows(2) {
        let (start, end) = (pair[0], pair[1]);
        let reply = s
            .http
            .patch(format!("{base}/api/v4/jobs/{id}/trace"))
            .header("JOB-TOKEN", token)
            .header("Content-Range", format!("{start}-{}", end - 1))
            .body(data[start..end].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 202);
    }
    let checksum = format!("crc32:{:08x}", crc32fast::hash(data));
    let reply = s
        .http
        .put(format!("{base}/api/v4/jobs/{id}"))
        .json(&json!({"token": token, "state": "success",
                      "output": {"checksum": checksum, "bytesize": data.len()}}))
        .send()
        .await
        .unwrap();
    (id, reply.status().as_u16())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_chunking_stores_the_trace_byte_for_byte(
        data in proptest::collection::vec(any::<u8>(), 0..4096),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let s = shared();
        let (id, status) = s.runtime.block_on(ingest(s, &data, &cuts));
        prop_assert_eq!(status, 200);
        prop_assert_eq!(s.gitlab.trace(id).unwrap(), data);
        prop_assert_eq!(s.gitlab.job(id).unwrap().status, JobStatus::Success);
    }

    #[test]
    fn the_ci_yaml_parser_never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        let _ = parse(&text);
    }

    #[test]
    fn the_ci_yaml_parser_never_panics_on_yaml_shaped_text(
        lines in proptest::collection::vec(
            prop_oneof![
                Just("build:".to_string()),
                Just("  script:".to_string()),
                Just("    - make".to_string()),
                Just("  stage: test".to_string()),
                Just("  needs: [build]".to_string()),
                Just("stages: [build, test]".to_string()),
                Just("  timeout: 1h".to_string()),
                Just("  when: manual".to_string()),
                Just("  variables: {A: 1}".to_string()),
                Just(".hidden: &anchor".to_string()),
                Just("  <<: *anchor".to_string()),
                Just("  extends: .hidden".to_string()),
                Just("  extends: [.hidden, build]".to_string()),
                Just("  parallel: 3".to_string()),
                Just("  parallel:\n    matrix:\n      - A: [1, 2]".to_string()),
                Just("  rules: [{when: always}]".to_string()),
                Just("    - !reference [.hidden, script]".to_string()),
                Just("include: other.yml".to_string()),
                Just("  trigger: group/project".to_string()),
                "[a-z: \\[\\]-]{0,12}",
            ],
            0..16,
        )
    ) {
        let _ = parse(&lines.join("\n"));
    }

    #[test]
    fn parallel_n_makes_n_jobs_numbered_as_gitlab_does(n in 1usize..=200) {
        let config = parse(&format!("a:\n  parallel: {n}\n  script: [x]\n")).unwrap();
        prop_assert_eq!(config.jobs.len(), n);
        for (i, job) in config.jobs.iter().enumerate() {
            prop_assert_eq!(&job.name, &format!("a {}/{n}", i + 1));
            prop_assert_eq!(job.node, Some((i + 1, n)));
            prop_assert!(job.variables.is_empty());
        }
    }

    #[test]
    fn a_matrix_makes_one_job_per_combination_each_named_once(
        entries in proptest::collection::vec(proptest::collection::vec(1usize..4, 1..4), 1..4),
    ) {
        let mut yaml = String::from("a:\n  script: [x]\n  parallel:\n    matrix:\n");
        let mut expected = 0;
        for (e, counts) in entries.iter().enumerate() {
            for (k, count) in counts.iter().enumerate() {
                let values: Vec<String> = (0..*count).map(|v| format!("e{e}k{k}v{v}")).collect();
                let lead = if k == 0 { "      - " } else { "        " };
                yaml.push_str(&format!("{lead}K{k}: [{}]\n", values.join(", ")));
            }
            expected += counts.iter().product::<usize>();
        }
        let config = parse(&yaml).unwrap();
        prop_assert_eq!(config.jobs.len(), expected);
        let mut names: Vec<&str> = config.jobs.iter().map(|j| j.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        prop_assert_eq!(names.len(), expected);
    }

    /// `extends:` deep-merges `variables` (the job's value wins, the template's order first)
    /// and replaces lists (`tags`), whatever the names and values (values end in a digit so
    /// that YAML reads none as `null` or `true`).
    #[test]
    fn extends_merges_variables_and_replaces_lists(
        base in proptest::collection::btree_map("[A-E]", "[a-z]{1,3}[0-9]", 0..5),
        own in proptest::collection::btree_map("[A-E]", "[a-z]{1,3}[0-9]", 0..5),
        base_tags in proptest::collection::vec("[a-z]{1,3}[0-9]", 0..3),
        own_tags in proptest::option::of(proptest::collection::vec("[a-z]{1,3}[0-9]", 0..3)),
    ) {
        let map = |m: &std::collections::BTreeMap<String, String>| {
            let pairs: Vec<String> = m.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            format!("{{{}}}", pairs.join(", "))
        };
        let mut yaml = format!(
            ".t:\n  variables: {}\n  tags: [{}]\n  script: [x]\njob:\n  extends: .t\n  variables: {}\n",
            map(&base),
            base_tags.join(", "),
            map(&own)
        );
        if let Some(tags) = &own_tags {
            yaml.push_str(&format!("  tags: [{}]\n", tags.join(", ")));
        }
        let config = parse(&yaml).unwrap();
        let job = &config.jobs[0];
        let mut expected: Vec<(String, String)> = base
            .iter()
            .map(|(k, v)| (k.clone(), own.get(k).unwrap_or(v).clone()))
            .collect();
        expected.extend(
            own.iter()
                .filter(|(k, _)| !base.contains_key(*k))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        prop_assert_eq!(&job.variables, &expected);
        prop_assert_eq!(&job.tags, own_tags.as_ref().unwrap_or(&base_tags));
    }

    #[test]
    fn durations_in_hours_minutes_seconds_add_up(h in 0u64..100, m in 0u64..60, sec in 0u64..60) {
        prop_assert_eq!(parse_duration(&format!("{h}h {m}m {sec}s")), Some(h * 3600 + m * 60 + sec));
        prop_assert_eq!(parse_duration(&format!("{h} hours {m} minutes")), Some(h * 3600 + m * 60));
    }
}
