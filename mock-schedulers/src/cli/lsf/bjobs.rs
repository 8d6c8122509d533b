//! Fake `bjobs` (reference 3.2): the default table (OL `lsf/cmdtools/bjobs/bjobs.c`
//! `displayJobs`), `-w`, `-noheader`, `-o "field[:width] ... [delimiter='c']"`, `-json`, the
//! state filters `-a -d -p -r -s`, `-u -q -J -m`, job ids; `Job <N> is not found` (exit 255)
//! and `No unfinished job found` (OL `lsf/cmdtools/lib/err.c` `jobInfoErr`).

use super::{
    Attrs, Opt, QueryError, exit_code, getopt, host_slots, name_matches, opt, parse_job_id,
    print_timeout, query_jobs, short_time, stat, term_reason,
};
use crate::cli::Call;
use crate::flavor::SchedulerAttributes;
use crate::model::{Job, JobState};

const SPEC: &[Opt] = &[
    opt("noheader", false),
    opt("json", false),
    opt("o", true),
    opt("a", false),
    opt("d", false),
    opt("p", false),
    opt("r", false),
    opt("s", false),
    opt("w", false),
    opt("W", false),
    opt("l", false),
    opt("u", true),
    opt("q", true),
    opt("J", true),
    opt("m", true),
    opt("P", true),
    opt("h", false),
    opt("V", false),
];

const USAGE: &str = "Usage: bjobs [-h] [-V] [-w |-l] [-a] [-d] [-p] [-s] [-r] [-noheader]
             [-o \"field_name[:[-]output_width] ... [delimiter='character']\" [-json]]
             [-m host_name] [-q queue_name] [-u user_name | -u all]
             [-P project_name] [-J name_spec] [jobId ...]
";

fn usage() -> i32 {
    eprint!("{USAGE}");
    255
}

/// One field of `-o`.
struct Field {
    /// The name `-o` takes, and the header.
    name: &'static str,
    /// Other names for it.
    aliases: &'static [&'static str],
    /// The column width when `-o` gives none.
    width: usize,
    /// The value.
    value: fn(&Job, f64) -> String,
}

fn or_dash(v: Option<String>) -> String {
    v.filter(|s| !s.is_empty()).unwrap_or_else(|| "-".into())
}

fn started(job: &Job) -> bool {
    job.run.start_time.is_some()
}

/// The execution hosts as `[slots*]host` entries.
fn exec_hosts(job: &Job) -> Vec<String> {
    host_slots(job)
        .into_iter()
        .map(|(host, n)| if n > 1 { format!("{n}*{host}") } else { host })
        .collect()
}

