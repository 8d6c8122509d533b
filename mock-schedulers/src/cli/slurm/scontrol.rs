//! Fake `scontrol`: `show job|node|partition`, `ping`, `version`.

use super::{CONNECT_FAILURE, SOCKET_TIMEOUT};
use crate::cli::Call;
use crate::config::Cluster;
use crate::model::{Job, JobKind, JobState};
use crate::protocol::{ControlVerb, NodeUsage, PARTITION_CONFIG_NOW, Request, Response};
use crate::units::{self, TimeLimit};

use super::format::{JobSelector, array_task_text, date, dependency_text, elapsed};

/// Real scontrol 22.05's usage text, printed by `--help` and after a bad `show hostlist`.
const HELP: &str = include_str!("scontrol-usage.txt");

/// When the job may start: its begin time, none while it is held without one (observed on
/// Slurm 22.05), else its submission.
fn eligible_time(job: &Job) -> Option<f64> {
    let held = job.run.state == JobState::Pending && job.run.priority == 0;
    match (job.begin_time(), held) {
        (Some(begin), _) => Some(begin),
        (None, true) => None,
        (None, false) => Some(job.submit_time),
    }
}

fn long_limit(l: TimeLimit) -> String {
    match l {
        TimeLimit::Unlimited => "UNLIMITED".into(),
        TimeLimit::Seconds(s) => units::format_long_duration(s),
    }
}

