//! Fake Cobalt `qsub` (reference 5.1, 5.2, 5.5; `src/clients/POSIX/qsub.py`,
//! `src/lib/client_utils.py` callbacks, `src/lib/Components/cluster_base_system.py`
//! `validate_job`, `src/lib/Components/cqm.py` `QueueManager.add_jobs`).
//!
//! qsub checks its options and the executable itself, asks the system component to validate
//! the job and the queue manager to queue it, and prints only the job id. The queue manager
//! starts the job's `.cobaltlog` with qsub's lines (see `flavor/cobalt.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;

use super::optparse::{self, Found, Kind, Opt, opt, py_repr};
use super::{Usage, fault_error, unexpected, unreachable};
use crate::cli::Call;
use crate::cli::slurm::{ResourceOpts, build_request};
use crate::config::Cluster;
use crate::flavor::Flavor;
use crate::flavor::cobalt::attr;
use crate::model::JobKind;
use crate::protocol::{Request, Response};
use crate::units::TimeLimit;

const SPEC: &[Opt] = &[
    opt("version", &["--version"], Kind::Flag),
    opt("help", &["--help"], Kind::Flag),
    opt("debug", &["-d", "--debug"], Kind::Flag),
    opt("verbose", &["-v", "--verbose"], Kind::Flag),
    opt("user_hold", &["-h", "--held"], Kind::Flag),
    opt("preemptable", &["--preemptable"], Kind::Flag),
    opt("run_project", &["--run_project"], Kind::Flag),
    opt("script_preboot", &["--disable_preboot"], Kind::Flag),
    opt("interactive", &["-I", "--interactive"], Kind::Flag),
    opt("nodes", &["-n", "--nodecount"], Kind::Int),
    opt("procs", &["--proccount"], Kind::Int),
    opt("project", &["-A", "--project"], Kind::Str),
    opt("cwd", &["--cwd"], Kind::Str),
    opt("queue", &["-q", "--queue"], Kind::Str),
    opt("notify", &["-M", "--notify"], Kind::Str),
    opt("envs", &["--env"], Kind::Str),
    opt("walltime", &["-t", "--time"], Kind::Str),
    opt("umask", &["-u", "--umask"], Kind::Str),
    opt("outputprefix", &["-O", "--outputprefix"], Kind::Str),
    opt("errorpath", &["-e", "--error"], Kind::Str),
    opt("outputpath", &["-o", "--output"], Kind::Str),
    opt("inputfile", &["-i", "--inputfile"], Kind::Str),
    opt("cobalt_log_file", &["--debuglog"], Kind::Str),
    opt("all_dependencies", &["--dependencies"], Kind::Str),
    opt("attrs", &["--attrs"], Kind::Str),
    opt("user_list", &["--user_list", "--run_users"], Kind::Str),
    opt("jobname", &["--jobname"], Kind::Str),
    opt("kernel", &["--kernel"], Kind::Str),
    opt("kerneloptions", &["-K", "--kerneloptions"], Kind::Str),
    opt("ion_kernel", &["--ion_kernel"], Kind::Str),
    opt("ion_kerneloptions", &["--ion_kerneloptions"], Kind::Str),
    opt("mode", &["--mode"], Kind::Str),
    opt("geometry", &["--geometry"], Kind::Str),
];

