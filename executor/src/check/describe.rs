//! What each runner of a configuration will do, in words, before the checks' table.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::{Config, ExecutorKind};

/// A person-readable account of what each runner will do.
pub(crate) fn describe(path: &Path, config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "configuration {}: {} runner(s), at most {} job(s) at once, polling every {:?}{}",
        path.display(),
        config.runners.len(),
        config.concurrent,
        config.job_poll_interval(),
        if config.check_interval.is_zero() {
            " (check_interval = 0 means the default, as in gitlab-runner)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "scheduler jobs are recorded in {}",
        config.state_dir.display()
    );
    for runner in &config.runners {
        let _ = writeln!(out, "\nrunner {:?} at {}", runner.name, runner.url);
        let limit = if runner.limit == 0 {
            "no own limit".to_string()
        } else {
            format!("at most {} job(s)", runner.limit)
        };
        let _ = writeln!(out, "  executor: {} ({limit})", runner.executor);
        let how = crate::backends::describe(runner.executor)
            .map_or("NOT AVAILABLE in this version", |(how, _)| how);
        let _ = writeln!(out, "  step script: {how}");
        if runner.executor == ExecutorKind::DockerSlurm {
            let slurm = &runner.slurm;
            let _ = writeln!(
                out,
                "  allocation: partition {}, {} CPU(s), memory {}; user parameters are not used",
                slurm.partition.as_deref().unwrap_or("(default)"),
                slurm.cpus.unwrap_or(1),
                slurm.memory.as_deref().unwrap_or("(partition default)")
            );
        } else if runner.executor != ExecutorKind::Shell {
            let _ = writeln!(
                out,
                "  user parameters: from {}{}",
                runner.batch.arguments_variable.join(", then "),
                if runner.batch.allow_illegal_args {
                    " (controlled flags allowed!)"
                } else {
                    "; flags batchci controls are refused"
                }
            );
        }
        let builds = runner
            .builds_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| {
                format!("{} (default)", super::dirs::default_builds_dir().display())
            });
        let auth = &runner.auth;
        let downscoped = auth.downscope != crate::auth::Downscope::None;
        if auth.enabled() {
            let runs_as = if downscoped {
                format!(
                    "each job runs as the local account of the person who started it ({})",
                    auth.downscope.name()
                )
            } else {
                "the identity is checked; jobs run as batchci's own user".to_string()
            };
            let _ = writeln!(
                out,
                "  identity: the ID token in {} for audience {}; {runs_as}",
                auth.token_variable,
                auth.audience.as_deref().unwrap_or("(none)")
            );
            let lists = [
                ("allowed users", &auth.user_allowlist),
                ("allowed groups", &auth.group_allowlist),
                ("blocked users", &auth.user_blocklist),
                ("blocked groups", &auth.group_blocklist),
            ];
            for (what, list) in lists.iter().filter(|(_, list)| !list.is_empty()) {
                let _ = writeln!(out, "  {what}: {}", list.join(", "));
            }
            if let Some(script) = &auth.validation_script {
                let _ = writeln!(
                    out,
                    "  validation script: {} (at most {:?})",
                    script.display(),
                    auth.validation_timeout
                );
            }
            if !auth.allow_root {
                let _ = writeln!(out, "  root (uid 0) never runs jobs");
            }
        }
        let builds = if downscoped {
            format!("{builds}/<user>, one directory per user, mode 0700")
        } else {
            builds
        };
        let _ = writeln!(out, "  builds_dir: {builds}");
        if let Some(retention) = &runner.builds_retention {
            let _ = writeln!(out, "  builds_retention: {retention}");
        }
        let _ = writeln!(out, "  job log limit: {} KiB", runner.output_limit);
    }
    out
}