fn job_text(job: &Job, now: f64, alloc_host: &str) -> Vec<String> {
    let r = &job.run;
    let started = r.start_time.is_some();
    let end = match (r.end_time, r.start_time, job.time_limit.seconds()) {
        (Some(e), _, _) => date(Some(e), "Unknown"),
        (None, Some(s), Some(l)) => date(Some(s + l as f64), "Unknown"),
        _ => "Unknown".into(),
    };
    let state = if r.state == JobState::Running && r.term_sent.is_some() {
        "COMPLETING"
    } else {
        r.state.long()
    };
    // What the recorded options set (options::Shown), or the field's value without them.
    let shown = |field: &str, default: &str| -> String {
        job.req
            .attributes
            .get(field)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    let deadline = match (
        job.req.attributes.get("DeadlineAfter"),
        job.req.attributes.get("DeadlineAt"),
    ) {
        (Some(after), _) => date(
            after.parse::<f64>().ok().map(|a| job.submit_time + a),
            "N/A",
        ),
        (None, Some(at)) => date(at.parse::<f64>().ok(), "N/A"),
        (None, None) => "N/A".into(),
    };
    // Observed on Slurm 22.05: an array's jobs name the array and their task after the id,
    // the throttle only when there is one; while pending they have no eligible time and an
    // empty node list.
    let array_pending = job.run.array.is_some() && r.state == JobState::Pending;
    let array = match &job.run.array {
        Some(a) => {
            let throttle = job.req.relations.array.as_ref().map_or(0, |s| s.throttle);
            let mut text = format!(
                " ArrayJobId={} ArrayTaskId={}",
                a.job_id,
                array_task_text(job, false)
            );
            if throttle > 0 {
                text.push_str(&format!(" ArrayTaskThrottle={throttle}"));
            }
            text
        }
        None => String::new(),
    };
    let eligible = if array_pending {
        "Unknown".to_string()
    } else {
        date(eligible_time(job), "Unknown")
    };
    let mut lines = vec![
        format!("JobId={}{array} JobName={}", job.id, job.req.name),
        format!(
            "UserId={}({}) GroupId={}({}) MCS_label=N/A",
            job.req.user,
            job.req.uid,
            crate::users::group_name(job.req.gid),
            job.req.gid
        ),
        format!(
            "Priority={} Nice={} Account={} QOS={}",
            r.priority,
            job.req.nice,
            job.req
                .account
                .clone()
                .unwrap_or_else(|| job.req.user.clone()),
            job.qos
        ),
        // scontrol joins the words of a reason text with `_`, to keep the record one
        // `key=value` per word (observed: `Reason=job_requeued_in_held_state`).
        format!(
            "JobState={state} Reason={} Dependency={}",
            r.reason.replace(char::is_whitespace, "_"),
            dependency_text(job)
        ),
        format!(
            "Requeue={} Restarts={} BatchFlag={} Reboot={} ExitCode={}",
            u8::from(!job.req.no_requeue),
            r.restarts,
            u8::from(job.req.kind == JobKind::Batch),
            shown("Reboot", "0"),
            Job::exit_code_text(r.exit_status)
        ),
        format!(
            "RunTime={} TimeLimit={} TimeMin={}",
            units::format_long_duration(elapsed(job, now)),
            long_limit(job.shown_limit()),
            shown("TimeMin", "N/A")
        ),
        format!(
            "SubmitTime={} EligibleTime={eligible}",
            date(Some(job.submit_time), "Unknown"),
        ),
        // Observed: a job submitted held accrues no age (`AccrueTime=Unknown`), also once
        // released and run.
        format!(
            "AccrueTime={}",
            date((!job.req.hold).then_some(job.submit_time), "Unknown")
        ),
        format!(
            "StartTime={} EndTime={end} Deadline={deadline}",
            date(
                r.start_time.or(super::squeue::pending_begin(job)),
                "Unknown"
            )
        ),
        format!(
            "SuspendTime=None SecsPreSuspend=0 LastSchedEval={} Scheduler=Main",
            date(r.start_time.or(Some(job.submit_time)), "Unknown")
        ),
        format!("Partition={} AllocNode:Sid={alloc_host}:0", job.partition),
        format!(
            "ReqNodeList={} ExcNodeList={}",
            job.req
                .nodelist
                .as_ref()
                .map_or("(null)".into(), |n| crate::hostlist::compress(n)),
            job.req
                .exclude
                .as_ref()
                .map_or("(null)".into(), |n| crate::hostlist::compress(n))
        ),
        // Observed: empty until the job has nodes (pending, held, cancelled while pending).
        format!(
            "NodeList={}",
            if started {
                job.nodelist()
            } else {
                String::new()
            }
        ),
    ];
    if started && job.req.kind == JobKind::Batch {
        lines.push(format!(
            "BatchHost={}",
            r.alloc.first().map_or("(null)".into(), |a| a.node.clone())
        ));
    }
    let ntasks = job.req.ntasks.unwrap_or(1);
    lines.push(format!(
        "NumNodes={} NumCPUs={} NumTasks={ntasks} CPUs/Task={} ReqB:S:C:T={}",
        job.num_nodes,
        job.cpus,
        job.req.cpus_per_task.unwrap_or(1),
        shown("ReqB:S:C:T", "0:0:*:*")
    ));
    lines.push(format!(
        "TRES=cpu={},mem={}M,node={},billing={}",
        job.cpus,
        job.mem_per_node_mb.saturating_mul(u64::from(job.num_nodes)),
        job.num_nodes,
        job.cpus
    ));
    lines.push(format!(
        "Socks/Node={} NtasksPerN:B:S:C={} CoreSpec=*",
        shown("Socks/Node", "*"),
        shown("NtasksPerN:B:S:C", "0:0:*:*")
    ));
    lines.push(format!(
        "MinCPUsNode={} MinMemoryNode={} MinTmpDiskNode={}",
        shown(
            "MinCPUsNode",
            &job.req.cpus_per_task.unwrap_or(1).to_string()
        ),
        match job.req.mem_mb {
            Some(m) if m > 0 => format!("{m}M"),
            _ => "0".into(),
        },
        shown("MinTmpDiskNode", "0")
    ));
    lines.push(format!(
        "Features={} DelayBoot={}",
        job.req
            .constraint
            .clone()
            .unwrap_or_else(|| "(null)".into()),
        shown("DelayBoot", "00:00:00")
    ));
    if let Some(f) = job.req.attributes.get("ClusterFeatures") {
        lines.push(format!("ClusterFeatures={f}"));
    }
    lines.push(format!(
        "OverSubscribe={} Contiguous={} Licenses=(null) Network={}",
        shown("OverSubscribe", if job.req.exclusive { "NO" } else { "OK" }),
        shown("Contiguous", "0"),
        shown("Network", "(null)")
    ));
    lines.push(format!("Command={}", job.req.command));
    lines.push(format!("WorkDir={}", job.req.work_dir));
    // The optional fields after it, in the order and with the blanks observed on Slurm 22.05
    // (`docs/slurm-observed.md` 48).
    let attribute = |key: &str| job.req.attributes.get(key);
    if let Some(c) = attribute("Comment") {
        lines.push(format!("Comment={c} "));
    }
    if job.req.kind == JobKind::Batch {
        lines.push(format!(
            "StdErr={}",
            r.stderr_path.clone().unwrap_or_default()
        ));
        lines.push(format!(
            "StdIn={}",
            job.req.stdin.clone().unwrap_or_else(|| "/dev/null".into())
        ));
        lines.push(format!(
            "StdOut={}",
            r.stdout_path.clone().unwrap_or_default()
        ));
    }
    if let Some(w) = attribute("Switches") {
        lines.push(format!("Switches={w}"));
    }
    if let Some(b) = attribute("BurstBuffer") {
        lines.push(format!("BurstBuffer={b}"));
    }
    if let Some(f) = attribute("CpuFreq") {
        lines.push(f.clone());
    }
    lines.push(format!(
        "Power={}",
        attribute("Power").map_or("", String::as_str)
    ));
    let mut flags = String::new();
    if attribute("GresEnforceBind").is_some() {
        flags.push_str("GresEnforceBind=Yes");
    }
    match job.req.relations.kill_on_invalid_dep {
        Some(true) => flags.push_str("KillOInInvalidDependent=Yes"),
        Some(false) => flags.push_str("KillOInInvalidDependent=No"),
        None => {}
    }
    if attribute("SpreadJob").is_some() {
        flags.push_str("SpreadJob=Yes");
    }
    if !flags.is_empty() {
        lines.push(flags);
    }
    if let Some(types) = attribute("MailType") {
        lines.push(format!(
            "MailUser={} MailType={types}",
            attribute("MailUser").unwrap_or(&job.req.user)
        ));
    }
    if let Some(c) = attribute("Container") {
        lines.push(format!("Container={c}"));
    }
    lines
}

fn print_record(lines: &[String], oneliner: bool, job: bool) {
    if oneliner {
        // A job's record ends in an empty line of its own, which `-o` turns into a trailing
        // blank (observed: `... Power= ` ).
        println!("{}{}", lines.join(" "), if job { " " } else { "" });
    } else {
        let mut text = String::new();
        for (i, l) in lines.iter().enumerate() {
            if i > 0 {
                text.push_str("   ");
            }
            text.push_str(l);
            text.push('\n');
        }
        if job {
            text.push_str("   \n");
        }
        println!("{text}");
    }
}

/// What slurmd reports of the machine it runs on, read from this machine as slurmd reads its
/// own: `OS=` is `uname`'s system, release and version (22.05 `src/slurmd/slurmd/get_mach_stat.c`
/// `get_os()`), `CPULoad=` the one-minute load average, `BootTime=` the kernel's boot time.
struct Machine {
    os: String,
    load: String,
    boot: Option<f64>,
}

impl Machine {
    fn read() -> Machine {
        let os = nix::sys::utsname::uname().map_or_else(
            |_| "Linux".to_string(),
            |u| {
                format!(
                    "{} {} {}",
                    u.sysname().to_string_lossy(),
                    u.release().to_string_lossy(),
                    u.version().to_string_lossy()
                )
            },
        );
        let load = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
            .map_or_else(|| "0.00".to_string(), |l| format!("{l:.2}"));
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|b| b.trim().parse::<f64>().ok())
        });
        Machine { os, load, boot }
    }
}