const FIELDS: &[Field] = &[
    Field {
        name: "jobid",
        aliases: &["id"],
        width: 7,
        value: |j, _| j.id.to_string(),
    },
    Field {
        name: "stat",
        aliases: &[],
        width: 5,
        value: |j, _| stat(j).to_string(),
    },
    Field {
        name: "user",
        aliases: &[],
        width: 7,
        value: |j, _| j.req.user.clone(),
    },
    Field {
        name: "queue",
        aliases: &[],
        width: 10,
        value: |j, _| j.partition.clone(),
    },
    Field {
        name: "job_name",
        aliases: &["name"],
        width: 10,
        value: |j, _| j.req.name.clone(),
    },
    Field {
        name: "proj_name",
        aliases: &["proj", "project"],
        width: 11,
        value: |j, _| {
            Attrs::of(j)
                .and_then(|a| a.project)
                .unwrap_or_else(|| "default".into())
        },
    },
    Field {
        name: "from_host",
        aliases: &[],
        width: 11,
        value: |j, _| j.req.submit_host.clone(),
    },
    Field {
        name: "exec_host",
        aliases: &[],
        width: 11,
        value: |j, _| or_dash(Some(exec_hosts(j).join(":"))),
    },
    Field {
        name: "nexec_host",
        aliases: &[],
        width: 10,
        value: |j, _| {
            if started(j) {
                j.run.alloc.len().to_string()
            } else {
                "-".into()
            }
        },
    },
    Field {
        name: "slots",
        aliases: &["nalloc_slot"],
        width: 5,
        value: |j, _| {
            if started(j) {
                host_slots(j)
                    .iter()
                    .map(|(_, n)| n)
                    .sum::<usize>()
                    .to_string()
            } else {
                "-".into()
            }
        },
    },
    Field {
        name: "submit_time",
        aliases: &[],
        width: 15,
        value: |j, _| short_time(j.submit_time),
    },
    Field {
        name: "start_time",
        aliases: &[],
        width: 15,
        value: |j, _| or_dash(j.run.start_time.map(short_time)),
    },
    Field {
        name: "finish_time",
        aliases: &[],
        width: 16,
        value: |j, _| {
            if j.run.state.is_finished() {
                or_dash(j.run.end_time.map(short_time))
            } else {
                "-".into()
            }
        },
    },
    Field {
        name: "exit_code",
        aliases: &[],
        width: 10,
        value: |j, _| or_dash(exit_code(j).filter(|c| *c != 0).map(|c| c.to_string())),
    },
    Field {
        name: "exit_reason",
        aliases: &[],
        width: 50,
        value: |j, _| or_dash(term_reason(j).map(str::to_string)),
    },
    Field {
        name: "command",
        aliases: &["cmd"],
        width: 15,
        value: |j, _| j.req.command.clone(),
    },
    Field {
        name: "sub_cwd",
        aliases: &[],
        width: 10,
        value: |j, _| j.req.submit_dir.clone(),
    },
    Field {
        name: "exec_cwd",
        aliases: &[],
        width: 10,
        value: |j, _| {
            if started(j) {
                j.req.work_dir.clone()
            } else {
                "-".into()
            }
        },
    },
    Field {
        name: "output_file",
        aliases: &[],
        width: 11,
        value: |j, _| or_dash(Attrs::of(j).and_then(|a| a.output_file)),
    },
    Field {
        name: "error_file",
        aliases: &[],
        width: 10,
        value: |j, _| or_dash(Attrs::of(j).and_then(|a| a.error_file)),
    },
    Field {
        name: "run_time",
        aliases: &[],
        width: 15,
        value: |j, now| {
            let secs = match j.run.start_time {
                Some(start) => (j.run.end_time.unwrap_or(now) - start).max(0.0) as u64,
                None => 0,
            };
            format!("{secs} second(s)")
        },
    },
];

/// One column of `-o`.
struct Column {
    field: &'static Field,
    width: usize,
    right: bool,
}

/// What `-o` asks for.
struct Format {
    columns: Vec<Column>,
    delimiter: Option<String>,
}

/// Parses `-o "field[:[-][width]] ... [delimiter='c']"`; field names are case-insensitive.
fn parse_format(text: &str) -> Result<Format, String> {
    let words = shell_words::split(text).map_err(|_| format!("{text}: Illegal field name."))?;
    let mut columns = Vec::new();
    let mut delimiter = None;
    for word in words {
        if let Some(d) = word.strip_prefix("delimiter=") {
            delimiter = Some(d.to_string());
            continue;
        }
        let (name, spec) = match word.split_once(':') {
            Some((n, s)) => (n, Some(s)),
            None => (word.as_str(), None),
        };
        let lower = name.to_ascii_lowercase();
        let Some(field) = FIELDS
            .iter()
            .find(|f| f.name == lower || f.aliases.contains(&lower.as_str()))
        else {
            return Err(format!("{name}: Illegal field name."));
        };
        let mut width = field.width;
        let mut right = false;
        if let Some(spec) = spec {
            let s = match spec.strip_prefix('-') {
                Some(rest) => {
                    right = true;
                    rest
                }
                None => spec,
            };
            let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
            let unit = &s[digits.len()..];
            if !unit.is_empty() && !matches!(unit, "K" | "M" | "G" | "T" | "P" | "E" | "Z" | "S") {
                return Err(format!("{word}: Illegal field name."));
            }
            if !digits.is_empty() {
                width = digits
                    .parse::<usize>()
                    .ok()
                    .filter(|w| (1..=4096).contains(w))
                    .ok_or_else(|| format!("{word}: Illegal field name."))?;
            }
        }
        columns.push(Column {
            field,
            width,
            right,
        });
    }
    if columns.is_empty() {
        return Err(format!("{text}: Illegal field name."));
    }
    Ok(Format { columns, delimiter })
}

