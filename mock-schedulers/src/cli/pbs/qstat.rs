//! Fake PBS `qstat` (reference 2.2; OpenPBS `src/cmds/qstat.c`): the default table, the
//! alternate (`-a`) table, full status (`-f`) as text, `-F dsv` and `-F json`, history (`-x`,
//! `-H`), and the server's status line (`-B`).

use super::resources;
use super::{Attrs, QueryError, errno, exit_code, state_letter};
use crate::cli::Call;
use crate::flavor::SchedulerAttributes;
use crate::model::{Job, JobState};

/// qstat's option string (`GETOPT_ARGS` in `src/cmds/qstat.c`).
const OPTSTRING: &str = "ainpqrstwxu:fGHJMQEBW:T1F:D:";

/// `usage` and `usag2` (`src/cmds/qstat.c`).
const USAGE: &str = "usage: 
qstat [-f] [-J] [-p] [-t] [-x] [-E] [-F format | -w] [-D delim] [ job_identifier... | destination... ]
qstat [-a|-i|-r|-H|-T] [-J] [-t] [-u user] [-n] [-s] [-G|-M] [-1] [-w]
\t[ job_identifier... | destination... ]
qstat -Q [-f] [-F format] [-D delim] [ destination... ]
qstat -q [-G|-M] [ destination... ]
qstat -B [-f] [-F format] [-D delim] [ server_name... ]
qstat --version
";

/// `--help` of the simulated cluster (the real qstat has none and prints its usage).
pub const HELP: &str =
    "usage: qstat [-f [-F json|dsv] [-w]] [-x] [-a|-i|-r|-H] [-u user] [-n] [-s] [-1] [-w]
             [job_identifier... | destination...]

Fake PBS qstat of mock-cluster: the status of the simulated cluster's jobs.

Examples:
  qstat                       # queued and running jobs
  qstat -x 12.sim             # also finished jobs (state F, Exit_status)
  qstat -f -F json -x 12      # everything about job 12, as JSON
";

/// `CHAR_LINE_LIMIT`: where `-f` folds long values.
const CHAR_LINE_LIMIT: usize = 78;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Default,
    Dsv,
    Json,
}

/// The alternate display options.
#[derive(Debug, Default, Clone, Copy)]
struct Alt {
    a: bool,
    i: bool,
    r: bool,
    h: bool,
    u: bool,
    n: bool,
    s: bool,
    one_line: bool,
    mw: bool,
    g: bool,
}

impl Alt {
    fn any(self) -> bool {
        self.a || self.i || self.r || self.h || self.u || self.n || self.s || self.g || self.mw
    }
}

