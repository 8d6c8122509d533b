//! Jobs run as the person who started them (`[runners.auth]`, Jacamar's `[auth]`): the real
//! `batchci run` (and `batchci custom`) as root, a mock GitLab, the local accounts `ci-alice`
//! and `ci-bob` that `ci/users` creates.
//!
//! A pipeline by alice runs as alice from the checkout to the cleanup, in a builds directory of
//! hers that nobody else can read; a job whose identity does not map to an allowed local
//! account fails before anything of it runs: no git request reaches GitLab, no scheduler
//! command the cluster.
//!
//! The cases need root and the two accounts. Without them they fail with `CI=true` and
//! otherwise say loudly that they did not run.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use conformance::custom_driver::{Driver, JobSpec, JobStatus as CustomStatus};
use mock_gitlab::JobStatus;
use mock_gitlab::api::{
    FaultSpec, IdTokenFault, JobCall, NewPipeline, PipelineCreated, Variable, WRONG_AUDIENCE,
};
use support::cluster::Cluster;
use support::{Batchci, Site, plain_lines};

/// The `aud` the runners expect and the jobs' tokens carry.
const AUDIENCE: &str = "https://batchci.example";

/// A local test account.
struct Account {
    name: &'static str,
    uid: u32,
}

/// ci-alice and ci-bob, when this process is root and they exist; else `None`, having said
/// loudly that `case` did not run (a failure with `CI=true`).
fn accounts(case: &str) -> Option<(Account, Account)> {
    let lookup = |name: &'static str| {
        nix::unistd::User::from_name(name)
            .ok()
            .flatten()
            .map(|user| Account {
                name,
                uid: user.uid.as_raw(),
            })
    };
    let root = nix::unistd::geteuid().is_root();
    match (root, lookup("ci-alice"), lookup("ci-bob")) {
        (true, Some(alice), Some(bob)) => Some((alice, bob)),
        _ => {
            let message = format!(
                "downscope: {case} DID NOT RUN: it needs root and the local accounts ci-alice and ci-bob (ci/users creates them; ci/test runs it)"
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{message}, and CI=true");
            }
            eprintln!("\n!!! {message}\n");
            None
        }
    }
}

/// Lets every user through `dir` (a temp dir is 0700): the builds directory is below it.
fn open_to_all(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The `id_tokens:` every job of [`pipeline_by`] asks for.
const ID_TOKENS: &str =
    "default:\n  id_tokens:\n    BATCHCI_ID_TOKEN:\n      aud: https://batchci.example\n";

/// The GitLab user id of `login` in these stories (the mock numbers the others itself).
fn gitlab_id(login: &str) -> Option<u64> {
    match login {
        "ci-alice" => Some(7),
        "ci-bob" => Some(8),
        _ => None,
    }
}

/// A pipeline of `yaml` started by GitLab user `login`, whose jobs get an ID token for
/// [`AUDIENCE`] when `token` is true.
fn pipeline_by(
    site: &Site,
    login: &str,
    token: bool,
    yaml: &str,
    variables: &[(&str, &str)],
) -> PipelineCreated {
    let yaml = if token {
        format!("{ID_TOKENS}{yaml}")
    } else {
        yaml.to_string()
    };
    site.gitlab
        .create_pipeline(NewPipeline {
            project_id: site.project_id,
            ci_yaml: yaml,
            variables: variables
                .iter()
                .map(|(key, value)| Variable {
                    key: key.to_string(),
                    value: value.to_string(),
                    masked: false,
                })
                .collect(),
            user_login: Some(login.into()),
            user_id: gitlab_id(login),
            ..Default::default()
        })
        .expect("pipeline is valid")
}

/// Whether `trace` shows a JWT: every one starts with the base64 of `{"`.
fn shows_a_token(trace: &str) -> bool {
    trace.contains("eyJ")
}

/// The `[runners.auth]` table downscoping with `mode`, plus `extra` lines.
fn auth_table(mode: &str, extra: &str) -> String {
    format!("  [runners.auth]\n  downscope = {mode:?}\n  audience = {AUDIENCE:?}\n{extra}")
}

/// The log from the step script on.
fn from_step_script(trace: &str) -> Vec<String> {
    plain_lines(trace)
        .into_iter()
        .skip_while(|l| l != "Executing \"step_script\" stage of the job script")
        .collect()
}

/// The one file called `name` under `dir`.
fn find(dir: &Path, name: &str) -> PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap().flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == name) {
                return path;
            }
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    panic!("no {name} under {}", dir.display())
}

