//! Field formatting shared by squeue, sacct and scontrol: `%.18i`-style format strings and
//! Slurm's date rendering.

use crate::model::Job;
use crate::units;

/// One piece of a `%`-format: literal text or a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// A field: code, width, right-justified.
    Field {
        /// Field letter.
        code: char,
        /// Width (0 = as is).
        width: usize,
        /// Right-justify.
        right: bool,
    },
}

/// Parses `%[.][width]code` format strings.
pub fn parse_format(fmt: &str) -> Vec<Piece> {
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            text.push(chars[i]);
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let right = chars.get(j) == Some(&'.');
        if right {
            j += 1;
        }
        let mut w = String::new();
        while j < chars.len() && chars[j].is_ascii_digit() {
            w.push(chars[j]);
            j += 1;
        }
        match chars.get(j) {
            Some(&code) => {
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                out.push(Piece::Field {
                    code,
                    width: field_width(&w).unwrap_or(0),
                    right,
                });
                i = j + 1;
            }
            None => {
                text.extend(&chars[i..]);
                break;
            }
        }
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    out
}

/// The widest field a format may ask for, so that `%.9999999999i` cannot ask for lines of
/// gigabytes.
pub const MAX_FIELD_WIDTH: usize = 65_535;

/// A field width as written in a format (`18` in `%.18i`, `JobName%30`, `jobid:10`); `None`
/// when it is no number.
pub fn field_width(text: &str) -> Option<usize> {
    text.parse::<usize>().ok().map(|w| w.min(MAX_FIELD_WIDTH))
}

/// One output line: literal pieces as they are, each field's value from `value` fitted to its
/// width.
pub fn render(pieces: &[Piece], value: &dyn Fn(char) -> String) -> String {
    let mut line = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => line.push_str(t),
            Piece::Field { code, width, right } => {
                line.push_str(&fit(&value(*code), *width, *right))
            }
        }
    }
    line
}

/// Pads or truncates like Slurm's `_print_str`.
pub fn fit(value: &str, width: usize, right: bool) -> String {
    if width == 0 {
        return value.to_string();
    }
    let v: String = value.chars().take(width).collect();
    if right {
        format!("{v:>width$}")
    } else {
        format!("{v:<width$}")
    }
}

/// A time as `SLURM_TIME_FORMAT` asks (`YYYY-MM-DDTHH:MM:SS` by default), or `unset`
/// (`N/A`, `Unknown`) when there is none.
pub fn date(t: Option<f64>, unset: &str) -> String {
    use chrono::TimeZone;
    let Some(t) = t else {
        return unset.into();
    };
    let when = match chrono::Local.timestamp_opt(t.floor() as i64, 0) {
        chrono::LocalResult::Single(dt) | chrono::LocalResult::Ambiguous(dt, _) => dt,
        chrono::LocalResult::None => return "Unknown".into(),
    };
    let format = match time_format() {
        TimeFormat::Standard => "%Y-%m-%dT%H:%M:%S",
        TimeFormat::Relative => relative_format(&when),
        TimeFormat::Strftime(format) => format.as_str(),
    };
    let mut text = String::new();
    let items: Vec<_> = chrono::format::StrftimeItems::new(format).collect();
    if items.contains(&chrono::format::Item::Error) {
        // strftime copies what it does not know; chrono would refuse the whole format.
        return format.to_string();
    }
    match std::fmt::Write::write_fmt(
        &mut text,
        format_args!("{}", when.format_with_items(items.into_iter())),
    ) {
        Ok(()) => text,
        Err(_) => format.to_string(),
    }
}

/// The simulated now the controller last reported, for `SLURM_TIME_FORMAT=relative`.
static NOW: std::sync::OnceLock<f64> = std::sync::OnceLock::new();

/// Notes the controller's (simulated) now, against which relative times are told.
pub fn note_now(now: f64) {
    let _ = NOW.set(now);
}

/// What `SLURM_TIME_FORMAT` asks for.
enum TimeFormat {
    Standard,
    Relative,
    Strftime(String),
}