/// When the simulated cluster's controller started: its pid file's time (the nodes' slurmd
/// start with it), else `now`.
fn daemon_start(dir: &std::path::Path, now: f64) -> f64 {
    std::fs::metadata(dir.join("daemon.pid"))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(now, |d| d.as_secs_f64())
}

/// One node as `scontrol show node` prints it, a line per element; observed on Slurm 22.05
/// (`docs/slurm-observed.md` 47): the lines `NodeName=` and `Partitions=` end in a blank,
/// which `-o` keeps (two blanks before the next field).
fn node_text(
    cluster: &Cluster,
    name: &str,
    usage: &[NodeUsage],
    machine: &Machine,
    started: f64,
    now: f64,
) -> Option<Vec<String>> {
    let node = cluster.node(name)?;
    let u = usage.iter().find(|u| u.name == name)?;
    let state = if u.down {
        "DOWN"
    } else if u.alloc_cpus == 0 {
        "IDLE"
    } else if u.alloc_cpus >= node.cpus {
        "ALLOCATED"
    } else {
        "MIXED"
    };
    let parts: Vec<&str> = cluster
        .partitions
        .iter()
        .filter(|p| p.nodes.iter().any(|n| n == name))
        .map(|p| p.name.as_str())
        .collect();
    let features = if node.features.is_empty() {
        "(null)".to_string()
    } else {
        node.features.join(",")
    };
    Some(vec![
        format!("NodeName={name} Arch=x86_64 CoresPerSocket=1 "),
        format!(
            "CPUAlloc={} CPUEfctv={} CPUTot={} CPULoad={}",
            u.alloc_cpus, node.cpus, node.cpus, machine.load
        ),
        format!("AvailableFeatures={features}"),
        format!("ActiveFeatures={features}"),
        "Gres=(null)".into(),
        format!("NodeAddr={name} NodeHostName={name} Version=22.05.8"),
        format!("OS={} ", machine.os),
        format!(
            "RealMemory={} AllocMem={} FreeMem={} Sockets={} Boards=1",
            node.memory_mb,
            u.alloc_mem_mb,
            node.memory_mb - u.alloc_mem_mb.min(node.memory_mb),
            node.cpus
        ),
        format!("State={state} ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A"),
        format!("Partitions={} ", parts.join(",")),
        format!(
            "BootTime={} SlurmdStartTime={}",
            date(machine.boot.or(Some(started)), "None"),
            date(Some(started), "None")
        ),
        // slurmctld's `last_busy`: when the node last had a job; the simulated cluster keeps
        // no history of it, so an idle node has been idle since the controller started.
        format!(
            "LastBusyTime={}",
            date(Some(if u.alloc_cpus > 0 { now } else { started }), "None")
        ),
        format!(
            "CfgTRES=cpu={},mem={}M,billing={}",
            node.cpus, node.memory_mb, node.cpus
        ),
        if u.alloc_cpus > 0 {
            format!("AllocTRES=cpu={},mem={}M", u.alloc_cpus, u.alloc_mem_mb)
        } else {
            "AllocTRES=".into()
        },
        "CapWatts=n/a".into(),
        "CurrentWatts=0 AveWatts=0".into(),
        "ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s".into(),
    ])
}