/// `-o` output: one line per job, columns padded to their width (the last one not padded),
/// or joined by the delimiter.
fn render_custom(format: &Format, jobs: &[Job], now: f64, header: bool) -> String {
    let mut out = String::new();
    let line = |cells: Vec<String>| -> String {
        match &format.delimiter {
            Some(d) => cells.join(d),
            None => {
                let last = cells.len().saturating_sub(1);
                let mut row = String::new();
                for (i, (cell, col)) in cells.iter().zip(&format.columns).enumerate() {
                    if i > 0 {
                        row.push(' ');
                    }
                    if i == last && !col.right {
                        row.push_str(cell);
                    } else if col.right {
                        row.push_str(&format!("{cell:>w$}", w = col.width));
                    } else {
                        row.push_str(&format!("{cell:<w$}", w = col.width));
                    }
                }
                row
            }
        }
    };
    if header {
        let cells = format
            .columns
            .iter()
            .map(|c| c.field.name.to_ascii_uppercase())
            .collect();
        out.push_str(&line(cells));
        out.push('\n');
    }
    for job in jobs {
        let cells = format
            .columns
            .iter()
            .map(|c| (c.field.value)(job, now))
            .collect();
        out.push_str(&line(cells));
        out.push('\n');
    }
    out
}

/// `-json`: `{"COMMAND":"bjobs","JOBS":n,"RECORDS":[{...}]}` with string values (reference 8).
fn render_json(format: &Format, jobs: &[Job], now: f64) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let mut out = String::new();
    out.push_str("{\n  \"COMMAND\":\"bjobs\",\n");
    out.push_str(&format!("  \"JOBS\":{},\n", jobs.len()));
    out.push_str("  \"RECORDS\":[\n");
    for (i, job) in jobs.iter().enumerate() {
        out.push_str("    {\n");
        let n = format.columns.len();
        for (k, col) in format.columns.iter().enumerate() {
            out.push_str(&format!(
                "      {}:{}{}\n",
                quote(&col.field.name.to_ascii_uppercase()),
                quote(&(col.field.value)(job, now)),
                if k + 1 < n { "," } else { "" }
            ));
        }
        out.push_str(if i + 1 < jobs.len() {
            "    },\n"
        } else {
            "    }\n"
        });
    }
    out.push_str("  ]\n}\n");
    out
}

/// OL's `TRUNC_STR`: a name longer than `len` becomes `*` and its last `len - 1` characters.
fn trunc(s: &str, len: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= len {
        return s.to_string();
    }
    std::iter::once('*')
        .chain(chars[chars.len() - (len - 1)..].iter().copied())
        .collect()
}

/// A `%-w.ws` cell: cut to `w` characters, padded to `w`.
fn cell(s: &str, w: usize) -> String {
    let cut: String = s.chars().take(w).collect();
    format!("{cut:<w$}")
}

