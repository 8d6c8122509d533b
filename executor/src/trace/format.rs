//! The byte-level conventions of a GitLab job log: ANSI colours, runner message lines and
//! collapsible section markers, exactly as gitlab-runner writes them.

/// Clears the rest of the line; starts plain runner lines.
pub const ANSI_CLEAR: &str = "\x1b[0K";
/// Resets colours; ends every runner line.
pub const ANSI_RESET: &str = "\x1b[0;m";
/// Bold green: success and command echoes.
pub const ANSI_BOLD_GREEN: &str = "\x1b[32;1m";
/// Bold red: errors.
pub const ANSI_BOLD_RED: &str = "\x1b[31;1m";
/// Yellow: warnings.
pub const ANSI_YELLOW: &str = "\x1b[0;33m";
/// Bold cyan: section headers.
pub const ANSI_BOLD_CYAN: &str = "\x1b[36;1m";

/// A plain runner message (gitlab-runner's `Println`).
pub fn info(message: &str) -> String {
    format!("{ANSI_CLEAR}{message}\n{ANSI_RESET}")
}

/// A success message in bold green (`Infoln`), e.g. `Job succeeded`.
pub fn notice(message: &str) -> String {
    format!("{ANSI_BOLD_GREEN}{message}\n{ANSI_RESET}")
}

/// A warning (`Warningln`).
pub fn warning(message: &str) -> String {
    format!("{ANSI_YELLOW}WARNING: {message}\n{ANSI_RESET}")
}

/// An error (`Errorln`).
pub fn error(message: &str) -> String {
    format!("{ANSI_BOLD_RED}ERROR: {message}\n{ANSI_RESET}")
}

/// Opens the collapsible section `name` at `unix_time` with a bold cyan `header`.
pub fn section_start(name: &str, unix_time: i64, header: &str) -> String {
    format!(
        "section_start:{unix_time}:{name}\r{ANSI_CLEAR}{}",
        info(&format!("{ANSI_BOLD_CYAN}{header}{ANSI_RESET}"))
    )
}

/// Closes section `name`.
pub fn section_end(name: &str, unix_time: i64) -> String {
    format!("section_end:{unix_time}:{name}\r{ANSI_CLEAR}")
}

/// The header gitlab-runner shows for a stage.
pub fn stage_header(stage: &str, executor: &str) -> String {
    match stage {
        "prepare_executor" => format!("Preparing the \"{executor}\" executor"),
        "prepare_script" => "Preparing environment".to_string(),
        "get_sources" => "Getting source from Git repository".to_string(),
        "restore_cache" => "Restoring cache".to_string(),
        "download_artifacts" => "Downloading artifacts".to_string(),
        "after_script" => "Running after_script".to_string(),
        "archive_cache" => "Saving cache for successful job".to_string(),
        "archive_cache_on_failure" => "Saving cache for failed job".to_string(),
        "upload_artifacts_on_success" => "Uploading artifacts for successful job".to_string(),
        "upload_artifacts_on_failure" => "Uploading artifacts for failed job".to_string(),
        "cleanup_file_variables" => {
            "Cleaning up project directory and file based variables".to_string()
        }
        step => format!("Executing \"{step}\" stage of the job script"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_match_gitlab_runners_bytes() {
        assert_eq!(
            info("Running on node01"),
            "\x1b[0KRunning on node01\n\x1b[0;m"
        );
        assert_eq!(notice("Job succeeded"), "\x1b[32;1mJob succeeded\n\x1b[0;m");
        assert_eq!(
            error("Job failed: exit code 3"),
            "\x1b[31;1mERROR: Job failed: exit code 3\n\x1b[0;m"
        );
        assert_eq!(
            section_start(
                "get_sources",
                1621524456,
                "Getting source from Git repository"
            ),
            "section_start:1621524456:get_sources\r\x1b[0K\x1b[0K\x1b[36;1mGetting source from Git repository\x1b[0;m\n\x1b[0;m"
        );
        assert_eq!(
            section_end("get_sources", 1621524510),
            "section_end:1621524510:get_sources\r\x1b[0K"
        );
    }

    #[test]
    fn stage_headers_follow_gitlab_runner() {
        assert_eq!(
            stage_header("prepare_executor", "slurm"),
            "Preparing the \"slurm\" executor"
        );
        assert_eq!(
            stage_header("step_script", "slurm"),
            "Executing \"step_script\" stage of the job script"
        );
    }
}