fn partition_text(cluster: &Cluster, name: &str) -> Option<Vec<String>> {
    let p = cluster.partition(name)?;
    let cpus: u32 = p
        .nodes
        .iter()
        .filter_map(|n| cluster.node(n))
        .map(|n| n.cpus)
        .sum();
    let mem: u64 = p
        .nodes
        .iter()
        .filter_map(|n| cluster.node(n))
        .map(|n| n.memory_mb)
        .sum();
    Some(vec![
        format!("PartitionName={}", p.name),
        "AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL".into(),
        format!(
            "AllocNodes=ALL Default={} QoS={}",
            if p.default { "YES" } else { "NO" },
            p.qos.clone().unwrap_or_else(|| "N/A".into())
        ),
        "DefaultTime=NONE DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO".into(),
        format!(
            "MaxNodes={} MaxTime={} MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED",
            p.max_nodes.map_or("UNLIMITED".into(), |m| m.to_string()),
            long_limit(p.max_time)
        ),
        format!("Nodes={}", crate::hostlist::compress(&p.nodes)),
        "PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO".into(),
        "OverTimeLimit=NONE PreemptMode=OFF".into(),
        format!(
            "State={} TotalCPUs={cpus} TotalNodes={} SelectTypeParameters=NONE",
            p.state,
            p.nodes.len()
        ),
        "JobDefaults=(null)".into(),
        "DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED".into(),
        format!(
            "TRES=cpu={cpus},mem={mem}M,node={},billing={cpus}",
            p.nodes.len()
        ),
    ])
}