/// Read once per command, as Slurm's `_make_time_str_internal` does: unset, empty or
/// `standard` is the ISO form; `relative`; any other text with a `%` and under 32 bytes is a
/// strftime format; anything else is refused once with an error line and the ISO form used.
fn time_format() -> &'static TimeFormat {
    static FORMAT: std::sync::OnceLock<TimeFormat> = std::sync::OnceLock::new();
    FORMAT.get_or_init(|| match std::env::var("SLURM_TIME_FORMAT") {
        Err(_) => TimeFormat::Standard,
        Ok(f) if f.is_empty() || f == "standard" => TimeFormat::Standard,
        Ok(f) if f == "relative" => TimeFormat::Relative,
        Ok(f) if f.contains('%') && f.len() < 32 => TimeFormat::Strftime(f),
        Ok(f) => {
            let prog = std::env::args()
                .next()
                .map(|a| crate::cli::session::base_name(&a))
                .unwrap_or_default();
            eprintln!("{prog}: error: invalid SLURM_TIME_FORMAT = '{f}'");
            TimeFormat::Standard
        }
    })
}

/// Slurm's `_relative_date_fmt`: the format by how many days `when` is from today.
fn relative_format(when: &chrono::DateTime<chrono::Local>) -> &'static str {
    use chrono::{Datelike, TimeZone};
    let today = NOW
        .get()
        .and_then(|now| chrono::Local.timestamp_opt(now.floor() as i64, 0).single())
        .unwrap_or_else(chrono::Local::now);
    let day = |d: i32, ordinal0: u32| 1000 * d + ordinal0 as i32;
    let distance = day(when.year(), when.ordinal0()) - day(today.year(), today.ordinal0());
    match distance {
        -1 => "Ystday %H:%M",
        0 => "%H:%M:%S",
        1 => "Tomorr %H:%M",
        d if !(-365..=365).contains(&d) => "%-d %b %Y",
        d if !(-1..=6).contains(&d) => "%-d %b %H:%M",
        _ => "%a %H:%M",
    }
}

/// Elapsed run time of a job at simulated `now`.
pub fn elapsed(job: &Job, now: f64) -> u64 {
    match job.run.start_time {
        Some(s) => (job.run.end_time.unwrap_or(now) - s).max(0.0) as u64,
        None => 0,
    }
}

/// A job's id as Slurm's commands print it: `123` for a job, `123_4` for an array task,
/// `123_[5-9%2]` for an array's record of pending tasks (observed on Slurm 22.05).
pub fn job_id_text(job: &Job) -> String {
    match &job.run.array {
        None => job.id.to_string(),
        Some(a) => format!("{}_{}", a.job_id, array_task_text(job, true)),
    }
}

/// The task part of an array job's id (`%K` of squeue, `ArrayTaskId=` of scontrol): the task,
/// or the pending tasks with the throttle (`5-9%2`, in brackets with `bracketed`); `N/A` for a
/// job that is no array.
pub fn array_task_text(job: &Job, bracketed: bool) -> String {
    let Some(a) = &job.run.array else {
        return "N/A".into();
    };
    if let Some(t) = a.task {
        return t.to_string();
    }
    let mut text = crate::model::compress_tasks(&a.pending);
    let throttle = job.req.relations.array.as_ref().map_or(0, |s| s.throttle);
    if throttle > 0 {
        text.push_str(&format!("%{throttle}"));
    }
    if bracketed { format!("[{text}]") } else { text }
}

/// A job's dependency as squeue's `%E` and scontrol's `Dependency=` show it:
/// `afterok:12(unfulfilled),afterany:13_*(failed)`, `(null)` when there is none left
/// (observed on Slurm 22.05).
pub fn dependency_text(job: &Job) -> String {
    let Some(dep) = &job.run.dependency else {
        return "(null)".into();
    };
    let items: Vec<String> = dep
        .items
        .iter()
        .map(|item| {
            let state = if item.failed { "failed" } else { "unfulfilled" };
            if item.kind == crate::dependency::Kind::Singleton {
                return format!("singleton({state})");
            }
            let task = match item.task {
                Some(t) => format!("_{t}"),
                None if item.whole_array => "_*".into(),
                None => String::new(),
            };
            let minutes = if item.minutes > 0 {
                format!("+{}", item.minutes)
            } else {
                String::new()
            };
            format!("{}:{}{task}{minutes}({state})", item.kind.name(), item.job)
        })
        .collect();
    items.join(if dep.any { "?" } else { "," })
}

/// A job named on a command line: `123`, `123_4`, `123_[1-3,7]`, each maybe with `.step`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSelector {
    /// The job id (an array's id names all its tasks).
    pub id: u32,
    /// Only these tasks of the array.
    pub tasks: Option<Vec<u32>>,
}