const USAGE: Usage = Usage {
    prog: "qsub",
    text: "%prog --help\nUsage: %prog [options] <executable> [<excutable options>]\n\nRefer to man pages for JOBID EXPANSION and SCRIPT JOB DIRECTIVES.\n",
    revision: "559",
    help: &[
        ("-d, --debug", "turn on communication debugging"),
        ("-v, --verbose", "not used"),
        ("-h, --held", "hold this job once submitted"),
        ("--preemptable", "make this job preemptable"),
        ("--run_project", "set run project flag for this job"),
        ("--disable_preboot", "disable script preboot"),
        ("-I, --interactive", "run qsub in interactive mode"),
        ("-n NODES, --nodecount=NODES", "set job node count"),
        ("--proccount=PROCS", "set job proc count"),
        ("-A PROJECT, --project=PROJECT", "set project name"),
        ("--cwd=CWD", "set current working directory"),
        ("-q QUEUE, --queue=QUEUE", "set queue name"),
        (
            "-M NOTIFY, --notify=NOTIFY",
            "set notification email address",
        ),
        (
            "--env=ENVS",
            "Set env variables. Refer to man pages for more detail information.",
        ),
        (
            "-t WALLTIME, --time=WALLTIME",
            "set walltime (minutes or HH:MM:SS). For max walltime enter 0.",
        ),
        (
            "-u UMASK, --umask=UMASK",
            "set umask: octal number default(022)",
        ),
        (
            "-O OUTPUTPREFIX, --outputprefix=OUTPUTPREFIX",
            "output prefix for error,output or debuglog files",
        ),
        ("-e ERRORPATH, --error=ERRORPATH", "set error file path"),
        ("-o OUTPUTPATH, --output=OUTPUTPATH", "set output file path"),
        ("-i INPUTFILE, --inputfile=INPUTFILE", "set input file"),
        ("--debuglog=COBALT_LOG_FILE", "set debug log path file"),
        (
            "--dependencies=ALL_DEPENDENCIES",
            "set job dependencies (jobid1:jobid2:...:jobidN)",
        ),
        (
            "--attrs=ATTRS",
            "set attributes (attr1=val1:attr2=val2:...:attrN=valN)",
        ),
        (
            "--user_list=USER_LIST, --run_users=USER_LIST",
            "set user list (user1:user2:...:userN)",
        ),
        (
            "--jobname=JOBNAME",
            "Sets Jobname. If this option is not provided then Jobname will be set to whatever -o option specified.",
        ),
        ("--kernel=KERNEL", "set a compute node kernel profile"),
        (
            "-K KERNELOPTIONS, --kerneloptions=KERNELOPTIONS",
            "set compute node kernel options",
        ),
        ("--ion_kernel=ION_KERNEL", "set an IO node kernel profile"),
        (
            "--ion_kerneloptions=ION_KERNELOPTIONS",
            "set IO node kernel options",
        ),
        ("--mode=MODE", "select system mode"),
        ("--geometry=GEOMETRY", "set geometry (AxBxCxDxE)"),
    ],
};

/// `client_utils.cb_nodes`: the system size when cobalt.conf names none.
const SYSTEM_SIZE: i64 = 1024;

/// The job modes of a system whose cobalt.conf has no `bgsystem` section (`system_info`).
const MODES: &[&str] = &["co", "vn", "script", "interactive"];

/// A path option: relative ones are completed with the job's directory later (`cb_path` puts
/// `CWD_TAG` in front of them).
#[derive(Debug, Clone)]
enum PathArg {
    Cwd(String),
    Abs(String),
}

impl PathArg {
    fn with_suffix(&self, suffix: &str) -> PathArg {
        match self {
            PathArg::Cwd(p) => PathArg::Cwd(format!("{p}{suffix}")),
            PathArg::Abs(p) => PathArg::Abs(format!("{p}{suffix}")),
        }
    }

    fn resolve(&self, cwd: &str) -> String {
        match self {
            PathArg::Cwd(p) => format!("{cwd}/{p}"),
            PathArg::Abs(p) => p.clone(),
        }
    }
}

/// What one pass over the command line produced (qsub's `spec` and `opts`).
#[derive(Debug, Default)]
struct Options {
    /// Destinations given (`get_options` counts them).
    given: BTreeSet<&'static str>,
    walltime: Option<i64>,
    nodes: Option<i64>,
    procs: Option<i64>,
    project: Option<String>,
    cwd: Option<String>,
    queue: Option<String>,
    notify: Option<String>,
    envs: Option<Vec<(String, String)>>,
    outputprefix: Option<PathArg>,
    errorpath: Option<PathArg>,
    outputpath: Option<PathArg>,
    inputfile: Option<PathArg>,
    debuglog: Option<PathArg>,
    jobname: Option<String>,
    held: bool,
    mode: Option<String>,
    attrs: Option<Vec<(String, String)>>,
    user_list: Option<Vec<String>>,
    args: Vec<String>,
}

fn fail(message: &str) -> i32 {
    eprintln!("{message}");
    1
}