fn owner_and_mode(path: &Path) -> (u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.mode() & 0o7777)
}

/// The runner's short token, as job logs show it.
fn short_token(site: &Site) -> String {
    site.runner_token
        .trim_start_matches("glrt-")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(8)
        .collect()
}

/// The capabilities a batchci that is not root needs to downscope, as `setpriv` names them.
const CAPABILITIES: &str = "+chown,+dac_override,+fowner,+kill,+setgid,+setuid";

/// Alice's job on the shell executor, downscoped with `mode`, batchci started through
/// `wrapper` (none: as root): every stage as ci-alice, holding no capability.
async fn alice_runs_as_alice(mode: &str, wrapper: &[&str]) {
    let Some((alice, _)) = accounts(&format!("alice_runs_as_alice ({mode} {wrapper:?})")) else {
        return;
    };
    let site = Site::start(&["shell"]).await;
    open_to_all(site.dir.path());
    let config = site.write_config("shell", &auth_table(mode, ""));
    let pipeline = pipeline_by(
        &site,
        alice.name,
        true,
        "build:\n  tags: [shell]\n  script:\n    - id -un\n    - echo \"home=$HOME user=$USER logname=$LOGNAME\"\n    - grep -E '^Cap(Inh|Prm|Eff|Amb)' /proc/self/status\n    - cat README.md\n    - echo made > left-behind.txt\n    - stat -c '%a %U' \"$CI_BUILDS_DIR\" .\n  after_script:\n    - id -un\n",
        &[],
    );
    let _batchci = if wrapper.is_empty() {
        Batchci::run(&config, &[])
    } else {
        Batchci::run_wrapped(wrapper, &config, &[])
    };

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(job.status, JobStatus::Success, "{trace}");
    assert!(!shows_a_token(&trace), "{trace}");
    let lines = plain_lines(&trace);
    assert_eq!(
        lines[..3],
        [
            format!("Running with batchci {} (shell)", batchci::gitlab::VERSION),
            format!("  on conformance {}", short_token(&site)),
            format!(
                "Running as local user ci-alice (uid {}) for GitLab user ci-alice (id 7), through {mode}",
                alice.uid
            ),
        ],
        "{lines:#?}"
    );
    assert_eq!(
        from_step_script(&trace),
        [
            "Executing \"step_script\" stage of the job script",
            "$ id -un",
            "ci-alice",
            "$ echo \"home=$HOME user=$USER logname=$LOGNAME\"",
            "home=/home/ci-alice user=ci-alice logname=ci-alice",
            "$ grep -E '^Cap(Inh|Prm|Eff|Amb)' /proc/self/status",
            "CapInh:\t0000000000000000",
            "CapPrm:\t0000000000000000",
            "CapEff:\t0000000000000000",
            "CapAmb:\t0000000000000000",
            "$ cat README.md",
            "hello from the repository",
            "$ echo made > left-behind.txt",
            "$ stat -c '%a %U' \"$CI_BUILDS_DIR\" .",
            "700 ci-alice",
            "755 ci-alice",
            "Running after_script",
            "$ id -un",
            "ci-alice",
            "Cleaning up project directory and file based variables",
            "Job succeeded",
        ]
    );
    let home = site.dir.path().join("builds").join("ci-alice");
    assert_eq!(owner_and_mode(&home), (alice.uid, 0o700));
    let left = find(&home, "left-behind.txt");
    let project = left.parent().unwrap();
    for path in [&left, &project.join("README.md"), &project.join(".git")] {
        assert_eq!(
            owner_and_mode(path).0,
            alice.uid,
            "{} is not ci-alice's",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_by_alice_runs_as_alice_through_setuid() {
    alice_runs_as_alice("setuid", &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_by_alice_runs_as_alice_through_sudo() {
    alice_runs_as_alice("sudo", &[]).await;
}

/// batchci as `nobody` with only the capabilities it needs (as systemd's `AmbientCapabilities`
/// gives them): the job still runs as alice, and none of the capabilities reaches it.
#[tokio::test(flavor = "multi_thread")]
async fn a_batchci_that_is_not_root_but_holds_the_capabilities_passes_none_on() {
    alice_runs_as_alice(
        "setuid",
        &[
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            &format!("--inh-caps={CAPABILITIES}"),
            &format!("--ambient-caps={CAPABILITIES}"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bob_cannot_read_alices_builds_directory() {
    let Some((alice, bob)) = accounts("bob_cannot_read_alices_builds_directory") else {
        return;
    };
    let site = Site::start(&["shell"]).await;
    open_to_all(site.dir.path());
    let config = site.write_config("shell", &auth_table("setuid", ""));
    let _batchci = Batchci::run(&config, &[]);
    let alices = pipeline_by(
        &site,
        alice.name,
        true,
        "build:\n  tags: [shell]\n  script:\n    - echo secret > results.txt\n",
        &[],
    );
    let (job, trace) = site.finished(alices.jobs[0].id).await;
    assert_eq!(job.status, JobStatus::Success, "{trace}");
    let alices_dir = site.dir.path().join("builds").join("ci-alice");

    let bobs = pipeline_by(
        &site,
        bob.name,
        true,
        "snoop:\n  tags: [shell]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - id -un\n    - ls \"$ALICES_DIR\" || echo \"ls failed with $?\"\n",
        &[("ALICES_DIR", &alices_dir.display().to_string())],
    );
    let (job, trace) = site.finished(bobs.jobs[0].id).await;

    assert_eq!(job.status, JobStatus::Success, "{trace}");
    assert_eq!(
        from_step_script(&trace),
        [
            "Executing \"step_script\" stage of the job script".to_string(),
            "$ id -un".into(),
            "ci-bob".into(),
            "$ ls \"$ALICES_DIR\" || echo \"ls failed with $?\"".into(),
            format!(
                "ls: cannot open directory '{}': Permission denied",
                alices_dir.display()
            ),
            "ls failed with 2".into(),
            "Cleaning up project directory and file based variables".into(),
            "Job succeeded".into(),
        ]
    );
    let bobs_dir = site.dir.path().join("builds").join("ci-bob");
    assert_eq!(owner_and_mode(&bobs_dir), (bob.uid, 0o700));
    assert_eq!(owner_and_mode(&alices_dir), (alice.uid, 0o700));
}

on_both_clusters!(alice_submits_her_slurm_job_and_it_runs_as_her);

/// Lets `cluster`'s users reach it: the simulated one's daemon is started by root (as a site's
/// cluster is) before any user's command; the real one's recording wrappers and their log are
/// opened to everyone.
fn share(cluster: &Cluster) {
    match cluster {
        Cluster::Fake { state_dir, .. } => {
            open_to_all(state_dir.parent().unwrap());
            let squeue = std::process::Command::new("squeue")
                .envs(cluster.batchci_env())
                .output()
                .unwrap();
            assert!(squeue.status.success(), "{squeue:?}");
        }
        Cluster::Real { shim_dir, log, .. } => {
            open_to_all(shim_dir.parent().unwrap());
            std::fs::write(log, "").unwrap();
            std::fs::set_permissions(log, std::fs::Permissions::from_mode(0o666)).unwrap();
        }
    }
}

/// On a Slurm runner, the simulated cluster and the real Slurm: alice's job is submitted by
/// alice, the scheduler records it as hers, and it runs as her.
async fn alice_submits_her_slurm_job_and_it_runs_as_her(cluster: &Cluster) {
    let case = format!(
        "alice_submits_her_slurm_job_and_it_runs_as_her ({})",
        cluster.kind()
    );
    let Some((alice, _)) = accounts(&case) else {
        return;
    };
    share(cluster);
    let site = Site::start(&["slurm"]).await;
    open_to_all(site.dir.path());
    let config = site.write_config(
        "slurm",
        &format!("{}{}", cluster.batch_table(""), auth_table("setuid", "")),
    );
    let pipeline = pipeline_by(
        &site,
        alice.name,
        true,
        "build:\n  tags: [slurm]\n  script:\n    - id -un\n    - echo \"$SLURM_JOB_USER $HOME\"\n    - cat README.md\n    - echo made > left-behind.txt\n",
        &[],
    );
    let before = match cluster {
        Cluster::Fake { .. } => cluster.fake_callers().len(),
        Cluster::Real { .. } => 0,
    };
    let env: Vec<(String, String)> = cluster.batchci_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let _batchci = Batchci::run(&config, &env);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(job.status, JobStatus::Success, "{trace}");
    let lines = from_step_script(&trace);
    let slurm_job = lines
        .iter()
        .find_map(|l| l.strip_prefix("Submitted batch job "))
        .unwrap_or_else(|| panic!("no submission in {lines:#?}"))
        .to_string();
    let script: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .skip_while(|l| *l != "$ id -un")
        .collect();
    assert_eq!(
        script,
        [
            "$ id -un",
            "ci-alice",
            "$ echo \"$SLURM_JOB_USER $HOME\"",
            "ci-alice /home/ci-alice",
            "$ cat README.md",
            "hello from the repository",
            "$ echo made > left-behind.txt",
            "Cleaning up project directory and file based variables",
            "Job succeeded",
        ]
    );
    if let Cluster::Fake { .. } = cluster {
        // Every scheduler command of the job was alice's: sbatch, and the queries after it.
        let calls = cluster.fake_callers()[before..].to_vec();
        assert!(
            calls.iter().any(|(program, _)| program == "sbatch"),
            "{calls:?}"
        );
        assert!(
            calls.iter().all(|(_, user)| user == "ci-alice"),
            "{calls:?}"
        );
    }
    // The scheduler's own record: real accounting hears of the job a moment after its end.
    let sacct = || {
        let output = std::process::Command::new("sacct")
            .envs(cluster.batchci_env())
            .args(["-n", "-P", "-X", "-o", "User,State", "-j", &slurm_job])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let recorded = conformance::poll::poll_until(std::time::Duration::from_secs(60), || {
        sacct() == "ci-alice|COMPLETED\n"
    });
    assert!(recorded, "sacct says {:?}", sacct());
    let home = site.dir.path().join("builds").join("ci-alice");
    assert_eq!(owner_and_mode(&home), (alice.uid, 0o700));
    let left = find(&home, "left-behind.txt");
    assert_eq!(owner_and_mode(&left).0, alice.uid);
}

/// The site's validation script: GitLab's `alice` is local `ci-alice`, `mallory` is refused
/// with the site's words, `admin` would be root; everyone else keeps their login.
const VALIDATION_SCRIPT: &str = "#!/bin/sh\ncase \"$JWT_USER_LOGIN\" in\n  alice) echo ci-alice ;;\n  mallory) echo \"projects of $JWT_USER_LOGIN may not run here (ticket 42)\" >&2; exit 1 ;;\n  admin) echo root ;;\nesac\n";

/// Each identity that may not run fails its job before anything of it ran: the reason is the
/// log's last line, GitLab got no git request, the cluster no scheduler command.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_whose_identity_is_refused_fails_before_anything_runs() {
    let Some(_) = accounts("a_job_whose_identity_is_refused_fails_before_anything_runs") else {
        return;
    };
    let (site, cluster, cluster_dir) = support::site_and_fake_cluster().await;
    open_to_all(site.dir.path());
    open_to_all(cluster_dir.path());
    let script = site.dir.path().join("validate");
    std::fs::write(&script, VALIDATION_SCRIPT).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = site.write_config(
        "slurm",
        &format!(
            "{}{}",
            cluster.batch_table(""),
            auth_table(
                "setuid",
                &format!(
                    "  user_allowlist = [\"ci-alice\", \"ci-bob\", \"root\"]\n  user_blocklist = [\"ci-bob\"]\n  validation_script = {:?}\n",
                    script.display().to_string()
                )
            )
        ),
    );
    let yaml = "build:\n  tags: [slurm]\n  script:\n    - echo never\n";
    let cases = [
        (
            "carol",
            true,
            "GitLab user `carol` maps to local user `carol`, which does not exist on this host",
        ),
        (
            "ci-bob",
            true,
            "local user `ci-bob` (GitLab user `ci-bob`) is in [runners.auth] user_blocklist",
        ),
        (
            "nobody",
            true,
            "local user `nobody` (GitLab user `nobody`) is not in [runners.auth] user_allowlist",
        ),
        (
            "mallory",
            true,
            "the validation script refused GitLab user `mallory`: projects of mallory may not run here (ticket 42)",
        ),
        (
            "admin",
            true,
            "GitLab user `admin` maps to local user `root`, which is root (uid 0), and [runners.auth] allow_root is false",
        ),
        (
            "ci-alice",
            false,
            "the job has no ID token: add `id_tokens: {BATCHCI_ID_TOKEN: {aud: https://batchci.example}}` to the job",
        ),
    ];
    let pipelines: Vec<PipelineCreated> = cases
        .iter()
        .map(|(login, token, _)| pipeline_by(&site, login, *token, yaml, &[]))
        .collect();
    // The `squeue` that started the cluster's daemon.
    let before = cluster.calls();
    let env: Vec<(String, String)> = cluster.batchci_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let _batchci = Batchci::run(&config, &env);

    for ((login, _, reason), pipeline) in cases.iter().zip(&pipelines) {
        let id = pipeline.jobs[0].id;
        let (job, trace) = site.finished(id).await;
        assert_eq!(job.status, JobStatus::Failed, "{login:?}: {trace}");
        assert_eq!(
            job.failure_reason.as_deref(),
            Some("runner_system_failure"),
            "{login:?}"
        );
        assert_eq!(
            plain_lines(&trace),
            [
                format!("Running with batchci {} (slurm)", batchci::gitlab::VERSION),
                format!("  on conformance {}", short_token(&site)),
                format!("ERROR: Job failed (system failure): {reason}"),
            ],
            "{login:?}"
        );
        assert!(!shows_a_token(&trace), "{login:?}: {trace}");
        let calls = site.gitlab.job_calls(id).unwrap();
        assert!(
            !calls.iter().any(|c| matches!(c, JobCall::Git { .. })),
            "{login:?}: git reached GitLab: {calls:?}"
        );
    }
    assert_eq!(before, [["squeue"]]);
    assert_eq!(cluster.calls(), before, "a scheduler command ran");
}

/// A token GitLab did not sign, one that expired, one for another audience and one GitLab did
/// not deliver each fail their job before anything of it runs, saying which check failed.
#[tokio::test(flavor = "multi_thread")]
async fn a_forged_expired_foreign_or_missing_token_fails_before_anything_runs() {
    let Some((alice, _)) =
        accounts("a_forged_expired_foreign_or_missing_token_fails_before_anything_runs")
    else {
        return;
    };
    let site = Site::start(&["shell"]).await;
    open_to_all(site.dir.path());
    let config = site.write_config("shell", &auth_table("setuid", ""));
    let keys_url = format!("{}/oauth/discovery/keys", site.gitlab.url());
    let keys: serde_json::Value = reqwest::get(&keys_url).await.unwrap().json().await.unwrap();
    let kid = keys["keys"][0]["kid"].as_str().unwrap().to_string();
    let _batchci = Batchci::run(&config, &[]);
    let cases = [
        (
            IdTokenFault::WrongKey,
            format!(
                "the job's ID token in BATCHCI_ID_TOKEN was not signed by this GitLab's keys: its signature does not match key {kid} at {keys_url}"
            ),
        ),
        (
            IdTokenFault::Expired,
            "the job's ID token in BATCHCI_ID_TOKEN has expired (exp ".to_string(),
        ),
        (
            IdTokenFault::WrongAudience,
            format!(
                "the job's ID token in BATCHCI_ID_TOKEN is for audience {WRONG_AUDIENCE}, this runner expects {AUDIENCE}"
            ),
        ),
        (
            IdTokenFault::Missing,
            format!(
                "the job has no ID token: add `id_tokens: {{BATCHCI_ID_TOKEN: {{aud: {AUDIENCE}}}}}` to the job"
            ),
        ),
    ];
    for (fault, reason) in cases {
        site.gitlab
            .add_fault(FaultSpec {
                count: Some(1),
                ..FaultSpec::id_token(fault)
            })
            .unwrap();
        let pipeline = pipeline_by(
            &site,
            alice.name,
            true,
            "build:\n  tags: [shell]\n  script:\n    - echo never\n",
            &[],
        );
        let id = pipeline.jobs[0].id;
        let (job, trace) = site.finished(id).await;

        assert_eq!(job.status, JobStatus::Failed, "{fault:?}: {trace}");
        assert_eq!(job.failure_reason.as_deref(), Some("runner_system_failure"));
        let lines = plain_lines(&trace);
        assert_eq!(lines.len(), 3, "{fault:?}: {lines:#?}");
        assert!(
            lines[2].starts_with(&format!("ERROR: Job failed (system failure): {reason}")),
            "{fault:?}: {lines:#?}"
        );
        assert!(!shows_a_token(&trace), "{fault:?}: {trace}");
        let calls = site.gitlab.job_calls(id).unwrap();
        assert!(
            !calls.iter().any(|c| matches!(c, JobCall::Git { .. })),
            "{fault:?}: git reached GitLab: {calls:?}"
        );
        site.gitlab.clear_faults();
    }
    assert!(!site.dir.path().join("builds").join("ci-alice").exists());
}

/// A Jacamar-style configuration `dir/batchci.toml` for the shell executor with `auth`.
fn jacamar_config(dir: &Path, auth: &str) -> PathBuf {
    let path = dir.join("batchci.toml");
    std::fs::write(
        &path,
        format!(
            "[general]\nexecutor = \"shell\"\ndata_dir = {data:?}\n\n[auth]\n{auth}",
            data = dir.join("data").display().to_string()
        ),
    )
    .unwrap();
    path
}

fn custom_driver(dir: &Path, config: &Path) -> Driver {
    let work = dir.join("runner-tmp");
    std::fs::create_dir_all(&work).unwrap();
    Driver::batchci(&support::workspace_binary("batchci"), config, &work)
        .preparation_retry_pause(std::time::Duration::from_millis(100))
}

/// Hands out the job of a pipeline by GitLab user `login` as GitLab would to gitlab-runner:
/// its id and its ID token, which gitlab-runner passes on to the custom executor.
async fn handed_out(site: &Site, login: &str) -> (u64, String) {
    pipeline_by(site, login, true, "build:\n  script:\n    - echo\n", &[]);
    let client = batchci::gitlab::GitlabClient::new(site.gitlab.url(), "custom").unwrap();
    match client.request_job(&site.runner_token, None).await.unwrap() {
        batchci::gitlab::JobRequest::Job(job, _) => {
            let token = job.variable("BATCHCI_ID_TOKEN").expect("an ID token");
            (job.id, token.to_string())
        }
        other => panic!("GitLab handed out no job: {other:?}"),
    }
}

/// Custom executor mode with Jacamar's `[auth]`: alice's job runs as alice in her own builds
/// directory; bob, on the blocklist, is refused at config_exec, before any stage.
#[tokio::test(flavor = "multi_thread")]
async fn custom_executor_mode_runs_alice_as_alice_and_refuses_bob() {
    let Some((alice, bob)) = accounts("custom_executor_mode_runs_alice_as_alice_and_refuses_bob")
    else {
        return;
    };
    let site = Site::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    open_to_all(dir.path());
    let config = jacamar_config(
        dir.path(),
        &format!(
            "downscope = \"setuid\"\naudience = {AUDIENCE:?}\nuser_blocklist = [\"ci-bob\"]\n"
        ),
    );
    let job = |(id, token): (u64, String)| {
        JobSpec::new(id)
            .variable("CI_SERVER_URL", site.gitlab.url())
            .variable("BATCHCI_ID_TOKEN", &token)
    };
    let alices = job(handed_out(&site, alice.name).await).script(&[
        "id -un",
        "cat README.md",
        "echo made > left-behind.txt",
    ]);
    let bobs = job(handed_out(&site, bob.name).await).script(&["echo never"]);
    let driver = custom_driver(dir.path(), &config);
    let (report, bobs_report) = tokio::task::spawn_blocking(move || {
        (driver.run(alices).unwrap(), driver.run(bobs).unwrap())
    })
    .await
    .unwrap();

    assert_eq!(report.status, CustomStatus::Success, "{}", report.log);
    let builds = dir.path().join("data").join("builds").join("ci-alice");
    assert_eq!(
        report.config.as_ref().map(|c| c["builds_dir"].clone()),
        Some(serde_json::json!(
            builds
                .join(conformance::custom_driver::SHORT_TOKEN)
                .join("0")
        ))
    );
    let lines = report.lines();
    let script: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .skip_while(|l| *l != "Executing \"step_script\" stage of the job script")
        .skip(1)
        .take(5)
        .collect();
    assert_eq!(
        script,
        [
            "$ id -un",
            "ci-alice",
            "$ cat README.md",
            conformance::custom_driver::README,
            "$ echo made > left-behind.txt",
        ]
    );
    assert_eq!(owner_and_mode(&builds), (alice.uid, 0o700));
    assert_eq!(
        owner_and_mode(&dir.path().join("data").join("cache").join("ci-alice")),
        (alice.uid, 0o700)
    );
    assert_eq!(
        owner_and_mode(&report.project_dir.join("left-behind.txt")).0,
        alice.uid
    );

    let report = bobs_report;
    assert_eq!(report.status, CustomStatus::Failed);
    assert_eq!(report.failure_reason, Some("runner_system_failure"));
    assert_eq!(
        report.stages(),
        [
            "config", "cleanup", "config", "cleanup", "config", "cleanup"
        ]
    );
    let refusal = "ERROR: local user `ci-bob` (GitLab user `ci-bob`) is in [auth] user_blocklist";
    let lines = report.lines();
    assert_eq!(
        lines.iter().filter(|l| *l == refusal).count(),
        3,
        "{lines:#?}"
    );
    assert!(
        !dir.path()
            .join("data")
            .join("builds")
            .join("ci-bob")
            .exists()
    );
}