/// Runs qstat; returns the exit code.
pub fn main(call: &mut Call) -> i32 {
    let args = call.args();
    if args.len() == 1 && args[0] == "--help" {
        print!("{HELP}");
        return 0;
    }
    let usage = || {
        eprint!("{USAGE}");
        2
    };
    let cli = match super::getopt("qstat", &args, OPTSTRING, true) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            return usage();
        }
    };
    let conflict = "qstat: conflicting options.";
    let mut errors = 0;
    let mut alt = Alt::default();
    let (mut full, mut history, mut wide, mut job_arrays_only) = (false, false, false, false);
    let mut format = Format::Default;
    let mut dsv_delim = "|".to_string();
    let mut users: Option<String> = None;
    let mut unsupported = None;
    let mut server_status = false;
    for (c, v) in &cli.opts {
        let v = v.clone().unwrap_or_default();
        match c {
            'a' => alt.a = true,
            'i' => alt.i = true,
            'r' => alt.r = true,
            'H' => {
                alt.h = true;
                history = true;
            }
            'x' => history = true,
            'u' => {
                alt.u = true;
                users = Some(v);
            }
            'n' => alt.n = true,
            's' => alt.s = true,
            '1' => alt.one_line = true,
            'w' => wide = true,
            'G' => alt.g = true,
            'M' => alt.mw = true,
            'f' => full = true,
            'J' => job_arrays_only = true,
            't' | 'E' => {}
            'B' => server_status = true,
            'p' | 'T' | 'q' | 'Q' => unsupported = Some(*c),
            'D' => {
                if format == Format::Dsv {
                    dsv_delim = v;
                } else {
                    errors += 1;
                }
            }
            'F' => match v.to_ascii_lowercase().as_str() {
                "default" => format = Format::Default,
                "dsv" => format = Format::Dsv,
                "json" => format = Format::Json,
                _ => errors += 1,
            },
            'W' => {
                for w in v.chars() {
                    match w {
                        'a' => alt.a = true,
                        'i' => alt.i = true,
                        'r' => alt.r = true,
                        'H' => {
                            alt.h = true;
                            history = true;
                        }
                        'n' => alt.n = true,
                        's' => alt.s = true,
                        'G' => alt.g = true,
                        'M' => alt.mw = true,
                        '1' => alt.one_line = true,
                        ' ' => {}
                        _ => errors += 1,
                    }
                }
            }
            _ => errors += 1,
        }
    }
    // Combinations qstat refuses (end of its option loop).
    let exclusive = [alt.a, alt.i, alt.r, alt.h].iter().filter(|x| **x).count();
    if exclusive > 1 || (alt.g && alt.mw) {
        eprintln!("{conflict}");
        errors += 1;
    }
    if !(format == Format::Default || full) || (format != Format::Default && alt.any()) {
        eprintln!("{conflict}");
        errors += 1;
    }
    if alt.one_line && !(alt.n || alt.s) {
        eprintln!("{conflict}");
        errors += 1;
    }
    if wide && format != Format::Default {
        eprintln!("qstat: option w cannot be used with -F");
        errors += 1;
    }
    if errors > 0 {
        return usage();
    }
    if let Some(c) = unsupported {
        eprintln!("qstat: -{c} is not supported by mock-cluster");
        return 2;
    }
    let cluster = super::cluster(&call.dir);
    let server = cluster.cluster_name.clone();
    if server_status {
        if full || format != Format::Default {
            eprintln!("qstat: -B with -f or -F is not supported by mock-cluster");
            return 2;
        }
        return server_status_line(call, &cli.operands, &server);
    }
    let mut out = String::new();
    let mut any_failed = 0;
    let mut json_jobs: Option<Vec<(String, Json)>> = None;
    let mut json_now = None;
    // Without operands, one query for every job; otherwise one per operand, with the header
    // only for the first (qstat asks for the server's status, which prints it, once).
    let operands: Vec<Option<String>> = if cli.operands.is_empty() {
        vec![None]
    } else {
        cli.operands.iter().cloned().map(Some).collect()
    };
    for (index, operand) in operands.iter().enumerate() {
        let header = index == 0;
        // Which jobs: one id, one queue, or all.
        let mut queue_filter = None;
        let mut single = None;
        match operand {
            Some(op) if op.trim_start().starts_with(|c: char| c.is_ascii_digit()) => {
                match super::parse_job_id(op, &server) {
                    Ok(id) => single = Some(id),
                    Err(()) => {
                        eprintln!("qstat: illegally formed job identifier: {op}");
                        any_failed = 1;
                        continue;
                    }
                }
            }
            Some(op) => {
                let (q, s) = op.split_once('@').unwrap_or((op.as_str(), ""));
                if op.starts_with('@') && s.is_empty()
                    || (!s.is_empty() && !s.eq_ignore_ascii_case(&server))
                {
                    eprintln!("qstat: illegally formed destination: {op}");
                    any_failed = 1;
                    continue;
                }
                if !q.is_empty() {
                    queue_filter = Some(q.to_string());
                }
            }
            None => {}
        }
        let ids = single.as_ref().map(|id| id.seq.into_iter().collect());
        let (jobs, now) = match super::query_jobs(call, ids, true, &server) {
            Ok(r) => r,
            Err(QueryError::Timeout) => {
                // Choice where the reference is silent: an injected status timeout is a server
                // that does not answer the connection (cnt2server), and qstat keeps the failed
                // connection, -1, as its exit code (exit 255).
                super::print_timeout("qstat", &server);
                any_failed = -1;
                continue;
            }
            Err(QueryError::Unreachable) => {
                any_failed = -1;
                continue;
            }
            Err(QueryError::Other(msg)) => {
                eprintln!("qstat: {msg}");
                any_failed = errno::PROTOCOL;
                continue;
            }
        };
        json_now.get_or_insert(now);
        if let Some(q) = &queue_filter
            && cluster.partition(q).is_none()
        {
            eprintln!("qstat: Unknown queue {q}");
            any_failed = errno::UNKQUE;
            continue;
        }
        let mut shown: Vec<&Job> = Vec::new();
        if let Some(id) = &single {
            match jobs.first() {
                None => {
                    eprintln!("qstat: Unknown Job Id {}", id.full);
                    any_failed = errno::UNKJOBID;
                    continue;
                }
                Some(job) if job.run.state.is_finished() && !history => {
                    eprintln!(
                        "qstat: {} Job has finished, use -x or -H to obtain historical job information",
                        id.full
                    );
                    any_failed = errno::HISTJOBID;
                    continue;
                }
                Some(job) => shown.push(job),
            }
        } else {
            for job in &jobs {
                let letter = state_letter(job);
                let wanted = (history || letter != 'F')
                    && queue_filter.as_ref().is_none_or(|q| &job.partition == q)
                    && users.as_deref().is_none_or(|u| {
                        u.split(',')
                            .any(|u| u.split('@').next() == Some(&job.req.user))
                    })
                    && (!alt.i || matches!(letter, 'E' | 'H' | 'Q' | 'T' | 'W'))
                    && (!alt.r || matches!(letter, 'R' | 'S'))
                    && (!alt.h || letter == 'F')
                    && !job_arrays_only;
                if wanted {
                    shown.push(job);
                }
            }
        }
        if shown.is_empty() {
            continue;
        }
        let views: Vec<View<'_>> = shown
            .iter()
            .map(|job| View::new(job, &server, now))
            .collect();
        if full {
            match format {
                Format::Json => {
                    let jobs = json_jobs.get_or_insert_with(Vec::new);
                    for v in &views {
                        jobs.push((v.id(), v.json()));
                    }
                }
                Format::Dsv => {
                    for v in &views {
                        out.push_str(&v.dsv(&dsv_delim));
                    }
                }
                Format::Default => {
                    for v in &views {
                        out.push_str(&v.full_text(wide));
                    }
                }
            }
        } else if alt.any() && !(wide && full) {
            out.push_str(&alt_table(&views, &server, header, alt, wide));
        } else {
            out.push_str(&default_table(&views, header, wide));
        }
    }
    if format == Format::Json && full {
        let mut root = vec![
            (
                "timestamp".to_string(),
                Json::Number(json_now.unwrap_or(0.0).floor()),
            ),
            (
                "pbs_version".to_string(),
                Json::String(super::PBS_VERSION.into()),
            ),
            ("pbs_server".to_string(), Json::String(server.clone())),
        ];
        if let Some(jobs) = json_jobs {
            root.push(("Jobs".to_string(), Json::Object(jobs)));
        }
        out.push_str(&Json::Object(root).print());
        out.push('\n');
    }
    print!("{out}");
    exit_code(any_failed)
}