/// `Util.get_time`: minutes, `HH:MM`, `HH:MM:SS` or `DD:HH:MM:SS` to whole minutes (seconds
/// are dropped).
fn get_time(text: &str) -> Result<i64, String> {
    let units: Vec<&str> = text.split(':').collect();
    let keys: &[&str] = match units.len() {
        1 => &["minutes"],
        2 => &["hours", "minutes"],
        3 => &["hours", "minutes", "seconds"],
        4 => &["days", "hours", "minutes", "seconds"],
        _ => {
            return Err("time may be specified as minutes, HH:MM, HH:MM:SS, or DD:HH:MM:SS".into());
        }
    };
    let mut info: BTreeMap<&str, i64> = BTreeMap::new();
    for (key, unit) in keys.iter().zip(&units) {
        let t = unit.trim();
        let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
        let value = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            t.parse::<i64>().ok()
        } else {
            None
        };
        match value {
            Some(v) => {
                info.insert(key, v);
            }
            None => return Err(format!("illegal value '{unit}' for {key}")),
        }
    }
    if let Some(&s) = info.get("seconds")
        && !(0..=59).contains(&s)
    {
        return Err(format!("seconds value '{s}' outside range [0, 59]"));
    }
    if info.len() == 1 && info.get("minutes").is_some_and(|m| *m < 0) {
        return Err("minutes value must not be negative".into());
    }
    if info.len() < 4 && info.get("hours").is_some_and(|h| *h < 0) {
        return Err("hours value must not be negative".into());
    }
    if info.get("days").is_some_and(|d| *d < 0) {
        return Err("days value must not be negative".into());
    }
    let get = |k: &str| info.get(k).copied().unwrap_or(0);
    let minutes = get("minutes")
        .saturating_add(get("hours").saturating_mul(60))
        .saturating_add(get("days").saturating_mul(1440));
    if minutes > 1 << 31 {
        return Err(format!("{} years is too long", minutes / 525_600));
    }
    Ok(minutes)
}

/// Python's repr of a list of strings.
fn py_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| py_repr(s)).collect();
    format!("[{}]", inner.join(", "))
}

/// `client_utils.cb_env`: `A=B:C=D`, `\:` and `\=` escape the separators in values; a new
/// pair starts at a `:` followed by `<word>=`.
fn parse_env(value: &str) -> Result<Vec<(String, String)>, String> {
    const COL: &str = "<<*COL*>>";
    const EQL: &str = "<<*EQL*>>";
    let v = value.replace("\\:", COL).replace("\\=", EQL);
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut items = Vec::new();
    let mut start = 0;
    for (i, c) in v.char_indices() {
        if c != ':' {
            continue;
        }
        let rest = &v[i + 1..];
        let word = rest.chars().take_while(|c| is_word(*c)).count();
        if word > 0 && rest[word..].starts_with('=') {
            items.push(&v[start..i]);
            start = i + 1;
        }
    }
    items.push(&v[start..]);
    let mut pairs = Vec::new();
    for item in items {
        match item.split_once('=') {
            Some((k, val)) => pairs.push((k.to_string(), val.replace(COL, ":").replace(EQL, "="))),
            None => {
                return Err(format!(
                    "Improperly formatted argument to env : {}",
                    py_list(&[item.to_string()])
                ));
            }
        }
    }
    Ok(pairs)
}

/// `client_utils.cb_attrs`.
fn parse_attrs(value: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for a in value.split(':') {
        let parts: Vec<&str> = a.split('=').collect();
        match parts.as_slice() {
            [k, v] => out.push((k.to_string(), v.to_string())),
            [one] => match one.strip_prefix("no_") {
                Some(rest) => out.push((rest.to_string(), "false".into())),
                None => out.push((one.to_string(), "true".into())),
            },
            _ => return Err(format!("Improperly formatted argument to attrs : {a}")),
        }
    }
    Ok(out)
}

/// `os.path.dirname`.
fn dirname(path: &str) -> String {
    let head = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "",
    };
    if !head.is_empty() && !head.chars().all(|c| c == '/') {
        head.trim_end_matches('/').to_string()
    } else {
        head.to_string()
    }
}

fn is_dir(path: &str) -> bool {
    std::path::Path::new(path).is_dir()
}

/// qsub.py `update_paths`: a relative path in the job's directory, whose directory must exist.
fn resolve_path(p: Option<&PathArg>, cwd: &str) -> Result<Option<String>, i32> {
    match p {
        Some(PathArg::Cwd(rel)) => {
            let path = format!("{cwd}/{rel}");
            if !is_dir(&dirname(&path)) {
                return Err(fail(&format!("directory {path} does not exist")));
            }
            Ok(Some(path))
        }
        Some(p) => Ok(Some(p.resolve(cwd))),
        None => Ok(None),
    }
}

