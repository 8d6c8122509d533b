use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::*;
use crate::config::Config;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn parse(retention: &str) -> Result<Config, String> {
    let text = format!(
        "[[runners]]\nname = \"cluster-a\"\nurl = \"https://gitlab.example.com\"\ntoken = \"glrt-abcdefgh1234\"\nexecutor = \"shell\"\n{retention}\n"
    );
    Config::parse(Path::new("/etc/batchci/config.toml"), &text).map_err(|e| e.to_string())
}

#[test]
fn retention_is_an_inline_table_or_a_table_of_age_and_count() {
    let inline = parse("builds_retention = { max_age = \"7d\", max_count = 50 }").unwrap();
    assert_eq!(
        inline.runners[0].builds_retention,
        Some(BuildsRetention {
            max_age: Some(7 * DAY),
            max_count: Some(50),
        })
    );
    let table = parse("[runners.builds_retention]\nmax_age = \"1w12h\"").unwrap();
    let retention = table.runners[0].builds_retention.unwrap();
    assert_eq!(retention.max_age, Some(7 * DAY + DAY / 2));
    assert_eq!(retention.max_count, None);
    assert_eq!(retention.to_string(), "max_age 180h");
    assert_eq!(parse("").unwrap().runners[0].builds_retention, None);
    assert!(
        crate::check::describe::describe(std::path::Path::new("config.toml"), &inline)
            .contains("\n  builds_retention: max_age 7d, max_count 50\n"),
        "{}",
        crate::check::describe::describe(std::path::Path::new("config.toml"), &inline)
    );
}