/// `qstat -B [server]`: the server's line under `display_statserver`'s header (`%-16s` name,
/// `%5s` counts, `%-10s` status; a longer name ends in `*`). Max is `max_running`, unset (0)
/// here; Tot counts the jobs the server has that have not finished (the simulated cluster's
/// choice: OpenPBS's `total_jobs` is not documented to leave history out), the others count
/// `state_count` by state. A server that does not answer: `cannot connect`, exit 255 (qstat
/// exits with the failed connection, -1).
fn server_status_line(call: &mut Call, operands: &[String], server: &str) -> i32 {
    if operands
        .iter()
        .map(|o| o.trim_start_matches('@'))
        .any(|o| !o.eq_ignore_ascii_case(server))
    {
        // No other server name resolves on the simulated cluster: cnt2server's line for
        // PBSE_BADHOST, then qstat's own, which names the default server.
        eprintln!("Unknown Host.");
        eprintln!("qstat: cannot connect to server {server} (errno=15008)");
        return exit_code(-1);
    }
    let jobs = match super::query_jobs(call, None, true, server) {
        Ok((jobs, _)) => jobs,
        Err(QueryError::Timeout) => {
            super::print_timeout("qstat", server);
            return exit_code(-1);
        }
        Err(QueryError::Unreachable) => return exit_code(-1),
        Err(QueryError::Other(msg)) => {
            eprintln!("qstat: {msg} {server}");
            return exit_code(errno::PROTOCOL);
        }
    };
    let count = |letters: &[char]| {
        jobs.iter()
            .filter(|job| letters.contains(&state_letter(job)))
            .count()
            .to_string()
    };
    let name = if server.chars().count() > 16 {
        let kept: String = server.chars().take(15).collect();
        format!("{kept}*")
    } else {
        server.to_string()
    };
    print!(
        "Server             Max   Tot   Que   Run   Hld   Wat   Trn   Ext Status\n\
         ---------------- ----- ----- ----- ----- ----- ----- ----- ----- -----------\n\
         {name:<16} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:<10}\n",
        "0",
        count(&['Q', 'H', 'R', 'E']),
        count(&['Q']),
        count(&['R']),
        count(&['H']),
        "0",
        "0",
        count(&['E']),
        "Active"
    );
    0
}

/// A job as qstat shows it.
struct View<'a> {
    job: &'a Job,
    attrs: Attrs,
    server: &'a str,
    now: f64,
}

/// One attribute: name, resource, value.
type Attribute = (String, Option<String>, String);