/// `scontrol update jobid=N dependency=...|StartTime=now[+offset]`, the updates the simulated
/// cluster knows; silent on success, errors as `<text> for job N` (observed on Slurm 22.05).
fn update(call: &mut Call, words: &[String]) -> i32 {
    let unsupported = |word: &str| {
        eprintln!("Update of this parameter is not supported: {word}");
        eprintln!("Request aborted");
        1
    };
    let (mut id, mut dependency, mut begin_after) = (None, None, None);
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return unsupported(word);
        };
        match key.to_ascii_lowercase().as_str() {
            "jobid" => id = Some(value),
            "dependency" => dependency = Some(value),
            // The begin time, also the one a requeue set (slurm-observed.md 63). Observed: a
            // time `parse_time()` refuses is reported and left out, the other changes are
            // made; an empty one is no change.
            "starttime" => match super::parse_time::parse_time(value, 0) {
                Err(pos) => eprintln!("Invalid time specification (pos={pos}): {value}"),
                Ok(super::parse_time::Parsed::Nothing) => {}
                Ok(super::parse_time::Parsed::At(_)) => match super::parse_begin(value) {
                    Some(after) => begin_after = Some(after),
                    // A moment of the clock: the simulated one is not the caller's.
                    None => return unsupported(word),
                },
            },
            _ => return unsupported(word),
        }
    }
    let Some(id) = id else {
        eprintln!("No valid entity in update command");
        return 1;
    };
    let Ok(id) = id.parse::<u32>() else {
        eprintln!("Invalid job id specified for job {id}");
        return 1;
    };
    let mut requests = Vec::new();
    if let Some(dependency) = dependency {
        requests.push(Request::UpdateDependency {
            id,
            dependency: dependency.to_string(),
        });
    }
    if let Some(after) = begin_after {
        requests.push(Request::UpdateBeginTime { id, after });
    }
    if requests.is_empty() {
        eprintln!("No changes specified");
        return 1;
    }
    let conn = match call.conn() {
        Ok(c) => c,
        Err(e) => {
            call.unreachable(&e, &format!("{CONNECT_FAILURE} for job {id}"));
            return 1;
        }
    };
    for request in &requests {
        match conn.call(request) {
            Ok(Response::Ok) => {}
            Ok(Response::Error { message, .. }) => {
                eprintln!("{message} for job {id}");
                return 1;
            }
            _ => {
                eprintln!("{CONNECT_FAILURE} for job {id}");
                return 1;
            }
        }
    }
    0
}