/// `client_utils.cb_path` with `use_cwd`.
fn path_arg(value: &str) -> Result<PathArg, i32> {
    if !value.starts_with('/') {
        return Ok(PathArg::Cwd(value.to_string()));
    }
    if !is_dir(&dirname(value)) {
        return Err(fail(&format!("directory {value} does not exist")));
    }
    Ok(PathArg::Abs(value.to_string()))
}

/// One parse of the command line: optparse, with each option's callback run as it is met.
fn parse_options(argv: &[String]) -> Result<Options, i32> {
    let parsed = optparse::parse(argv, SPEC);
    let mut o = Options::default();
    for Found {
        dest,
        name,
        value,
        number,
    } in &parsed.found
    {
        let v = value.clone().unwrap_or_default();
        match *dest {
            "help" => return Err(USAGE.print_help()),
            "version" => return Err(USAGE.print_version()),
            // get_options skips these.
            "debug" | "verbose" => continue,
            "user_hold" => o.held = true,
            "preemptable" | "run_project" | "script_preboot" | "kernel" | "kerneloptions"
            | "ion_kernel" | "ion_kerneloptions" | "geometry" => {}
            "interactive" => set_mode(&mut o, "interactive")?,
            "mode" => set_mode(&mut o, &v)?,
            "nodes" => {
                let n = number.unwrap_or(0);
                if !(0 < n && n <= SYSTEM_SIZE) {
                    return Err(fail("node count out of realistic range"));
                }
                o.nodes = Some(n);
            }
            "procs" => {
                let n = number.unwrap_or(0);
                if n <= 0 {
                    return Err(fail(&format!("{name} is {n} which is greater <= to zero")));
                }
                o.procs = Some(n);
            }
            "project" => o.project = Some(v),
            "cwd" => o.cwd = Some(v),
            "queue" => o.queue = Some(v),
            "notify" => o.notify = Some(v),
            "jobname" => o.jobname = Some(v),
            "envs" => match parse_env(&v) {
                Ok(pairs) => o.envs = Some(pairs),
                Err(e) => return Err(fail(&e)),
            },
            "walltime" => match get_time(&v) {
                Ok(m) => o.walltime = Some(m),
                Err(e) => return Err(fail(&format!("invalid time specification: {e}"))),
            },
            "umask" => {
                let t = v.trim();
                let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
                if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                    return Err(fail(&format!("Invalid umask value {v}")));
                }
            }
            "outputprefix" => o.outputprefix = Some(path_arg(&v)?),
            "errorpath" => o.errorpath = Some(path_arg(&v)?),
            "outputpath" => o.outputpath = Some(path_arg(&v)?),
            "inputfile" => o.inputfile = Some(path_arg(&v)?),
            "cobalt_log_file" => o.debuglog = Some(path_arg(&v)?),
            "all_dependencies" => {
                return Err(fail(
                    "qsub: job dependencies (--dependencies) are not supported by mock-cluster",
                ));
            }
            "attrs" => {
                if o.attrs.is_some() {
                    return Err(fail(
                        "Multiple --attrs options not supported.  Specify multiple attributes as follows: --attrs FOO=1:BAR=2",
                    ));
                }
                match parse_attrs(&v) {
                    Ok(a) => o.attrs = Some(a),
                    Err(e) => return Err(fail(&e)),
                }
            }
            "user_list" => {
                let mut users: Vec<String> = v.split(':').map(str::to_string).collect();
                for u in &users {
                    if !matches!(nix::unistd::User::from_name(u), Ok(Some(_))) {
                        return Err(fail(&format!("user {u} does not exist.")));
                    }
                }
                let me = super::user();
                if !users.contains(&me) {
                    users.insert(0, me);
                }
                o.user_list = Some(users);
            }
            _ => {}
        }
        o.given.insert(dest);
    }
    if let Some(error) = parsed.error {
        return Err(USAGE.parse_error(&error));
    }
    o.args = parsed.args;
    Ok(o)
}