impl<'a> View<'a> {
    fn new(job: &'a Job, server: &'a str, now: f64) -> View<'a> {
        View {
            job,
            attrs: Attrs::of(job).unwrap_or_default(),
            server,
            now,
        }
    }

    fn id(&self) -> String {
        super::job_id(self.job, self.server)
    }

    fn owner(&self) -> String {
        let host = if self.attrs.submit_host.is_empty() {
            &self.job.req.submit_host
        } else {
            &self.attrs.submit_host
        };
        format!("{}@{host}", self.job.req.user)
    }

    fn started(&self) -> bool {
        self.job.run.start_time.is_some()
    }

    /// `resources_used.walltime` in seconds.
    fn walltime_used(&self) -> u64 {
        let end = self.job.run.end_time.unwrap_or(self.now);
        self.job
            .run
            .start_time
            .map_or(0, |s| (end - s).max(0.0) as u64)
    }

    fn path(&self, pattern: &str) -> String {
        let fields = crate::pattern::PatternFields {
            job_id: self.job.id,
            array_job_id: self.job.id,
            array_task_id: crate::pattern::NO_ARRAY_TASK,
            job_name: &self.job.req.name,
            user: &self.job.req.user,
            node: "",
            step: "batch",
        };
        format!(
            "{}:{}",
            self.attrs.submit_host,
            crate::pattern::expand(pattern, &fields)
        )
    }

    /// `exec_vnode` chunks, `(node:ncpus=N[:mem=M])`.
    fn exec_vnode(&self) -> String {
        self.job
            .run
            .alloc
            .iter()
            .map(|a| {
                let mut s = format!("({}:ncpus={}", a.node, a.cores.len());
                if self.attrs.resources.iter().any(|(k, _)| k == "mem") {
                    s.push_str(&format!(":mem={}", resources::format_bytes(a.mem_mb << 20)));
                }
                s.push(')');
                s
            })
            .collect::<Vec<_>>()
            .join("+")
    }

    /// `exec_host`: `node/0*N` per node.
    fn exec_host(&self) -> String {
        self.job
            .run
            .alloc
            .iter()
            .map(|a| match a.cores.len() {
                1 => format!("{}/0", a.node),
                n => format!("{}/0*{n}", a.node),
            })
            .collect::<Vec<_>>()
            .join("+")
    }

    /// `substate` (`src/include/job.h`).
    fn substate(&self) -> u32 {
        match (state_letter(self.job), self.job.run.state) {
            ('H', _) => 20,
            ('Q', _) => 10,
            ('R', _) => 42,
            ('E', _) => 51,
            (_, JobState::Cancelled) => 91,
            (_, JobState::Completed) => 92,
            _ => 93,
        }
    }

    /// The `comment` the server keeps (`form_attr_comment`, `update_job_finish_comment`).
    fn comment(&self) -> Option<String> {
        let start = self.job.run.start_time?;
        let mut c = format!(
            "Job run at {} on {}",
            local_time(start, "%a %b %d at %H:%M"),
            self.exec_vnode()
        );
        if self.job.run.state.is_finished() {
            c.push_str(match (self.job.run.state, super::exit_status(self.job)) {
                (JobState::Cancelled, _) => " and terminated",
                (_, Some(0)) => " and finished",
                (JobState::Timeout, _) => " and exceeded resource walltime",
                _ => " and failed",
            });
        }
        Some(c)
    }

    /// The attributes `-f` lists, in the server's order (`master_job_attr_def.xml`).
    fn attributes(&self) -> Vec<Attribute> {
        let job = self.job;
        let a = &self.attrs;
        let mut out: Vec<Attribute> = Vec::new();
        let mut put = |name: &str, value: String| out.push((name.to_string(), None, value));
        put("Job_Name", job.req.name.clone());
        put("Job_Owner", self.owner());
        let mut list: Vec<Attribute> = Vec::new();
        if self.started() {
            let ncpus: usize = job.run.alloc.iter().map(|a| a.cores.len()).sum();
            for (r, v) in [
                ("cpupercent", "0".to_string()),
                ("cput", "00:00:00".to_string()),
                ("mem", "0kb".to_string()),
                ("ncpus", ncpus.max(1).to_string()),
                ("vmem", "0kb".to_string()),
                ("walltime", resources::format_time(self.walltime_used())),
            ] {
                list.push(("resources_used".into(), Some(r.into()), v));
            }
        }
        out.append(&mut list);
        let mut put = |name: &str, value: String| out.push((name.to_string(), None, value));
        put("job_state", state_letter(job).to_string());
        put("queue", job.partition.clone());
        put("server", self.server.to_string());
        if let Some(acct) = &job.req.account {
            put("Account_Name", acct.clone());
        }
        put("Checkpoint", a.checkpoint.clone());
        put("ctime", local_ctime(job.submit_time));
        put("Error_Path", self.path(&a.error_path));
        if self.started() {
            put("exec_host", self.exec_host());
            put("exec_vnode", self.exec_vnode());
        }
        put(
            "Hold_Types",
            if job.req.hold { "u" } else { "n" }.to_string(),
        );
        put("Join_Path", a.join_path.clone());
        put("Keep_Files", a.keep_files.clone());
        put("Mail_Points", a.mail_points.clone());
        if let Some(m) = &a.mail_users {
            put("Mail_Users", m.clone());
        }
        let mtime = job
            .run
            .end_time
            .or(job.run.start_time)
            .unwrap_or(job.submit_time);
        put("mtime", local_ctime(mtime));
        put("Output_Path", self.path(&a.output_path));
        put("Priority", a.priority.to_string());
        put("qtime", local_ctime(job.submit_time));
        put(
            "Rerunable",
            if a.rerunable { "True" } else { "False" }.to_string(),
        );
        for (r, v) in &a.resources {
            out.push(("Resource_List".into(), Some(r.clone()), v.clone()));
        }
        let mut put = |name: &str, value: String| out.push((name.to_string(), None, value));
        if let Some(start) = job.run.start_time {
            put("stime", local_ctime(start));
        }
        if job.run.state.is_finished()
            && let Some(end) = job.run.end_time
        {
            put("obittime", local_ctime(end));
        }
        if let Some(pgid) = job.run.pgid {
            put("session_id", pgid.to_string());
        }
        if let Some(s) = &a.shell_path_list {
            put("Shell_Path_List", s.clone());
        }
        put("jobdir", job.req.work_dir.clone());
        put("substate", self.substate().to_string());
        put("Variable_List", variable_list(&a.variable_list));
        put("euser", job.req.user.clone());
        put("egroup", crate::users::group_name(job.req.gid));
        if let Some(c) = self.comment() {
            put("comment", c);
        }
        put("etime", local_ctime(job.submit_time));
        if self.started() {
            put("run_count", "1".into());
        }
        if let Some(status) = super::exit_status(job) {
            put("Exit_status", status.to_string());
        }
        put("Submit_arguments", a.submit_arguments.join(" "));
        if let Some(exe) = &a.executable {
            put(
                "executable",
                format!("<jsdl-hpcpa:Executable>{exe}</jsdl-hpcpa:Executable>"),
            );
            if !a.argument_list.is_empty() {
                let args: String = a
                    .argument_list
                    .iter()
                    .map(|x| format!("<jsdl-hpcpa:Argument>{x}</jsdl-hpcpa:Argument>"))
                    .collect();
                put("argument_list", args);
            }
        }
        if job.run.state.is_finished()
            && let Some(end) = job.run.end_time
        {
            put("history_timestamp", format!("{}", end.floor() as i64));
        }
        put("project", a.project.clone());
        put("Submit_Host", a.submit_host.clone());
        out
    }

    /// `-f`: `Job Id: <id>`, `    <attr> = <value>` lines folded at commas (`prt_attr`), a blank
    /// line.
    fn full_text(&self, one_line: bool) -> String {
        let mut s = format!("Job Id: {}\n", self.id());
        for (name, res, value) in self.attributes() {
            let label = match &res {
                Some(r) => format!("{name}.{r}"),
                None => name.clone(),
            };
            s.push_str("    ");
            s.push_str(&label);
            s.push_str(" = ");
            if one_line {
                s.push_str(&value.replace('\n', "\\n"));
            } else {
                fold(&mut s, label.len() + 7, &value);
            }
            s.push('\n');
        }
        s.push('\n');
        s
    }

    /// `-F dsv`: one line, `attr=value` separated by the delimiter (escaped in values).
    fn dsv(&self, delim: &str) -> String {
        let mut s = format!("Job Id: {}{delim}", self.id());
        let attrs = self.attributes();
        let n = attrs.len();
        for (i, (name, res, value)) in attrs.into_iter().enumerate() {
            match res {
                Some(r) => s.push_str(&format!("{name}.{r}=")),
                None => s.push_str(&format!("{name}=")),
            }
            s.push_str(&escape_delimiter(&value, delim).replace('\n', "\\n"));
            if i + 1 < n {
                s.push_str(delim);
            }
        }
        s.push('\n');
        s
    }

    /// `-F json`: resources as objects, `Variable_List` as an object, numbers as numbers.
    fn json(&self) -> Json {
        let mut obj: Vec<(String, Json)> = Vec::new();
        for (name, res, value) in self.attributes() {
            match res {
                Some(r) => {
                    let parsed = Json::parse(&value);
                    match obj.last_mut() {
                        Some((last, Json::Object(items))) if *last == name => {
                            items.push((r, parsed));
                        }
                        _ => obj.push((name, Json::Object(vec![(r, parsed)]))),
                    }
                }
                None if name == "Variable_List" => {
                    let items = self
                        .attrs
                        .variable_list
                        .iter()
                        .map(|(k, v)| (k.clone(), Json::parse(v)))
                        .collect();
                    obj.push((name, Json::Object(items)));
                }
                None if matches!(name.as_str(), "Job_Name" | "project" | "Account_Name") => {
                    obj.push((name, Json::String(value)));
                }
                None => obj.push((name, Json::parse(&value))),
            }
        }
        Json::Object(obj)
    }
}