/// Runs scontrol; returns the exit code.
pub fn main(call: &mut Call) -> i32 {
    let mut oneliner = false;
    let mut words = Vec::new();
    for a in call.args() {
        match a.as_str() {
            "-o" | "--oneliner" => oneliner = true,
            "-d" | "--details" | "-a" | "--all" | "-v" | "--verbose" | "-Q" | "--quiet" => {}
            "-h" | "--help" | "--usage" => {
                print!("{HELP}");
                return 0;
            }
            "-V" | "--version" => {
                println!("{}", super::VERSION_LINE);
                return 0;
            }
            s if s.starts_with('-') => {
                eprintln!("scontrol: unrecognized option '{s}'");
                eprintln!("Try \"scontrol --help\" for more information");
                return 1;
            }
            _ => words.push(a),
        }
    }
    let Some(verb) = words.first().map(|w| w.to_ascii_lowercase()) else {
        print!("{HELP}");
        return 0;
    };
    match verb.as_str() {
        "requeue" | "requeuehold" | "hold" | "uhold" | "release" => {
            let control_verb = match verb.as_str() {
                "requeue" => ControlVerb::Requeue,
                "requeuehold" => ControlVerb::RequeueHold,
                "hold" => ControlVerb::Hold,
                "uhold" => ControlVerb::UserHold,
                _ => ControlVerb::Release,
            };
            return control(call, control_verb, &verb, &words[1..]);
        }
        "version" => {
            println!("{}", super::VERSION_LINE);
            return 0;
        }
        "show" => {}
        "update" => return update(call, &words[1..]),
        "ping" => {
            let up = match call.conn() {
                Ok(c) => c.call(&Request::Ping).is_ok(),
                Err(_) => false,
            };
            return match up {
                true => {
                    println!("Slurmctld(primary) at mock-cluster is UP");
                    0
                }
                false => {
                    println!("Slurmctld(primary) at mock-cluster is DOWN");
                    1
                }
            };
        }
        other => {
            eprintln!("invalid keyword: {other}");
            return 1;
        }
    }
    let Some(entity) = words.get(1).map(|w| w.to_ascii_lowercase()) else {
        eprintln!("too few arguments for keyword:show");
        return 1;
    };
    if words.len() > 3 {
        eprintln!("too many arguments for keyword:show");
        return 1;
    }
    let target = words.get(2).cloned();
    if let Some(hosts) = HostsEntity::named(&entity) {
        return hosts.show(target.as_deref());
    }
    match entity.as_str() {
        "job" | "jobs" | "jobid" => {
            let selector = match &target {
                Some(t) => match JobSelector::parse(t) {
                    Some(s) => Some(s),
                    None => {
                        eprintln!("scontrol_print_job error: Invalid job id specified");
                        return 1;
                    }
                },
                None => None,
            };
            let ids = selector.as_ref().map(|s| vec![s.id]);
            let (jobs, now, _) =
                match super::fetch_jobs(call, ids.clone(), false, "slurm_load_jobs") {
                    Ok(x) => x,
                    Err(code) => return code,
                };
            let mut jobs = match &selector {
                Some(s) => s.pick(&jobs),
                None => jobs,
            };
            // An array's record first, then its tasks, newest first (observed).
            if let Some(s) = &selector {
                jobs.sort_by_key(|j| (j.id != s.id, std::cmp::Reverse(j.id)));
            }
            if ids.is_some() && jobs.is_empty() {
                eprintln!("slurm_load_jobs error: Invalid job id specified");
                return 1;
            }
            if jobs.is_empty() {
                println!("No jobs in the system");
                return 0;
            }
            let host = super::short_hostname();
            for job in &jobs {
                print_record(&job_text(job, now, &host), oneliner, true);
            }
            0
        }
        "node" | "nodes" | "partition" | "partitions" => {
            let conn = match call.conn() {
                Ok(c) => c,
                Err(e) => {
                    let what = if entity.starts_with("node") {
                        "slurm_load_node"
                    } else {
                        "slurm_load_partitions"
                    };
                    call.unreachable(&e, &format!("{what} error: {CONNECT_FAILURE}"));
                    return 1;
                }
            };
            let (cluster, usage, now) = match conn.call(&Request::Cluster {
                status_command: true,
            }) {
                Ok(Response::Cluster {
                    cluster,
                    usage,
                    now,
                }) => (*cluster, usage, now),
                Ok(Response::StatusTimeout) => {
                    eprintln!("slurm_load_node error: {SOCKET_TIMEOUT}");
                    return 1;
                }
                Ok(Response::Error { message, .. }) => {
                    eprintln!("slurm_load_node error: {message}");
                    return 1;
                }
                _ => return 1,
            };
            let nodes = entity.starts_with("node");
            let names: Vec<String> = match &target {
                Some(t) if nodes => crate::hostlist::expand(t).unwrap_or_else(|_| vec![t.clone()]),
                Some(t) => vec![t.clone()],
                None if nodes => cluster.nodes.iter().map(|n| n.name.clone()).collect(),
                None => cluster.partitions.iter().map(|p| p.name.clone()).collect(),
            };
            let machine = Machine::read();
            let started = daemon_start(&call.dir, now);
            for n in names {
                let text = if nodes {
                    node_text(&cluster, &n, &usage, &machine, started, now)
                } else {
                    partition_text(&cluster, &n)
                };
                match text {
                    Some(lines) => print_record(&lines, oneliner, false),
                    None => {
                        println!("{} {n} not found", if nodes { "Node" } else { "Partition" });
                        return 1;
                    }
                }
            }
            0
        }
        other => {
            eprintln!("invalid entity: {other} for keyword: show");
            1
        }
    }
}

/// `scontrol show hostnames|hostlist|hostlistsorted`, which job scripts call to turn
/// `SLURM_JOB_NODELIST` into names and back; no controller is asked.
#[derive(Debug, Clone, Copy)]
enum HostsEntity {
    Names,
    List,
    SortedList,
}