/// `client_utils._set_mode`.
fn set_mode(o: &mut Options, mode: &str) -> Result<(), i32> {
    if let Some(old) = &o.mode {
        if old != mode {
            return Err(fail(&format!(
                "Mode already set to '{old}' and trying to set it again to '{mode}'"
            )));
        }
        return Ok(());
    }
    if !MODES.contains(&mode) {
        return Err(fail(&format!(
            "Specifed mode '{mode}' not valid, valid modes are\n{}",
            MODES.join("\n")
        )));
    }
    if mode == "interactive" {
        return Err(fail(
            "qsub: interactive jobs (-I, --mode interactive) are not supported by mock-cluster",
        ));
    }
    o.mode = Some(mode.to_string());
    o.given.insert("mode");
    Ok(())
}

/// The `#COBALT` lines right after the shebang (qsub.py `validate_args`): their words, or
/// `None` when there are none.
fn directives(path: &str) -> Option<Vec<String>> {
    const TAG: &[u8] = b"#COBALT ";
    let file = std::fs::File::open(path).ok()?;
    let mut lines = std::io::BufReader::new(file).split(b'\n');
    let first = lines.next()?.ok()?;
    if !first.starts_with(b"#!") {
        return None;
    }
    let mut words: Option<Vec<String>> = None;
    for line in lines {
        let Ok(line) = line else { break };
        // readline keeps the newline; a line must be longer than the tag.
        let len = line.len() + 1;
        if len <= TAG.len() || !line.starts_with(TAG) {
            break;
        }
        let text = String::from_utf8_lossy(&line[TAG.len()..]).into_owned();
        words
            .get_or_insert_with(Vec::new)
            .extend(text.split_ascii_whitespace().map(str::to_string));
    }
    words
}

/// qsub.py `env_union`: every `--env`/`--en` value joined with `:` into the first one.
fn env_union(argv: &[String]) -> Result<Vec<String>, i32> {
    let mut out = Vec::new();
    let mut values = Vec::new();
    let mut slot = None;
    let mut i = 0;
    while i < argv.len() {
        if argv[i] == "--env" || argv[i] == "--en" {
            let Some(v) = argv.get(i + 1) else {
                let mut shown = vec!["qsub".to_string()];
                shown.extend(argv.iter().cloned());
                return Err(fail(&format!(
                    "No values specified or invalid usage of --env option: {} --> list index out of range",
                    py_list(&shown)
                )));
            };
            values.push(v.clone());
            if slot.is_none() {
                out.push("--env".to_string());
                slot = Some(out.len());
                out.push(String::new());
            }
            i += 2;
            continue;
        }
        out.push(argv[i].clone());
        i += 1;
    }
    if let Some(s) = slot {
        out[s] = values.join(":");
    }
    Ok(out)
}