/// `Variable_List` as the server shows it: `name=value` joined by commas, commas in values
/// escaped with a backslash.
fn variable_list(vars: &[(String, String)]) -> String {
    vars.iter()
        .map(|(k, v)| format!("{k}={}", v.replace(',', "\\,")))
        .collect::<Vec<_>>()
        .join(",")
}

/// `prt_attr`'s folding of a long value at commas, `CHAR_LINE_LIMIT` characters per line,
/// continuation lines starting with a tab.
fn fold(out: &mut String, mut start: usize, value: &str) {
    let tokens: Vec<&str> = value.split(',').filter(|t| !t.is_empty()).collect();
    let mut first = true;
    for (i, tok) in tokens.iter().enumerate() {
        let len = tok.chars().count();
        if len + start < CHAR_LINE_LIMIT {
            out.push_str(tok);
            start += len;
        } else {
            if !first {
                out.push_str("\n\t");
                start = 9;
            }
            for c in tok.chars() {
                out.push(c);
                start += 1;
                if start > CHAR_LINE_LIMIT {
                    start = 8;
                    out.push_str("\n\t");
                }
            }
        }
        if i + 1 < tokens.len() {
            first = false;
            out.push(',');
        }
    }
}

/// `escape_delimiter`: the delimiter and backslashes get a backslash.
fn escape_delimiter(value: &str, delim: &str) -> String {
    if value.is_empty() || delim.is_empty() {
        return value.to_string();
    }
    let mut out = String::new();
    let mut rest = value;
    while let Some(c) = rest.chars().next() {
        if c == '\\' || rest.starts_with(delim) {
            out.push('\\');
            if c != '\\' {
                out.push_str(delim);
                rest = &rest[delim.len()..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// A (simulated) time as `ctime(3)` prints it, without the newline.
fn local_ctime(t: f64) -> String {
    local_time(t, "%a %b %e %H:%M:%S %Y")
}

fn local_time(t: f64, format: &str) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(t.floor() as i64, 0) {
        chrono::LocalResult::Single(dt) | chrono::LocalResult::Ambiguous(dt, _) => {
            dt.format(format).to_string()
        }
        chrono::LocalResult::None => String::new(),
    }
}

/// Cuts `value` to `len` characters, the last one `*`, when it is longer (`DISPLAY_TRUNC_CHAR`).
fn trunc(value: &str, len: usize) -> String {
    if value.chars().count() > len {
        let mut s: String = value.chars().take(len.saturating_sub(1)).collect();
        s.push('*');
        s
    } else {
        value.to_string()
    }
}

/// The default table (`display_statjob`): `%-17s %-16s %-16s  %8s %1s %-16s`, or the wide
/// widths with `-w`.
fn default_table(views: &[View<'_>], header: bool, wide: bool) -> String {
    let mut s = String::new();
    if header {
        if wide {
            s.push_str("Job id                         Name            User             Time Use S Queue\n");
            s.push_str("-----------------------------  --------------- ---------------  -------- - ---------------\n");
        } else {
            s.push_str("Job id            Name             User              Time Use S Queue\n");
            s.push_str("----------------  ---------------- ----------------  -------- - -----\n");
        }
    }
    let (idw, namew, userw, queuew) = if wide {
        (30, 15, 15, 15)
    } else {
        (17, 16, 16, 16)
    };
    for v in views {
        // The id up to the end of the server's first name part.
        let full = v.id();
        let mut parts = full.splitn(3, '.');
        let id = match (parts.next(), parts.next()) {
            (Some(seq), Some(srv)) => format!("{seq}.{srv}"),
            _ => full.clone(),
        };
        let id = trunc(&id, idw);
        let name = if v.job.req.name.chars().count() >= namew {
            trunc(&format!("{}*", v.job.req.name), namew)
        } else {
            v.job.req.name.clone()
        };
        let user = trunc(&v.job.req.user, userw);
        let time = if v.started() { "00:00:00" } else { "0" };
        let queue = trunc(&v.job.partition, queuew);
        let state = state_letter(v.job);
        if wide {
            s.push_str(&format!(
                "{id:<30} {name:<15} {user:<15}  {time:>8} {state} {queue:<15}\n"
            ));
        } else {
            s.push_str(&format!(
                "{id:<17} {name:<16} {user:<16}  {time:>8} {state} {queue:<16}\n"
            ));
        }
    }
    s
}

/// `cnv_size`: a size as the alternate display shows it (at most four digits; `-M` in
/// megawords, `-G` in gigabytes).
fn cnv_size(value: &str, alt: Alt) -> String {
    let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
    let mut nval: u64 = digits.parse().unwrap_or(0);
    let rest: Vec<char> = value[digits.len()..].chars().collect();
    let inp: i32 = match rest.first() {
        Some('k') => 1,
        Some('m') => 2,
        Some('g') => 3,
        Some('t') => 4,
        _ => 0,
    };
    let mut suffix2 = 'b';
    if rest.first() == Some(&'w') || rest.get(1) == Some(&'w') {
        nval <<= 3;
        suffix2 = 'w';
    }
    let mut out = if alt.mw {
        suffix2 = 'w';
        2
    } else if alt.g {
        suffix2 = 'b';
        3
    } else {
        inp
    };
    // sift_factor[out][in] of cnv_size.
    let sft = (inp - out) * 10;
    if sft < 0 {
        let s = (-sft) as u32;
        nval = nval.saturating_add((1u64 << s) - 1) >> s;
    } else if sft > 0 {
        nval = nval.checked_shl(sft as u32).unwrap_or(u64::MAX);
    }
    if suffix2 == 'w' {
        nval = nval.saturating_add(7) >> 3;
    }
    while nval > 9999 {
        nval = nval.saturating_add(1023) >> 10;
        out += 1;
    }
    let letter = " kmgtp?"
        .chars()
        .nth(out.clamp(0, 6) as usize)
        .unwrap_or('?');
    format!("{nval}{letter}{suffix2}")
}

/// The alternate table (`altdsp_statjob`, `-a -i -r -H -u -n -s -1`).
fn alt_table(views: &[View<'_>], server: &str, header: bool, alt: Alt, wide: bool) -> String {
    let blank = " -- ".to_string();
    let mut s = String::new();
    if header {
        s.push_str(&format!("\n{server}: "));
        if wide {
            s.push('\n');
            s.push_str(&format!(
                "{:30} {:15} {:15} {:15} {:8} {:4} {:5} ",
                "", "", "", "", "", "", ""
            ));
            s.push_str("Req'd  Req'd   Elap\n");
            s.push_str(&format!(
                "{:<30} {:<15} {:<15} {:<15} {:<8} {:<4} {:<5} ",
                "Job ID", "Username", "Queue", "Jobname", "SessID", "NDS", "TSK"
            ));
            s.push_str("Memory Time  S Time\n");
            s.push_str(&format!(
                "{} {} {} {} {} {} {} ",
                "-".repeat(30),
                "-".repeat(15),
                "-".repeat(15),
                "-".repeat(15),
                "-".repeat(8),
                "-".repeat(4),
                "-".repeat(5)
            ));
            s.push_str("------ ----- - -----\n");
        } else {
            s.push_str(&format!(
                "\n{:>60}{:<7}{:<8}{}\n",
                " ", "Req'd", "Req'd", "Elap"
            ));
            s.push_str(
                "Job ID          Username Queue    Jobname    SessID NDS TSK Memory Time  S Time\n",
            );
            s.push_str(
                "--------------- -------- -------- ---------- ------ --- --- ------ ----- - -----\n",
            );
        }
    }
    let cut = |v: &str, n: usize| -> String { v.chars().take(n).collect() };
    for v in views {
        let res = |name: &str| {
            v.attrs
                .resources
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, x)| x.clone())
        };
        let (w_id, w_user, w_queue, w_name, w_sess, w_nds, w_tsk) = if wide {
            (30, 15, 15, 15, 8, 4, 5)
        } else {
            (15, 8, 8, 10, 6, 3, 3)
        };
        let id = trunc(&v.id(), w_id);
        let user = trunc(&v.job.req.user, w_user);
        let queue = trunc(&v.job.partition, w_queue);
        let name = trunc(&v.job.req.name, w_name);
        let sess = v
            .job
            .run
            .pgid
            .map_or(blank.clone(), |p| trunc(&p.to_string(), w_sess));
        let nds = res("nodect").map_or(blank.clone(), |x| trunc(&x, w_nds));
        let tsk = res("ncpus")
            .filter(|x| x != "0")
            .map_or(blank.clone(), |x| trunc(&x, w_tsk));
        let mem = res("mem").map_or(blank.clone(), |m| cnv_size(&m, alt));
        let usecput = res("cput").is_some();
        let rqtime = if usecput {
            res("cput")
        } else {
            res("walltime")
        }
        .unwrap_or(blank.clone());
        let elapsed = if !v.started() {
            blank.clone()
        } else if usecput {
            "00:00:00".to_string()
        } else {
            resources::format_time(v.walltime_used())
        };
        s.push_str(&format!(
            "{:<w_id$} {:<w_user$} {:<w_queue$} {:<w_name$} {:>w_sess$} {:>w_nds$} {:>w_tsk$} ",
            cut(&id, w_id),
            cut(&user, w_user),
            cut(&queue, w_queue),
            cut(&name, w_name),
            cut(&sess, w_sess),
            cut(&nds, w_nds),
            cut(&tsk, w_tsk),
        ));
        s.push_str(&format!(
            "{:>6} {:>5} {} {:>5}",
            cut(&mem, 6),
            cut(&rqtime, 5),
            state_letter(v.job),
            cut(&elapsed, 5)
        ));
        s.push(if alt.one_line { ' ' } else { '\n' });
        if alt.n {
            let nodes = v.exec_host();
            prt_nodes(
                &mut s,
                if nodes.is_empty() { &blank } else { &nodes },
                alt.one_line,
            );
        }
        if alt.s {
            let comment = v.comment().unwrap_or(blank.clone());
            s.push_str(&format!("   {comment}\n"));
        }
    }
    s
}

/// `prt_nodes`: the exec_host chunks without domain names, `+`-joined, in lines shorter than
/// `CHAR_LINE_LIMIT`; each line indented by three spaces unless `-1` keeps them on the row.
fn prt_nodes(out: &mut String, nodes: &str, one_line: bool) {
    let mut line = String::new();
    let flush = |out: &mut String, line: &str, last: bool| {
        if one_line {
            out.push_str(line);
            if last {
                out.push('\n');
            }
        } else {
            out.push_str(&format!("   {line}\n"));
        }
    };
    for token in nodes.split('+').filter(|t| !t.is_empty()) {
        let (host, chunk) = token.split_at(token.find('/').unwrap_or(token.len()));
        let short = if host.parse::<std::net::Ipv4Addr>().is_ok() {
            host
        } else {
            host.split('.').next().unwrap_or(host)
        };
        let name = format!("{short}{chunk}");
        if line.len() + name.len() >= CHAR_LINE_LIMIT - 1 && !line.is_empty() {
            // A line that continues keeps its trailing '+'.
            flush(out, &line, false);
            line.clear();
        }
        line.push_str(&name);
        line.push('+');
    }
    if !line.is_empty() {
        line.pop();
        flush(out, &line, true);
    } else if one_line {
        out.push('\n');
    }
}

/// A JSON value as cJSON builds and prints it (qstat `-F json`).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Object(Vec<(String, Json)>),
    Array(Vec<Json>),
    String(String),
    Number(f64),
    Bool(bool),
    Null,
}

impl Json {
    /// `pbs_json_insert_parsed`: the value parsed as JSON (`cJSON_ParseWithOpts`), else a
    /// string.
    fn parse(text: &str) -> Json {
        let t = text.trim_start();
        let rest_blank = |r: &str| r.trim().is_empty();
        for (word, value) in [
            ("null", Json::Null),
            ("true", Json::Bool(true)),
            ("false", Json::Bool(false)),
        ] {
            if let Some(r) = t.strip_prefix(word)
                && rest_blank(r)
            {
                return value;
            }
        }
        if t.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            let n = t
                .chars()
                .take_while(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | 'e' | 'E' | '.'))
                .count();
            if rest_blank(&t[n..])
                && let Ok(x) = t[..n].parse::<f64>()
            {
                return Json::Number(x);
            }
            return Json::String(text.to_string());
        }
        if t.starts_with(['"', '[', '{'])
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(t)
        {
            return Json::from_value(v);
        }
        Json::String(text.to_string())
    }

    fn from_value(v: serde_json::Value) -> Json {
        match v {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(b),
            serde_json::Value::Number(n) => Json::Number(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => Json::String(s),
            serde_json::Value::Array(a) => {
                Json::Array(a.into_iter().map(Json::from_value).collect())
            }
            serde_json::Value::Object(o) => Json::Object(
                o.into_iter()
                    .map(|(k, v)| (k, Json::from_value(v)))
                    .collect(),
            ),
        }
    }

    /// `cJSON_Print`: formatted with tabs.
    fn print(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out
    }

    fn write(&self, out: &mut String, depth: usize) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(&print_number(*n)),
            Json::String(s) => write_string(out, s),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write(out, depth + 1);
                }
                out.push(']');
            }
            Json::Object(items) => {
                out.push_str("{\n");
                for (i, (k, v)) in items.iter().enumerate() {
                    out.push_str(&"\t".repeat(depth + 1));
                    write_string(out, k);
                    out.push_str(":\t");
                    v.write(out, depth + 1);
                    if i + 1 < items.len() {
                        out.push(',');
                    }
                    out.push('\n');
                }
                out.push_str(&"\t".repeat(depth));
                out.push('}');
            }
        }
    }
}