#[test]
fn retention_mistakes_name_file_line_and_key() {
    let cases = [
        (
            "builds_retention = { max_age = 7 }",
            "/etc/batchci/config.toml:6: runners[0].builds_retention.max_age: `7` has no unit: write \"7d\" for days, \"7h\" for hours (units: w, d, h, m, s)",
        ),
        (
            "builds_retention = { max_age = \"a week\" }",
            "/etc/batchci/config.toml:6: runners[0].builds_retention.max_age: `a week` is not an age (examples: \"7d\", \"12h\", \"1w2d\"; units: w, d, h, m, s)",
        ),
        (
            "builds_retention = { max_age = \"0d\" }",
            "/etc/batchci/config.toml:6: runners[0].builds_retention.max_age: `0d` would remove every build directory as soon as its job ends; use an age longer than 0",
        ),
        (
            "[runners.builds_retention]\nmax_count = -1",
            "/etc/batchci/config.toml:7: runners[0].builds_retention.max_count: invalid value: integer `-1`, expected usize",
        ),
        (
            "[runners.builds_retention]\nmax_ages = \"7d\"",
            "/etc/batchci/config.toml:7: runners[0].builds_retention.max_ages: unknown key `max_ages`; did you mean `max_age`?",
        ),
        (
            "builds_retention = {}",
            "/etc/batchci/config.toml:6: runners[0].builds_retention: set max_age (e.g. \"7d\"), max_count (e.g. 50) or both; without them nothing would be removed",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(parse(text).unwrap_err(), expected, "{text}");
    }
}

#[test]
fn max_count_zero_is_refused() {
    assert_eq!(
        parse("builds_retention = { max_count = 0 }").unwrap_err(),
        "/etc/batchci/config.toml:6: runners[0].builds_retention: max_count = 0 would remove every build directory as soon as its job ends; keep at least 1"
    );
}

/// A state directory, a runner whose builds go to `<dir>/builds`, and its build directories.
struct Site {
    dir: tempfile::TempDir,
    store: StateStore,
    runner: RunnerConfig,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state")).unwrap();
        let text = format!(
            "[[runners]]\nname = \"cluster-a\"\nurl = \"https://gitlab.example.com\"\ntoken = \"glrt-abcdefgh1234\"\nexecutor = \"shell\"\nbuilds_dir = {:?}\n",
            dir.path().join("builds").display().to_string()
        );
        let runner = Config::parse(Path::new("config.toml"), &text)
            .unwrap()
            .runners
            .remove(0);
        Site { dir, store, runner }
    }

    /// A build directory of project `project` in slot 0 with a file in it, as a job leaves it,
    /// last used `age` ago.
    fn build(&self, project: &str, age: Duration) -> PathBuf {
        let path = self
            .dir
            .path()
            .join("builds/abcdefgh/0/group")
            .join(project);
        std::fs::create_dir_all(path.join(".git")).unwrap();
        std::fs::write(path.join("README.md"), "checkout\n").unwrap();
        drop(job_started(&self.store, &self.runner, &path, None));
        self.age(&path, age);
        path
    }

    fn age(&self, path: &Path, age: Duration) {
        std::fs::File::open(path)
            .unwrap()
            .set_modified(SystemTime::now() - age)
            .unwrap()
    }

    fn prune(&self, policy: BuildsRetention) -> Pruned {
        prune(&self.store, &self.runner, &policy, SystemTime::now())
    }

    /// The projects whose build directory is still there.
    fn left(&self) -> Vec<String> {
        let group = self.dir.path().join("builds/abcdefgh/0/group");
        let mut names: Vec<String> = std::fs::read_dir(group)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn by_age(days: u32) -> BuildsRetention {
    BuildsRetention {
        max_age: Some(DAY * days),
        max_count: None,
    }
}

fn by_count(count: usize) -> BuildsRetention {
    BuildsRetention {
        max_age: None,
        max_count: Some(count),
    }
}

#[test]
fn directories_last_used_longer_ago_than_max_age_are_removed() {
    let site = Site::new();
    site.build("fresh", DAY);
    let old = site.build("old", 8 * DAY);
    let ancient = site.build("ancient", 30 * DAY);

    let pruned = site.prune(by_age(7));

    assert_eq!(
        pruned.removed,
        vec![old, ancient],
        "the most recently used first"
    );
    assert_eq!(pruned.failed, vec![]);
    assert_eq!(site.left(), ["fresh"]);
    assert_eq!(site.prune(by_age(7)), Pruned::default(), "nothing twice");
}

#[test]
fn only_the_max_count_most_recently_used_are_kept() {
    let site = Site::new();
    let a = site.build("a", 4 * DAY);
    site.build("b", DAY);
    let c = site.build("c", 3 * DAY);
    site.build("d", 2 * DAY);

    let pruned = site.prune(by_count(2));

    assert_eq!(pruned.removed, vec![c, a]);
    assert_eq!(site.left(), ["b", "d"]);
}

#[test]
fn a_running_jobs_directory_is_never_removed_and_its_end_counts_as_use() {
    let site = Site::new();
    let running = site.build("running", 30 * DAY);
    site.build("other", DAY);
    let guard = job_started(&site.store, &site.runner, &running, None);
    // A long job: its directory was last touched when it started, a month ago.
    site.age(&running, 30 * DAY);

    let pruned = site.prune(BuildsRetention {
        max_age: Some(DAY * 7),
        max_count: Some(1),
    });
    assert_eq!(pruned, Pruned::default());
    assert_eq!(site.left(), ["other", "running"]);

    drop(guard);
    let pruned = site.prune(by_count(1));
    assert_eq!(site.left(), ["running"], "its end made it the newest");
    assert_eq!(pruned.removed.len(), 1);
}

#[test]
fn a_directory_named_by_a_scheduler_job_record_is_busy() {
    let site = Site::new();
    let crashed = site.build("crashed", 30 * DAY);
    let mut scratch = crashed.clone().into_os_string();
    scratch.push(".tmp");
    site.store
        .record(&crate::state::Submission {
            gitlab_url: "https://gitlab.example.com".into(),
            gitlab_job_id: 7,
            job_token: "t".into(),
            runner_name: "cluster-a".into(),
            executor: crate::config::ExecutorKind::Shell,
            scheduler_job_id: String::new(),
            scratch_dir: Some(PathBuf::from(scratch)),
            leftovers: vec![],
            pid: 1,
            submitted_at: String::new(),
            user: None,
        })
        .unwrap();

    assert_eq!(site.prune(by_age(7)), Pruned::default());
    assert_eq!(site.left(), ["crashed"]);
}

#[test]
fn what_cannot_be_removed_is_reported_and_the_rest_still_goes() {
    let site = Site::new();
    let stuck = site.build("stuck", 30 * DAY);
    let old = site.build("old", 20 * DAY);
    // A non-empty directory holds the name `stuck` is renamed to before it is deleted.
    let blocker = site
        .dir
        .path()
        .join("builds/abcdefgh/0/group/stuck.removing");
    std::fs::create_dir_all(blocker.join("x")).unwrap();

    let pruned = site.prune(by_age(7));

    assert_eq!(pruned.removed, vec![old]);
    assert_eq!(pruned.failed.len(), 1);
    assert_eq!(pruned.failed[0].0, stuck);
    assert!(
        pruned.failed[0].1.contains("Directory not empty") || pruned.failed[0].1.contains("exists"),
        "{:?}",
        pruned.failed
    );
    assert_eq!(site.left(), ["stuck", "stuck.removing"]);
}

#[test]
fn only_recorded_directories_inside_builds_dir_are_touched() {
    let site = Site::new();
    site.build("recorded", 30 * DAY);
    let unrecorded = site.dir.path().join("builds/abcdefgh/0/group/by-hand");
    std::fs::create_dir_all(&unrecorded).unwrap();
    site.age(&unrecorded, 30 * DAY);
    let outside = site.dir.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    drop(job_started(&site.store, &site.runner, &outside, None));
    site.age(&outside, 30 * DAY);
    let other_runner = RunnerConfig {
        name: "cluster-b".into(),
        ..site.runner.clone()
    };
    let theirs = site.dir.path().join("builds/abcdefgh/1/group/theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    drop(job_started(&site.store, &other_runner, &theirs, None));
    site.age(&theirs, 30 * DAY);

    let pruned = site.prune(by_age(7));

    assert_eq!(pruned.removed.len(), 1);
    assert_eq!(site.left(), ["by-hand"]);
    assert!(outside.is_dir());
    assert!(
        theirs.is_dir(),
        "another runner's directory is its own to remove"
    );
}

#[test]
fn a_directory_already_gone_is_forgotten_and_a_half_removed_one_finished() {
    let site = Site::new();
    let gone = site.build("gone", DAY);
    std::fs::remove_dir_all(&gone).unwrap();
    let half = site.build("half", DAY);
    std::fs::rename(&half, removing_name(&half)).unwrap();

    let pruned = site.prune(by_count(5));

    assert_eq!(pruned, Pruned::default());
    assert!(site.left().is_empty(), "{:?}", site.left());
    assert!(BuildsIndex::of(&site.store).records("cluster-a").is_empty());
}

#[tokio::test]
async fn the_retention_task_runs_at_start_and_after_each_job() {
    let site = Site::new();
    let old = site.build("old", 30 * DAY);
    let mut runner = site.runner.clone();
    runner.builds_retention = Some(by_age(7));
    let config = Config {
        runners: vec![runner.clone()],
        ..Config::parse(Path::new("c.toml"), "").unwrap()
    };
    let stop = CancellationToken::new();

    start(&config, &site.store, &stop);
    wait_until(|| !old.exists()).await;

    // Old by now, and recorded after the first pass listed the records.
    let stale = site.dir.path().join("builds/abcdefgh/0/group/stale");
    std::fs::create_dir_all(&stale).unwrap();
    BuildsIndex::of(&site.store)
        .record("cluster-a", &stale, None)
        .unwrap();
    site.age(&stale, 30 * DAY);
    let next = site.dir.path().join("builds/abcdefgh/1/group/next");
    drop(job_started(&site.store, &runner, &next, None));
    wait_until(|| !stale.exists()).await;
    stop.cancel();
}

/// Waits (on tokio's clock, at most 20 s) until `done` holds.
async fn wait_until(done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the retention pass did not happen"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `nobody` as a job user, when this process is root; else `None`, having said loudly that
/// the case did not run (a failure with `CI=true`).
fn nobody(case: &str) -> Option<RunAs> {
    if nix::unistd::geteuid().is_root() {
        let user = crate::auth::mapping::LocalUser::lookup("nobody").ok()??;
        return Some(user.run_as(crate::command::Switch::Setuid));
    }
    let message = format!("retention::{case} DID NOT RUN: it needs root");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{message}, and CI=true"
    );
    eprintln!("\n!!! {message}\n");
    None
}

#[test]
fn a_downscoped_jobs_directory_is_removed_as_its_user() {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(user) = nobody("a_downscoped_jobs_directory_is_removed_as_its_user") else {
        return;
    };
    let site = Site::new();
    let group = site.dir.path().join("builds/abcdefgh/0/group");
    std::fs::create_dir_all(&group).unwrap();
    for dir in [
        site.dir.path().to_path_buf(),
        site.dir.path().join("builds"),
        site.dir.path().join("builds/abcdefgh"),
        site.dir.path().join("builds/abcdefgh/0"),
    ] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let chown = |path: &Path| {
        std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid)).unwrap();
    };
    chown(&group);
    let theirs = group.join("theirs");
    std::fs::create_dir_all(theirs.join("src")).unwrap();
    std::fs::write(theirs.join("src/main.c"), "int main;\n").unwrap();
    for path in [&theirs, &theirs.join("src"), &theirs.join("src/main.c")] {
        chown(path);
    }
    // Theirs too, but holding what only root may delete: as the user, it cannot go.
    let guarded = group.join("guarded");
    std::fs::create_dir_all(guarded.join("root-only")).unwrap();
    std::fs::write(guarded.join("root-only/file"), "x\n").unwrap();
    chown(&guarded);
    for path in [&theirs, &guarded] {
        drop(job_started(&site.store, &site.runner, path, Some(&user)));
        site.age(path, 30 * DAY);
    }

    let pruned = site.prune(by_age(7));

    assert_eq!(pruned.removed, vec![theirs.clone()]);
    assert_eq!(pruned.failed.len(), 1, "{:?}", pruned.failed);
    assert_eq!(pruned.failed[0].0, guarded);
    assert!(
        pruned.failed[0].1.starts_with("Permission denied"),
        "{:?}",
        pruned.failed
    );
    assert!(!theirs.exists());
    assert!(removing_name(&guarded).join("root-only/file").exists());
}