/// The default table (OL `displayJobs`): `%-7d %-7.7s %-5.5s %-10.10s %-11.11s %-11.11s
/// %-10.10s %s`, the job name cut with `*`, further execution hosts on lines of their own;
/// `-w` does not cut and joins the hosts with `:`.
fn render_table(jobs: &[Job], wide: bool, header: bool) -> String {
    let mut out = String::new();
    if header && !jobs.is_empty() {
        out.push_str(
            "JOBID   USER    STAT  QUEUE      FROM_HOST   EXEC_HOST   JOB_NAME   SUBMIT_TIME\n",
        );
    }
    for job in jobs {
        let hosts = exec_hosts(job);
        let pending = job.run.state == JobState::Pending;
        let submit = short_time(job.submit_time);
        if wide {
            let exec = if pending {
                "   -    ".to_string()
            } else if hosts.is_empty() {
                "   -   ".to_string()
            } else {
                hosts.join(":")
            };
            out.push_str(&format!(
                "{:<7} {:<7} {} {:<10} {:<11} {:<11} {:<10} {}\n",
                job.id,
                job.req.user,
                cell(stat(job), 5),
                job.partition,
                job.req.submit_host,
                exec,
                job.req.name,
                submit
            ));
            continue;
        }
        let exec = if pending {
            String::new()
        } else {
            hosts
                .first()
                .cloned()
                .unwrap_or_else(|| "   -   ".to_string())
        };
        out.push_str(&format!(
            "{:<7} {} {} {} {} {} {} {}\n",
            job.id,
            cell(&job.req.user, 7),
            cell(stat(job), 5),
            cell(&job.partition, 10),
            cell(&job.req.submit_host, 11),
            cell(&exec, 11),
            cell(&trunc(&job.req.name, 10), 10),
            submit
        ));
        if !pending {
            for host in hosts.iter().skip(1) {
                out.push_str(&format!("{:45}{host}\n", ""));
            }
        }
    }
    out
}

/// Runs bjobs; returns the exit code.
pub fn main(call: &mut Call) -> i32 {
    let cli = match getopt("bjobs", &call.args(), SPEC, false) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("{msg}");
            return usage();
        }
    };
    if cli.has("h") {
        return usage();
    }
    if cli.has("V") {
        eprintln!("{}", super::VERSION);
        return 0;
    }
    if cli.has("l") {
        eprintln!("bjobs: -l is not supported by mock-cluster");
        return 255;
    }
    let json = cli.has("json");
    let header = !cli.has("noheader");
    if json && cli.value("o").is_none() {
        eprintln!("The -json option must be used with the -o option.");
        return 255;
    }
    if json && !header {
        eprintln!("The -json option cannot be used with the -noheader option.");
        return 255;
    }
    let format = match cli.value("o").map(parse_format) {
        Some(Ok(f)) => Some(f),
        Some(Err(msg)) => {
            eprintln!("{msg}");
            return 255;
        }
        None => None,
    };
    let mut ids = Vec::new();
    for operand in &cli.operands {
        match parse_job_id(operand) {
            Some(id) if !ids.contains(&id) => ids.push(id),
            Some(_) => {}
            None => {
                eprintln!("{operand}: Illegal job ID.");
                return 255;
            }
        }
    }
    // `0` is every job, as no id at all.
    let all_ids = ids.contains(&0);
    ids.retain(|id| *id != 0);
    let by_id = !ids.is_empty() && !all_ids;
    let (jobs, now) = match query_jobs(call, by_id.then(|| ids.clone()), true) {
        Ok(r) => r,
        Err(QueryError::Unreachable) => return 255,
        Err(QueryError::Timeout) => {
            print_timeout();
            return 255;
        }
        Err(QueryError::Other(message)) => {
            eprintln!("{message}");
            return 255;
        }
    };
    let mut missing = Vec::new();
    let shown: Vec<Job> = if by_id {
        // Given ids: every user's jobs, finished ones too, in the order asked.
        ids.iter()
            .filter_map(|id| {
                let found = jobs.iter().find(|j| j.id == *id).cloned();
                if found.is_none() {
                    missing.push(*id);
                }
                found
            })
            .collect()
    } else {
        select(&cli, jobs)
    };
    let out = match &format {
        Some(f) if json => render_json(f, &shown, now),
        Some(f) if !shown.is_empty() => render_custom(f, &shown, now, header),
        Some(_) => String::new(),
        None => render_table(&shown, cli.has("w") || cli.has("W"), header),
    };
    print!("{out}");
    for id in &missing {
        eprintln!("Job <{id}> is not found");
    }
    if !missing.is_empty() {
        return 255;
    }
    if shown.is_empty() && !by_id && !json {
        eprintln!("{}", nothing_found(&cli));
    }
    0
}