/// cJSON's `print_number`: integers that fit an `int` as such, others with 15 (or 17)
/// significant digits.
fn print_number(n: f64) -> String {
    if !n.is_finite() {
        return "null".into();
    }
    if n.fract() == 0.0 && n >= f64::from(i32::MIN) && n <= f64::from(i32::MAX) {
        return format!("{}", n as i64);
    }
    if n.fract() == 0.0 && n.abs() < 1e15 {
        return format!("{}", n as i64);
    }
    format!("{n}")
}

/// cJSON's `print_string_ptr`.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_parse_like_cjson() {
        assert_eq!(Json::parse("0"), Json::Number(0.0));
        assert_eq!(Json::parse("-29"), Json::Number(-29.0));
        assert_eq!(Json::parse("01"), Json::Number(1.0));
        assert_eq!(Json::parse("00:00:05"), Json::String("00:00:05".into()));
        assert_eq!(Json::parse("True"), Json::String("True".into()));
        assert_eq!(Json::parse("true"), Json::Bool(true));
        assert_eq!(Json::parse("1:ncpus=1"), Json::String("1:ncpus=1".into()));
    }

    #[test]
    fn json_prints_like_cjson() {
        let j = Json::Object(vec![
            ("a".into(), Json::Number(1.0)),
            ("b".into(), Json::Object(vec![])),
            (
                "c".into(),
                Json::Object(vec![("d".into(), Json::String("x\"y".into()))]),
            ),
        ]);
        assert_eq!(
            j.print(),
            "{\n\t\"a\":\t1,\n\t\"b\":\t{\n\t},\n\t\"c\":\t{\n\t\t\"d\":\t\"x\\\"y\"\n\t}\n}"
        );
        assert_eq!(print_number(1.5), "1.5");
        assert_eq!(print_number(3e9), "3000000000");
    }

    #[test]
    fn long_values_fold_at_commas() {
        let mut s = String::new();
        let value = (0..12)
            .map(|i| format!("VAR{i}=value{i}"))
            .collect::<Vec<_>>()
            .join(",");
        fold(&mut s, "Variable_List".len() + 7, &value);
        assert_eq!(
            s,
            "VAR0=value0,VAR1=value1,VAR2=value2,VAR3=value3,VAR4=value4,\n\tVAR5=value5,VAR6=value6,VAR7=value7,VAR8=value8,VAR9=value9,VAR10=value10,\n\tVAR11=value11"
        );
    }

    #[test]
    fn sizes_shrink_to_four_digits() {
        let alt = Alt::default();
        assert_eq!(cnv_size("1gb", alt), "1gb");
        assert_eq!(cnv_size("20000kb", alt), "20mb");
        assert_eq!(cnv_size("1gb", Alt { mw: true, ..alt }), "128mw");
        assert_eq!(escape_delimiter("a|b\\c", "|"), "a\\|b\\\\c");
    }
}