impl JobSelector {
    /// Parses one id; `None` when it is malformed.
    pub fn parse(text: &str) -> Option<JobSelector> {
        let text = match text.split_once('.') {
            Some((job, _step)) => job,
            None => text,
        };
        let (id, tasks) = match text.split_once('_') {
            Some((id, tasks)) => {
                let list = tasks
                    .strip_prefix('[')
                    .and_then(|t| t.strip_suffix(']'))
                    .unwrap_or(tasks);
                let list = list.split('%').next().unwrap_or("");
                let tasks = crate::model::parse_task_list(list, crate::model::MAX_ARRAY_SIZE_LIMIT)
                    .ok()
                    .filter(|t| !t.is_empty())?;
                (id, Some(tasks))
            }
            None => (text, None),
        };
        let id = id.parse::<u32>().ok()?;
        Some(JobSelector { id, tasks })
    }

    /// The records of `jobs` this selector names: a task's own job, or the view of that task in
    /// its array's pending record.
    pub fn pick(&self, jobs: &[Job]) -> Vec<Job> {
        let mut out = Vec::new();
        for job in jobs {
            let in_array = job.array_job_id() == self.id;
            if job.id != self.id && !in_array {
                continue;
            }
            match (&self.tasks, job.is_array_record()) {
                (None, _) => out.push(job.clone()),
                (Some(tasks), true) if in_array => {
                    let pending = job.run.array.as_ref().map_or(&[][..], |a| &a.pending[..]);
                    out.extend(
                        tasks
                            .iter()
                            .filter(|t| pending.contains(t))
                            .map(|t| pending_task(job, *t)),
                    );
                }
                (Some(tasks), false)
                    if in_array && job.array_task().is_some_and(|t| tasks.contains(&t)) =>
                {
                    out.push(job.clone());
                }
                _ => {}
            }
        }
        out
    }
}

/// A comma-separated list of job ids, where a comma inside brackets (`12_[1,3]`) belongs to
/// the id.
pub fn split_job_list(list: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in list.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&list[start..]);
    out.retain(|s| !s.is_empty());
    out
}

/// The records the selectors name, each once, in the order of the selectors; all of `jobs`
/// when there are none.
pub fn select_jobs(jobs: Vec<Job>, selectors: &[JobSelector]) -> Vec<Job> {
    if selectors.is_empty() {
        return jobs;
    }
    let mut out: Vec<Job> = Vec::new();
    for job in selectors.iter().flat_map(|s| s.pick(&jobs)) {
        if !out
            .iter()
            .any(|o| o.id == job.id && o.array_task() == job.array_task())
        {
            out.push(job);
        }
    }
    out
}

/// The view of task `task` still pending in an array's record, its output files named for
/// the task (observed: `scontrol show job 2997_5` shows `StdOut=.../o-2997_5.out` while the
/// record shows NO_VAL for `%a`).
pub fn pending_task(record: &Job, task: u32) -> Job {
    let mut job = record.as_task(task);
    let fields = crate::pattern::PatternFields {
        job_id: job.id,
        array_job_id: job.array_job_id(),
        array_task_id: task,
        job_name: &job.req.name,
        user: &job.req.user,
        node: "%N",
        step: "batch",
    };
    let expand = |pattern: &str| {
        let path = job
            .req
            .flavor
            .rules()
            .expand_pattern(pattern, &fields, &job.req);
        crate::daemon::absolute(&job.req.work_dir, &path)
    };
    if let Some(out) = &job.req.stdout {
        let stdout = expand(out);
        let stderr = expand(job.req.stderr.as_deref().unwrap_or(out));
        job.run.stdout_path = Some(stdout);
        job.run.stderr_path = Some(stderr);
    }
    job
}

/// Every array record of `jobs` as one row per pending task (`squeue -r`).
pub fn expand_array_records(jobs: Vec<Job>) -> Vec<Job> {
    jobs.into_iter()
        .flat_map(|job| {
            if job.is_array_record() {
                let pending = job
                    .run
                    .array
                    .as_ref()
                    .map(|a| a.pending.clone())
                    .unwrap_or_default();
                pending.iter().map(|t| pending_task(&job, *t)).collect()
            } else {
                vec![job]
            }
        })
        .collect()
}

/// squeue's rendering of a job's limit.
pub fn limit(job: &Job) -> String {
    units::format_limit_squeue(job.shown_limit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_widths_are_capped_and_garbage_is_no_width() {
        assert_eq!(
            parse_format("%.9999999999i"),
            [Piece::Field {
                code: 'i',
                width: MAX_FIELD_WIDTH,
                right: true
            }]
        );
        assert_eq!(field_width("18"), Some(18));
        assert_eq!(field_width("99999999999999999999999"), None);
        assert_eq!(field_width("x"), None);
    }
}