/// The jobs bjobs lists without ids: the caller's (or `-u`'s) unfinished ones, or those
/// `-a -d -p -r -s` ask for, running before pending before finished.
fn select(cli: &super::Parsed, jobs: Vec<Job>) -> Vec<Job> {
    let me = crate::cli::slurm::identity().0;
    let user = cli.value("u").map(str::to_string).unwrap_or(me);
    let all = cli.has("a");
    let (done, pend, run, susp) = (cli.has("d"), cli.has("p"), cli.has("r"), cli.has("s"));
    let current = !(all || done || pend || run || susp);
    let mut shown: Vec<Job> = jobs
        .into_iter()
        .filter(|j| user == "all" || j.req.user == user)
        .filter(|j| cli.value("q").is_none_or(|q| j.partition == q))
        .filter(|j| cli.value("J").is_none_or(|n| name_matches(n, &j.req.name)))
        .filter(|j| {
            cli.value("m")
                .is_none_or(|h| j.run.alloc.iter().any(|a| a.node == h))
        })
        .filter(|j| {
            cli.value("P").is_none_or(|p| {
                Attrs::of(j)
                    .and_then(|a| a.project)
                    .unwrap_or_else(|| "default".into())
                    == p
            })
        })
        .filter(|j| {
            let s = stat(j);
            all || (current && !j.run.state.is_finished())
                || (done && j.run.state.is_finished())
                || (pend && matches!(s, "PEND" | "PSUSP"))
                || (run && s == "RUN")
                || (susp && s == "PSUSP")
        })
        .collect();
    let rank = |j: &Job| match j.run.state {
        JobState::Running => 0,
        JobState::Pending => 1,
        _ => 2,
    };
    shown.sort_by_key(|j| (rank(j), j.id));
    shown
}

/// What bjobs says when nothing matched (OL `jobInfoErr`).
fn nothing_found(cli: &super::Parsed) -> String {
    let what = if cli.has("a") {
        "No job found"
    } else if !(cli.has("d") || cli.has("p") || cli.has("r") || cli.has("s")) {
        "No unfinished job found"
    } else if cli.has("d") {
        "No DONE/EXIT job found"
    } else if cli.has("p") {
        "No pending job found"
    } else if cli.has("s") {
        "No suspended job found"
    } else {
        "No running job found"
    };
    let mut place = String::new();
    if let Some(q) = cli.value("q") {
        place.push_str(&format!(" in queue <{q}"));
    }
    if let Some(h) = cli.value("m") {
        if place.is_empty() {
            place.push_str(" on host/group <");
        } else {
            place.push_str("> and on host/group <");
        }
        place.push_str(h);
    }
    if !place.is_empty() {
        place.push('>');
    }
    format!("{what}{place}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cut_from_the_front() {
        assert_eq!(trunc("verylongjobname", 10), "*ngjobname");
        assert_eq!(trunc("short", 10), "short");
        assert_eq!(cell("abcdefghij", 7), "abcdefg");
    }

    #[test]
    fn output_formats_take_widths_and_a_delimiter() {
        let f = parse_format("JOBID stat:8 exit_code:-4 delimiter=','").unwrap();
        assert_eq!(f.columns.len(), 3);
        assert_eq!(f.columns[1].width, 8);
        assert!(f.columns[2].right);
        assert_eq!(f.delimiter.as_deref(), Some(","));
        assert_eq!(
            parse_format("jobid bogus").err().as_deref(),
            Some("bogus: Illegal field name.")
        );
        assert!(parse_format("stat:0").is_err());
        assert!(parse_format("").is_err());
    }
}