/// A path as the daemon's file name pattern: `%` kept literally, the job id expansions of
/// cqm `JobList.q_add` (`$jobid`, `$COBALT_JOBID`) as `%j`.
fn to_pattern(path: &str) -> String {
    path.replace('%', "%%")
        .replace("$jobid", "%j")
        .replace("$COBALT_JOBID", "%j")
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The job's launcher, as Cobalt's `cobalt-launcher.py` behaves: change to the job's
/// directory (failing the job with 1 when it cannot), then exec the executable with its
/// arguments (`[Errno 2]` and 127 when it is gone, `[Errno 13]` and 126 when it cannot be run).
fn launcher(dir: &str, exe: &str) -> String {
    let (dir, exe) = (sh_quote(dir), sh_quote(exe));
    format!(
        "#!/bin/sh\n\
         cd {dir} 2>/dev/null || exit 1\n\
         unset OLDPWD\n\
         if [ ! -e {exe} ]; then echo '[Errno 2] No such file or directory' >&2; exit 127; fi\n\
         if [ -d {exe} ] || [ ! -x {exe} ]; then echo '[Errno 13] Permission denied' >&2; exit 126; fi\n\
         exec {exe} \"$@\"\n"
    )
}

/// The terminal qsub's standard output is, if it is one (`fetch_tty_session`).
fn tty() -> Option<String> {
    let stdout = std::io::stdout();
    let fd = std::os::fd::AsFd::as_fd(&stdout);
    if !nix::unistd::isatty(fd).unwrap_or(false) {
        return None;
    }
    nix::unistd::ttyname(fd)
        .ok()
        .map(|p| p.display().to_string())
}

/// The login environment Cobalt's forker gives a job (`user_script_forker.py`: `HOME`,
/// `USER`, `LOGNAME`, `SHELL` over the `--env` pairs), with a login `PATH` that finds the
/// simulated cluster's commands and the variables that select the cluster.
fn job_environment(call: &Call, envs: &[(String, String)]) -> BTreeMap<String, String> {
    let (user, uid, _) = crate::cli::slurm::identity();
    let caller = crate::cli::environment();
    let account = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten();
    let mut env = BTreeMap::new();
    env.insert(
        "PATH".to_string(),
        format!(
            "{}:/usr/local/bin:/usr/bin:/bin",
            call.dir.join("bin").display()
        ),
    );
    for (k, v) in &caller {
        if k.starts_with("MOCK_CLUSTER_") {
            env.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in envs {
        env.insert(k.clone(), v.clone());
    }
    let home = account
        .as_ref()
        .map(|a| a.dir.display().to_string())
        .or_else(|| caller.get("HOME").cloned())
        .unwrap_or_else(|| "/".into());
    let shell = account
        .as_ref()
        .map(|a| a.shell.display().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| caller.get("SHELL").cloned())
        .unwrap_or_else(|| "/bin/sh".into());
    env.insert("HOME".into(), home);
    env.insert("USER".into(), user.clone());
    env.insert("LOGNAME".into(), user);
    env.insert("SHELL".into(), shell);
    env
}

/// Runs qsub; returns the exit code.
pub fn main(call: &mut Call) -> i32 {
    let argv = call.args();
    let here = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/".into());
    let first = match parse_options(&argv) {
        Ok(o) => o,
        Err(code) => return code,
    };
    // A relative --cwd is taken from the submit directory.
    let resolve_cwd = |o: &Options| match &o.cwd {
        Some(d) if d.starts_with('/') => d.clone(),
        Some(d) => format!("{}/{d}", here.trim_end_matches('/')),
        None => here.clone(),
    };

    // validate_args: the executable, then the #COBALT directives.
    let Some(given) = first.args.first() else {
        return USAGE.print_with_error("No executable or script specified");
    };
    let mut command = given.replace(' ', "");
    if command.is_empty() {
        return fail("*** FATAL EXCEPTION: string index out of range ***");
    }
    if !command.starts_with('/') {
        command = format!("{}/{command}", resolve_cwd(&first));
    }
    if !std::path::Path::new(&command).is_file() {
        return fail(&format!("command {command} not found, or is not a file"));
    }
    let access = std::ffi::CString::new(command.clone())
        // SAFETY: access() only reads the NUL-terminated path.
        .map(|c| unsafe { libc::access(c.as_ptr(), libc::X_OK | libc::R_OK) } == 0)
        .unwrap_or(false);
    if !access {
        return fail(&format!("command {command} is not executable"));
    }
    let job_args: Vec<String> = first.args[1..].to_vec();
    let mut full = argv.clone();
    let mut reparse = false;
    if let Some(words) = directives(&command) {
        let mut with = vec!["--mode".to_string(), "script".to_string()];
        with.extend(words);
        with.extend(argv.iter().cloned());
        full = with;
        reparse = true;
    }
    if full
        .iter()
        .filter(|a| *a == "--env" || *a == "--en")
        .count()
        > 1
    {
        full = match env_union(&full) {
            Ok(f) => f,
            Err(code) => return code,
        };
        reparse = true;
    }
    let o = if reparse {
        match parse_options(&full) {
            Ok(o) => o,
            Err(code) => return code,
        }
    } else {
        first
    };
    let cwd = resolve_cwd(&o);

    // validate_options
    if o.given.is_empty() {
        return USAGE.print_with_error("No required options provided");
    }
    let Some(walltime) = o.walltime else {
        return fail("'time' not provided");
    };
    let Some(nodes) = o.nodes else {
        return fail("'nodecount' not provided");
    };

    // update_outputprefix, update_paths, check_inputfile
    let mut errorpath = o.errorpath.clone();
    let mut outputpath = o.outputpath.clone();
    let mut debuglog = o.debuglog.clone();
    if let Some(prefix) = &o.outputprefix {
        errorpath.get_or_insert_with(|| prefix.with_suffix(".error"));
        debuglog.get_or_insert_with(|| prefix.with_suffix(".cobaltlog"));
        outputpath.get_or_insert_with(|| prefix.with_suffix(".output"));
    }
    if !is_dir(&dirname(&cwd)) {
        return fail(&format!("directory {cwd} does not exist"));
    }
    let resolved = [&errorpath, &outputpath, &o.inputfile, &debuglog]
        .into_iter()
        .map(|p| resolve_path(p.as_ref(), &cwd))
        .collect::<Result<Vec<Option<String>>, i32>>();
    let [errorpath, outputpath, inputfile, debuglog] = match resolved {
        Ok(v) => match <[Option<String>; 4]>::try_from(v) {
            Ok(a) => a,
            Err(_) => return 1,
        },
        Err(code) => return code,
    };
    if let Some(input) = &inputfile
        && !std::path::Path::new(input).is_file()
    {
        return fail(&format!("file {input} not found, or is not a file"));
    }

    // The system component (validate_job) and the queue manager (add_jobs).
    let cluster = match call.conn() {
        Ok(conn) => match conn.call(&Request::Cluster {
            status_command: false,
        }) {
            Ok(Response::Cluster { cluster, .. }) => cluster,
            _ => return unexpected(call, "system", "validate_job"),
        },
        Err(e) => return unreachable(call, &e, "system"),
    };
    if !(0 < nodes && nodes as usize <= cluster.nodes.len()) {
        return fault_error(
            1004,
            "Node count out of realistic range",
            "system",
            "validate_job",
        );
    }
    if 0 < walltime && walltime < 5 {
        return fault_error(1004, "Walltime less than minimum", "system", "validate_job");
    }
    let procs = o.procs.unwrap_or(nodes);
    let queue = o.queue.clone().unwrap_or_else(|| default_queue(&cluster));
    if let Err(message) = check_queue(&cluster, &queue, walltime) {
        eprintln!("<Fault 1001: {}>", py_repr(&message));
        return 1;
    }

    // The job.
    let envs = o.envs.clone().unwrap_or_default();
    let outdir = to_pattern(&cwd);
    let name = match (&o.jobname, &outputpath) {
        (Some(n), _) => to_pattern(n),
        (None, Some(out)) => {
            let base = out.rsplit('/').next().unwrap_or("");
            let stem = base.split(".output").next().unwrap_or("");
            let pattern = to_pattern(stem);
            if stem.is_empty() || pattern == "%j" {
                "N/A".into()
            } else {
                pattern
            }
        }
        (None, None) => "N/A".into(),
    };
    let r = ResourceOpts {
        name: Some(name.clone()),
        partition: Some(queue),
        account: o.project.clone(),
        time: (walltime > 0).then(|| TimeLimit::Seconds(walltime as u64 * 60)),
        nodes: Some(nodes as u32),
        exclusive: true,
        hold: o.held,
        chdir: Some(cwd.clone()),
        ..ResourceOpts::default()
    };
    let env = job_environment(call, &envs);
    let mut req = build_request(JobKind::Batch, &r, &name, env, command.clone());
    req.flavor = Flavor::Cobalt;
    req.stdout = Some(
        outputpath
            .as_deref()
            .map_or(format!("{outdir}/%j.output"), to_pattern),
    );
    req.stderr = Some(
        errorpath
            .as_deref()
            .map_or(format!("{outdir}/%j.error"), to_pattern),
    );
    req.debug_log = Some(
        debuglog
            .as_deref()
            .map_or(format!("{outdir}/%j.cobaltlog"), to_pattern),
    );
    req.stdin = inputfile.as_deref().map(|p| p.replace('%', "%%"));
    // Cobalt's forker opens the output files for appending (pg_forker.py `_open_output`).
    req.append = true;
    req.script = Some(launcher(&cwd, &command));
    req.args = job_args;
    let attributes = &mut req.attributes;
    attributes.insert(attr::PROCS.into(), procs.to_string());
    attributes.insert(attr::QSUB_ARGV.into(), full.join(" "));
    if let Some(t) = tty() {
        attributes.insert(attr::TTY.into(), t);
    }
    if !envs.is_empty() {
        let shown: Vec<String> = envs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        attributes.insert(attr::ENVS.into(), shown.join(" "));
    }
    if let Some(n) = &o.notify {
        attributes.insert(attr::NOTIFY.into(), n.clone());
    }
    if let Some(a) = &o.attrs {
        let shown: Vec<String> = a
            .iter()
            .map(|(k, v)| format!("{}: {}", py_repr(k), py_repr(v)))
            .collect();
        attributes.insert(attr::ATTRS.into(), format!("{{{}}}", shown.join(", ")));
    }
    let users = o.user_list.clone().unwrap_or_else(|| vec![super::user()]);
    attributes.insert(attr::USER_LIST.into(), users.join(":"));
    if let Ok(path) = std::env::var("PATH") {
        attributes.insert(attr::PATH.into(), path);
    }

    let answer = match call.conn() {
        Ok(conn) => conn.call(&Request::Submit {
            req: Box::new(req),
            wait: false,
        }),
        Err(e) => return unreachable(call, &e, "queue-manager"),
    };
    match answer {
        Ok(Response::Submitted { id }) => {
            call.set_job_id(id);
            println!("{id}");
            0
        }
        // run_job logs the fault of add_jobs as it is.
        Ok(Response::Error { message, .. }) => {
            eprintln!("<Fault 1001: {}>", py_repr(&message));
            1
        }
        _ => unexpected(call, "queue-manager", "add_jobs"),
    }
}

/// The queue qsub asks for without `-q`: `default` (qsub.py `def_spec['queue']`) when the
/// cluster has a partition of that name, else the cluster's default partition.
fn default_queue(cluster: &Cluster) -> String {
    if cluster.partition("default").is_some() {
        return "default".into();
    }
    cluster
        .default_partition()
        .map_or_else(|| "default".into(), |p| p.name.clone())
}

/// The queue manager's checks of `add_jobs` and `Queue.can_queue`; the fault text on refusal.
fn check_queue(cluster: &Cluster, queue: &str, walltime: i64) -> Result<(), String> {
    let Some(part) = cluster.partition(queue) else {
        return Err(format!("trying to add job to non-existent queue '{queue}'"));
    };
    let max = part.max_time.seconds().map(|s| s / 60);
    if walltime <= 0 && max.is_none() {
        return Err(format!(
            "No Max Walltime default or for queue \"{queue}\" defined. Please contact system administrator"
        ));
    }
    match part.state.as_str() {
        "DRAIN" => return Err(format!("The '{queue}' queue is draining")),
        "INACTIVE" => return Err(format!("The '{queue}' queue is dead")),
        _ => {}
    }
    if let Some(max) = max
        && walltime > max as i64
    {
        return Err(format!(
            "Walltime greater than the '{queue}' queue max walltime of {:02}:{:02}:00\n",
            max / 60,
            max % 60
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_whole_minutes() {
        assert_eq!(get_time("30"), Ok(30));
        assert_eq!(get_time("01:30"), Ok(90));
        assert_eq!(get_time("01:30:59"), Ok(90));
        assert_eq!(get_time("1:00:00:00"), Ok(1440));
        assert_eq!(
            get_time("1:2:3:4:5"),
            Err("time may be specified as minutes, HH:MM, HH:MM:SS, or DD:HH:MM:SS".into())
        );
        assert_eq!(get_time("x"), Err("illegal value 'x' for minutes".into()));
        assert_eq!(
            get_time("0:0:60"),
            Err("seconds value '60' outside range [0, 59]".into())
        );
        assert_eq!(
            get_time("-5"),
            Err("minutes value must not be negative".into())
        );
    }

    #[test]
    fn env_pairs_split_at_colon_before_a_word_and_equals() {
        assert_eq!(
            parse_env("A=B:C=x\\=1\\:y\\=2:D=ABC").unwrap(),
            vec![
                ("A".to_string(), "B".to_string()),
                ("C".to_string(), "x=1:y=2".to_string()),
                ("D".to_string(), "ABC".to_string()),
            ]
        );
        assert_eq!(
            parse_env("P=/a:/b:Q=1").unwrap(),
            vec![
                ("P".to_string(), "/a:/b".to_string()),
                ("Q".to_string(), "1".to_string()),
            ]
        );
        assert_eq!(
            parse_env("FOO"),
            Err("Improperly formatted argument to env : ['FOO']".into())
        );
    }

    #[test]
    fn env_union_merges_into_the_first() {
        let a: Vec<String> = ["--env", "A=1", "-t", "5", "--env", "B=2", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            env_union(&a).unwrap(),
            ["--env", "A=1:B=2", "-t", "5", "x"]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn paths_become_patterns() {
        assert_eq!(to_pattern("/w/$jobid.out"), "/w/%j.out");
        assert_eq!(to_pattern("/w/100%-$COBALT_JOBID"), "/w/100%%-%j");
        assert_eq!(dirname("/a/b"), "/a");
        assert_eq!(dirname("/a"), "/");
        assert_eq!(dirname("a"), "");
    }
}