impl HostsEntity {
    /// scontrol.c compares entities case-insensitively over at least their first five
    /// letters (nine for `hostlistsorted`), so `hostname` is `hostnames`.
    fn named(entity: &str) -> Option<HostsEntity> {
        let abbreviates = |word: &str, least: usize| {
            entity.len() >= least.min(word.len()) && word.starts_with(entity)
        };
        if abbreviates("hostnames", 5) {
            Some(HostsEntity::Names)
        } else if abbreviates("hostlistsorted", 9) {
            Some(HostsEntity::SortedList)
        } else if abbreviates("hostlist", 5) {
            Some(HostsEntity::List)
        } else {
            None
        }
    }

    /// Observed on Slurm 22.05 (docs/slurm-observed.md): `hostnames` without a list takes
    /// `SLURM_NODELIST`, and neither an empty list nor a bad one changes its exit status 0;
    /// `hostlist` without a list prints the usage and fails, reads a file named by an absolute
    /// path, and fails on a bad list.
    fn show(self, target: Option<&str>) -> i32 {
        let list = match (self, target) {
            (HostsEntity::Names, None) => match std::env::var("SLURM_NODELIST") {
                Ok(list) if !list.is_empty() => list,
                _ => {
                    eprintln!("scontrol: error: host list is empty");
                    return 0;
                }
            },
            (_, None) => {
                eprintln!("invalid encode argument");
                print!("{HELP}");
                return 1;
            }
            (HostsEntity::Names, Some(list)) => list.to_string(),
            (_, Some(path)) if path.starts_with('/') => match std::fs::read_to_string(path) {
                Ok(text) => text.replace('\n', ","),
                Err(_) => {
                    eprintln!("Can not open {path}");
                    return 1;
                }
            },
            (_, Some(list)) => list.to_string(),
        };
        let failed = match self {
            HostsEntity::Names => 0,
            HostsEntity::List | HostsEntity::SortedList => 1,
        };
        // Spaces separate names like commas; empty items are dropped.
        let names = match crate::hostlist::expand_list(&list.replace(' ', ",")) {
            Ok(names) => names,
            Err(_) => {
                if let Some(range) = crate::hostlist::reversed_range(&list) {
                    eprintln!("scontrol: error: _parse_single_range: Invalid range: `{range}'");
                }
                eprintln!("Invalid hostlist: {list}");
                return failed;
            }
        };
        match self {
            HostsEntity::Names => {
                for name in names {
                    println!("{name}");
                }
            }
            HostsEntity::List => println!("{}", crate::hostlist::ranged(&names)),
            HostsEntity::SortedList => println!("{}", crate::hostlist::ranged_sorted(&names)),
        }
        0
    }
}

/// `scontrol requeue|requeuehold|hold|uhold|release <ids>`: each id in turn; a refusal is
/// printed as `<reason> for job <id>` and makes the exit status 1 (observed on Slurm 22.05).
fn control(call: &mut Call, verb: ControlVerb, keyword: &str, ids: &[String]) -> i32 {
    if ids.is_empty() {
        eprintln!("too few arguments for keyword:{keyword}");
        return 1;
    }
    let mut code = 0;
    for text in ids
        .iter()
        .flat_map(|w| w.split(','))
        .filter(|w| !w.is_empty())
    {
        let Ok(id) = text.parse::<u32>() else {
            eprintln!("Invalid job id specified for job {text}");
            code = 1;
            continue;
        };
        let conn = match call.conn() {
            Ok(c) => c,
            Err(e) => {
                call.unreachable(&e, &format!("{CONNECT_FAILURE} for job {id}"));
                return 1;
            }
        };
        match conn.call(&Request::Control { verb, id }) {
            Ok(Response::Ok) => {}
            Ok(Response::Error { message, .. }) => {
                eprintln!("{message} for job {id}");
                // Observed on Slurm 22.05: this answer to `release` (which released the job
                // all the same), and the refusal to hold or release another user's job, are
                // also reported under the name of the call scontrol made.
                let suspend_call = matches!(
                    verb,
                    ControlVerb::Hold | ControlVerb::UserHold | ControlVerb::Release
                );
                if verb == ControlVerb::Release && message == PARTITION_CONFIG_NOW
                    || suspend_call && message == crate::flavor::slurm::INVALID_USER_ID
                {
                    eprintln!("slurm_suspend error: {message}");
                }
                code = 1;
            }
            _ => {
                eprintln!("{CONNECT_FAILURE} for job {id}");
                code = 1;
            }
        }
    }
    code
}
