//! The option table that `sbatch`, `srun` and `salloc` share, as Slurm 22.05 builds it
//! (`common_options[]` in `src/common/slurm_opt.c`, tag `slurm-22-05-8-1`): every long option,
//! its short letter, whether it takes an argument, and which of the three commands accept it.
//! Each row also says what the simulated cluster does with the option:
//!
//! - [`Handling::Modelled`]: the fake interprets it (resources, output files, priority, ...).
//! - [`Handling::Recorded`]: accepted and shown in `scontrol show job` as the reference
//!   cluster shows it, without further effect (the reference cluster has no use for it
//!   either: one node, no topology, no power management).
//! - [`Handling::Accepted`]: accepted without effect and without a trace, as on the reference
//!   cluster (`scontrol show job` prints nothing for it there either).
//! - [`Handling::Refused`]: refused as the reference cluster refuses it, having no such feature
//!   (no GRES, no licenses, no reservations, one cluster): texts in [`check`].
//! - [`Handling::Unsupported`]: the fake cannot do what real Slurm does with it and says so
//!   rather than pretend (`--no-allocate`, `--debugger-test`, salloc's `--no-shell`).
//!
//! The texts and exit codes of [`check`] were observed on the reference cluster (`ci/slurm`,
//! Slurm 22.05.8; `docs/slurm-observed.md`) and come from `slurm_opt.c`'s `arg_set_*`
//! functions where the option is validated by the command itself.

use std::collections::BTreeMap;

use crate::cli::getopt::{HasArg, HasArg::*, Opt};

/// What the fake does with an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Interpreted.
    Modelled,
    /// Accepted and shown in `scontrol show job`.
    Recorded,
    /// Accepted without effect.
    Accepted,
    /// Refused as a cluster without the feature refuses it.
    Refused,
    /// Refused with a note that the fake does not do it.
    Unsupported,
}

/// The commands that take an option (bits).
pub const SBATCH: u8 = 1;
/// srun.
pub const SRUN: u8 = 2;
/// salloc.
pub const SALLOC: u8 = 4;
const ALL: u8 = SBATCH | SRUN | SALLOC;

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct SlurmOpt {
    /// Long name.
    pub long: &'static str,
    /// Short letter.
    pub short: Option<char>,
    /// Argument kind.
    pub arg: HasArg,
    /// Commands that accept it.
    pub commands: u8,
    /// What the fake does with it.
    pub handling: Handling,
}

const fn o(
    long: &'static str,
    short: Option<char>,
    arg: HasArg,
    commands: u8,
    handling: Handling,
) -> SlurmOpt {
    SlurmOpt {
        long,
        short,
        arg,
        commands,
        handling,
    }
}

use Handling::{Accepted as A, Modelled as M, Recorded as Rec, Refused as Ref, Unsupported as U};

/// Slurm 22.05's `common_options[]`, in its order (rows without a name, which exist only as
/// environment variables, left out).
pub const OPTIONS: &[SlurmOpt] = &[
    o("accel-bind", None, Required, SRUN, A),
    o("account", Some('A'), Required, ALL, M),
    o("acctg-freq", None, Required, ALL, A),
    o("array", Some('a'), Required, SBATCH, M),
    o("batch", None, Required, SBATCH, Ref),
    o("bcast", None, Optional, SRUN, A),
    o("bcast-exclude", None, Required, SRUN, A),
    o("begin", Some('b'), Required, ALL, M),
    o("bell", None, No, SALLOC, A),
    o("bb", None, Required, ALL, Rec),
    o("bbf", None, Required, ALL, A),
    o("cluster-constraint", None, Required, ALL, Rec),
    o("chdir", Some('D'), Required, ALL, M),
    o("cluster", None, Required, ALL, M),
    o("clusters", Some('M'), Required, ALL, M),
    o("comment", None, Required, ALL, Rec),
    o("compress", None, Optional, SRUN, A),
    o("container", None, Required, ALL, Rec),
    o("context", None, Required, ALL, A),
    o("contiguous", None, No, ALL, Rec),
    o("constraint", Some('C'), Required, ALL, M),
    o("core-spec", Some('S'), Required, ALL, A),
    o("cores-per-socket", None, Required, ALL, Rec),
    o("cpu-bind", None, Required, SRUN, A),
    o("cpu_bind", None, Required, SRUN, A),
    o("cpu-freq", None, Required, ALL, Rec),
    o("cpus-per-gpu", None, Required, ALL, Ref),
    o("cpus-per-task", Some('c'), Required, ALL, M),
    o("deadline", None, Required, ALL, Rec),
    o("debugger-test", None, No, SRUN, U),
    o("delay-boot", None, Required, ALL, Rec),
    o("dependency", Some('d'), Required, ALL, M),
    o("disable-status", Some('X'), No, SRUN, A),
    o("distribution", Some('m'), Required, ALL, A),
    o("epilog", None, Required, SRUN, A),
    o("error", Some('e'), Required, SBATCH | SRUN, M),
    o("exact", None, No, SRUN, A),
    o("exclude", Some('x'), Required, ALL, M),
    o("exclusive", None, Optional, ALL, M),
    o("export", None, Required, SBATCH | SRUN, M),
    o("export-file", None, Required, SBATCH, A),
    o("extra-node-info", Some('B'), Required, ALL, A),
    o("get-user-env", None, Optional, SBATCH | SALLOC, M),
    o("gid", None, Required, ALL, A),
    o("gpu-bind", None, Required, ALL, A),
    o("gpu-freq", None, Required, ALL, A),
    o("gpus", Some('G'), Required, ALL, Ref),
    o("gpus-per-node", None, Required, ALL, Ref),
    o("gpus-per-socket", None, Required, ALL, Ref),
    o("gpus-per-task", None, Required, ALL, Ref),
    o("gres", None, Required, ALL, Ref),
    o("gres-flags", None, Required, ALL, Rec),
    o("help", Some('h'), No, ALL, M),
    o("het-group", None, Required, SRUN, A),
    o("hint", None, Required, ALL, Rec),
    o("hold", Some('H'), No, ALL, M),
    o("ignore-pbs", None, No, SBATCH, A),
    o("immediate", Some('I'), Optional, SRUN | SALLOC, M),
    o("input", Some('i'), Required, SBATCH | SRUN, M),
    o("interactive", None, No, SRUN, A),
    o("jobid", None, Required, SRUN, A),
    o("job-name", Some('J'), Required, ALL, M),
    o("kill-command", Some('K'), Optional, SALLOC, A),
    o("kill-on-bad-exit", Some('K'), Optional, SRUN, A),
    o("kill-on-invalid-dep", None, Required, SBATCH, M),
    o("label", Some('l'), No, SRUN, M),
    o("licenses", Some('L'), Required, ALL, Ref),
    o("mail-type", None, Required, ALL, Rec),
    o("mail-user", None, Required, ALL, Rec),
    o("threads", Some('T'), Required, SRUN, A),
    o("mcs-label", None, Required, ALL, A),
    o("mem", None, Required, ALL, M),
    o("mem-bind", None, Required, ALL, A),
    o("mem-per-cpu", None, Required, ALL, M),
    o("mem-per-gpu", None, Required, ALL, Ref),
    o("mincpus", None, Required, ALL, Rec),
    o("mpi", None, Required, SRUN, A),
    o("msg-timeout", None, Required, SRUN, A),
    o("multi-prog", None, No, SRUN, M),
    o("network", None, Required, ALL, Rec),
    o("nice", None, Optional, ALL, M),
    o("no-allocate", Some('Z'), No, SRUN, U),
    o("no-bell", None, No, SALLOC, A),
    o("no-kill", Some('k'), Optional, ALL, A),
    o("no-shell", None, No, SALLOC, U),
    o("no-requeue", None, No, SBATCH, Rec),
    o("nodefile", Some('F'), Required, ALL, M),
    o("nodelist", Some('w'), Required, ALL, M),
    o("nodes", Some('N'), Required, ALL, M),
    o("ntasks", Some('n'), Required, ALL, M),
    o("ntasks-per-core", None, Required, ALL, Rec),
    o("ntasks-per-gpu", None, Required, ALL, Ref),
    o("ntasks-per-node", None, Required, ALL, Rec),
    o("ntasks-per-socket", None, Required, ALL, Rec),
    o("ntasks-per-tres", None, Required, ALL, Ref),
    o("open-mode", None, Required, SBATCH | SRUN, M),
    o("output", Some('o'), Required, SBATCH | SRUN, M),
    o("overcommit", Some('O'), No, ALL, A),
    o("overlap", None, Optional, SRUN, A),
    o("oversubscribe", Some('s'), No, ALL, Rec),
    o("pack-group", None, Required, SRUN, A),
    o("parsable", None, No, SBATCH, M),
    o("partition", Some('p'), Required, ALL, M),
    o("power", None, Required, ALL, Rec),
    o("prefer", None, Required, ALL, Ref),
    o("preserve-env", Some('E'), No, SRUN, A),
    o("priority", None, Required, ALL, M),
    o("profile", None, Required, ALL, A),
    o("prolog", None, Required, SRUN, A),
    o("propagate", None, Optional, SBATCH | SRUN, A),
    o("pty", None, No, SRUN, A),
    o("qos", Some('q'), Required, ALL, M),
    o("quiet", Some('Q'), No, ALL, M),
    o("quit-on-interrupt", None, No, SRUN, A),
    o("reboot", None, No, ALL, Rec),
    o("relative", Some('r'), Required, SRUN, A),
    o("requeue", None, No, SBATCH, A),
    o("reservation", None, Required, ALL, Ref),
    o("resv-ports", None, Optional, SRUN, A),
    o("send-libs", None, Optional, SRUN, A),
    o("signal", None, Required, ALL, M),
    o("slurmd-debug", None, Required, SRUN, A),
    o("sockets-per-node", None, Required, ALL, Rec),
    o("spread-job", None, No, ALL, Rec),
    o("switches", None, Required, ALL, Rec),
    o("task-epilog", None, Required, SRUN, A),
    o("task-prolog", None, Required, SRUN, A),
    o("tasks-per-node", None, Required, ALL, Rec),
    o("test-only", None, No, SBATCH | SRUN, M),
    o("thread-spec", None, Required, ALL, A),
    o("threads-per-core", None, Required, ALL, Rec),
    o("time", Some('t'), Required, ALL, M),
    o("time-min", None, Required, ALL, Rec),
    o("tmp", None, Required, ALL, Rec),
    o("uid", None, Required, ALL, A),
    o("unbuffered", Some('u'), No, SRUN, A),
    o("use-min-nodes", None, No, ALL, A),
    o("verbose", Some('v'), No, ALL, A),
    o("version", Some('V'), No, ALL, M),
    o("usage", None, No, ALL, M),
    o("wait", Some('W'), No, SBATCH, M),
    o("wait-all-nodes", None, Required, SBATCH | SALLOC, A),
    o("wait", Some('W'), Required, SRUN, A),
    o("wckey", None, Required, ALL, A),
    o("whole", None, No, SRUN, A),
    o("wrap", None, Required, SBATCH, M),
    o("x11", None, Optional, SRUN | SALLOC, A),
];

/// The getopt table of one command (`SBATCH`, `SRUN` or `SALLOC`).
pub fn spec(command: u8) -> Vec<Opt> {
    OPTIONS
        .iter()
        .filter(|r| r.commands & command != 0)
        .map(|r| Opt {
            long: r.long,
            short: r.short,
            arg: r.arg,
        })
        .collect()
}

/// The row of an option for a command.
pub fn row(command: u8, long: &str) -> Option<&'static SlurmOpt> {
    OPTIONS
        .iter()
        .find(|r| r.commands & command != 0 && r.long == long)
}

/// How a command refuses: the lines it prints to stderr and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Lines on stderr, in order.
    pub lines: Vec<String>,
    /// Lines on stdout (`--hint=help`).
    pub stdout: Vec<String>,
    /// Exit code.
    pub code: i32,
    /// Said only once every option has been read (the controller's answer, and the GRES
    /// check that precedes the request): an error of the command line itself comes first.
    pub deferred: bool,
}

impl Refusal {
    fn error(prog: &str, text: &str, code: i32) -> Refusal {
        Refusal {
            lines: vec![format!("{prog}: error: {text}")],
            stdout: Vec::new(),
            code,
            deferred: false,
        }
    }

    /// A refusal by the controller, in the words of the command that asked
    /// (`Batch job submission failed:`, `Unable to allocate resources:`, `Job submit/allocate
    /// failed:`), exit 1.
    pub fn controller(prog: &str, text: &str) -> Refusal {
        let what = match prog {
            "sbatch" => "Batch job submission failed",
            "srun" => "Unable to allocate resources",
            _ => "Job submit/allocate failed",
        };
        Refusal {
            deferred: true,
            ..Refusal::error(prog, &format!("{what}: {text}"), 1)
        }
    }
}

/// `Invalid numeric value "X" for --opt.`, exit 1 (`parse_int()` in `proc_args.c`).
fn numeric(prog: &str, long: &str, v: &str, zero_ok: bool) -> Result<(), Refusal> {
    match v.trim().parse::<i64>() {
        Ok(n) if n > 0 || (zero_ok && n == 0) => Ok(()),
        _ => Err(Refusal::error(
            prog,
            &format!("Invalid numeric value \"{v}\" for --{long}."),
            1,
        )),
    }
}

/// `Invalid --opt specification`, exit 255 (`arg_set_*` returning `SLURM_ERROR`).
fn invalid(prog: &str, long: &str) -> Refusal {
    Refusal::error(prog, &format!("Invalid --{long} specification"), 255)
}

/// Whether every comma-separated word of `v` is one of `words` (case-insensitively).
fn words_in(v: &str, words: &[&str]) -> bool {
    v.split(',')
        .all(|w| words.iter().any(|k| k.eq_ignore_ascii_case(w)))
}

/// `--hint=help`'s text (`slurm_opt.c`, `arg_set_hint`).
const HINT_HELP: &[&str] = &[
    "Application hint options:",
    "    --hint=             Bind tasks according to application hints",
    "        compute_bound   use all cores in each socket",
    "        memory_bound    use only one core in each socket",
    "        [no]multithread [don't] use extra threads with in-core multi-threading",
    "        help            show this help message",
];

/// Checks one option's value as the command itself does before it asks the controller, and
/// refuses what the reference cluster refuses for want of the feature. `cluster` is the
/// cluster's name (for `--clusters`).
pub fn check(prog: &str, long: &str, value: Option<&str>, cluster: &str) -> Result<(), Refusal> {
    let v = value.unwrap_or("");
    match long {
        // Observed: GRES are checked by the command against the (empty) configuration and
        // refused without asking the controller; `--gres=none` is no request.
        "gres" if v.eq_ignore_ascii_case("none") => Ok(()),
        "gres" | "gpus" | "gpus-per-node" | "gpus-per-socket" | "gpus-per-task"
        | "cpus-per-gpu" | "mem-per-gpu" => Err(Refusal {
            deferred: true,
            ..Refusal::error(prog, "Invalid generic resource (gres) specification", 1)
        }),
        "ntasks-per-gpu" | "ntasks-per-tres" => Err(Refusal {
            lines: vec![
                format!(
                    "{prog}: error: gres_job_state_validate: --ntasks-per-tres needs either a GRES GPU specification or a node/ntask specification"
                ),
                format!("{prog}: error: Invalid generic resource (gres) specification"),
            ],
            stdout: Vec::new(),
            code: 1,
            deferred: true,
        }),
        // Observed: the controller refuses what no configured license, reservation or preferred
        // feature matches; an empty license list is no request.
        "licenses" if v.is_empty() => Ok(()),
        "licenses" => Err(Refusal::controller(prog, "Invalid license specification")),
        "reservation" => Err(Refusal::controller(
            prog,
            "Requested reservation is invalid",
        )),
        "prefer" => Err(Refusal::controller(
            prog,
            "Invalid preferred feature specification",
        )),
        // Observed: a cluster other than this one is looked up in the accounting database.
        "cluster" | "clusters" => {
            for name in v.split(',') {
                if name != cluster {
                    return Err(Refusal {
                        lines: vec![
                            format!("{prog}: error: No cluster '{name}' known by database."),
                            format!(
                                "{prog}: error: '{name}' can't be reached now, or it is an invalid entry for --cluster.  Use 'sacctmgr list clusters' to see available clusters."
                            ),
                        ],
                        stdout: Vec::new(),
                        code: 1,
                        deferred: false,
                    });
                }
            }
            Ok(())
        }
        // slurm_opt.c arg_set_hint; observed.
        "hint" if v == "help" => Err(Refusal {
            lines: Vec::new(),
            stdout: HINT_HELP.iter().map(|l| l.to_string()).collect(),
            code: 1,
            deferred: false,
        }),
        "hint" => {
            let known = [
                "compute_bound",
                "memory_bound",
                "multithread",
                "nomultithread",
            ];
            match v.split(',').find(|w| !known.contains(w)) {
                Some(_) => Err(Refusal::error(
                    prog,
                    &format!("unrecognized --hint argument \"{v}\", see --hint=help"),
                    1,
                )),
                None => Ok(()),
            }
        }
        // slurm_opt.c: parse_int(..., positive) and its relatives; observed.
        "mincpus" | "threads-per-core" | "ntasks-per-core" | "cores-per-socket"
        | "sockets-per-node" | "ntasks-per-socket" | "ntasks-per-node" | "tasks-per-node" => {
            numeric(prog, long, v, false)
        }
        "switches" => numeric(prog, long, v.split('@').next().unwrap_or(""), true).and_then(|()| {
            match v.split_once('@') {
                Some((_, t)) if crate::units::parse_time_limit(t).is_err() => {
                    Err(invalid(prog, "switches"))
                }
                _ => Ok(()),
            }
        }),
        "time-min" | "delay-boot" => match crate::units::parse_time_limit(v) {
            Ok(_) => Ok(()),
            Err(_) => Err(invalid(prog, long)),
        },
        // slurm_opt.c arg_set_deadline: parse_time(), which names where it stopped reading;
        // the controller refuses a deadline already past (observed on Slurm 22.05).
        "deadline" => {
            let mut lines = Vec::new();
            match super::parse_time::parse_time(v, chrono::Local::now().timestamp()) {
                Ok(super::parse_time::Parsed::At(t)) => {
                    return if t < chrono::Local::now().timestamp() {
                        Err(Refusal::controller(
                            prog,
                            "Requested time limit is invalid (missing or exceeds some limit)",
                        ))
                    } else {
                        Ok(())
                    };
                }
                Ok(super::parse_time::Parsed::Nothing) => {}
                Err(pos) => lines.push(format!("Invalid time specification (pos={pos}): {v}")),
            }
            lines.push(format!("{prog}: error: Invalid --deadline specification"));
            Err(Refusal {
                lines,
                stdout: Vec::new(),
                code: 255,
                deferred: false,
            })
        }
        "distribution" => {
            if valid_distribution(v) {
                Ok(())
            } else {
                Err(invalid(prog, long))
            }
        }
        "kill-on-invalid-dep" if !words_in(v, &["yes", "no"]) => Err(invalid(prog, long)),
        "exclusive" if !v.is_empty() && !words_in(v, &["user", "mcs"]) => Err(invalid(prog, long)),
        "open-mode" if !(v.starts_with(['a', 'A']) || v.starts_with(['t', 'T'])) => {
            Err(invalid(prog, long))
        }
        "mail-type"
            if !words_in(
                v,
                &[
                    "NONE",
                    "BEGIN",
                    "END",
                    "FAIL",
                    "REQUEUE",
                    "ALL",
                    "INVALID_DEPEND",
                    "STAGE_OUT",
                    "TIME_LIMIT",
                    "TIME_LIMIT_90",
                    "TIME_LIMIT_80",
                    "TIME_LIMIT_50",
                    "ARRAY_TASKS",
                ],
            ) =>
        {
            Err(invalid(prog, long))
        }
        "gres-flags" if !words_in(v, &["enforce-binding", "disable-binding"]) => {
            Err(invalid(prog, long))
        }
        "wait-all-nodes" if !matches!(v, "0" | "1") => Err(invalid(prog, long)),
        "acctg-freq" if !valid_acctg_freq(v) => Err(Refusal::error(
            prog,
            &format!("Invalid --acctg-freq specification: {v}"),
            255,
        )),
        "profile" if !words_in(v, &["none", "all", "energy", "task", "lustre", "network"]) => Err(
            Refusal::error(prog, &format!("invalid --profile={v} option"), 255),
        ),
        "propagate" => {
            const RLIMITS: &[&str] = &[
                "ALL", "NONE", "AS", "CORE", "CPU", "DATA", "FSIZE", "MEMLOCK", "NOFILE", "NPROC",
                "RSS", "STACK",
            ];
            match value.and_then(|v| {
                v.split(',')
                    .find(|w| !RLIMITS.iter().any(|r| r.eq_ignore_ascii_case(w)))
            }) {
                Some(bad) => Err(Refusal {
                    lines: vec![
                        format!("{prog}: error: Bad rlimit name: {bad}"),
                        format!("{prog}: error: --propagate={v} is not valid."),
                    ],
                    stdout: Vec::new(),
                    code: 1,
                    deferred: false,
                }),
                None => Ok(()),
            }
        }
        "uid" if !known_id(v, true) => Err(invalid(prog, long)),
        "gid" if !known_id(v, false) => Err(invalid(prog, long)),
        // Observed: without a display there is nothing to forward.
        "x11" if std::env::var_os("DISPLAY").is_none() => Err(Refusal::error(
            prog,
            "No DISPLAY variable set, cannot setup x11 forwarding.",
            255,
        )),
        // Observed on salloc: containers need the interactive step.
        "container" if prog == "salloc" => Err(Refusal::error(
            prog,
            "--container requires LaunchParameters=use_interactive_step",
            1,
        )),
        _ => match row(command_bit(prog), long).map(|r| r.handling) {
            Some(Handling::Unsupported) => Err(Refusal::error(
                prog,
                &format!("--{long} is not supported by mock-cluster"),
                1,
            )),
            _ => Ok(()),
        },
    }
}

/// What the command says, without failing, about an option it ignores on this configuration
/// (observed: `AllowSpecResourcesUsage` is off).
pub fn notice(prog: &str, long: &str) -> Option<String> {
    match long {
        "core-spec" => Some(format!(
            "{prog}: error: Ignoring -S since it's not allowed by configuration (AllowSpecResourcesUsage = No)"
        )),
        "thread-spec" => Some(format!(
            "{prog}: error: Ignoring --thread-spec since it's not allowed by configuration (AllowSpecResourcesUsage = No)"
        )),
        _ => None,
    }
}

/// The bit of a command by its name.
pub fn command_bit(prog: &str) -> u8 {
    match prog {
        "sbatch" => SBATCH,
        "srun" => SRUN,
        _ => SALLOC,
    }
}

/// `--deadline` (any form of Slurm's `parse_time()`), in seconds after now.
pub fn deadline_offset(v: &str) -> Option<f64> {
    let now = chrono::Local::now().timestamp();
    match super::parse_time::parse_time(v, now) {
        Ok(super::parse_time::Parsed::At(t)) => Some(t.saturating_sub(now) as f64),
        _ => None,
    }
}

/// `--distribution`: `block|cyclic|plane=N|arbitrary|*` with optional `:block|cyclic|fcyclic|*`
/// parts and a `,Pack|NoPack` suffix (`verify_dist_type()` in `proc_args.c`).
fn valid_distribution(v: &str) -> bool {
    let (layout, pack) = match v.split_once(',') {
        Some((l, p)) => (l, Some(p)),
        None => (v, None),
    };
    if pack.is_some_and(|p| !p.eq_ignore_ascii_case("pack") && !p.eq_ignore_ascii_case("nopack")) {
        return false;
    }
    if layout.is_empty() {
        return pack.is_some();
    }
    let mut parts = layout.split(':');
    let first = parts.next().unwrap_or("");
    let first_ok = matches!(first, "block" | "cyclic" | "arbitrary" | "*")
        || first
            .strip_prefix("plane=")
            .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n > 0));
    let rest: Vec<&str> = parts.collect();
    first_ok
        && rest.len() <= 2
        && rest
            .iter()
            .all(|p| matches!(*p, "block" | "cyclic" | "fcyclic" | "*"))
}

/// `--acctg-freq`: seconds, or `type=seconds` pairs.
fn valid_acctg_freq(v: &str) -> bool {
    v.split(',').all(|item| {
        let secs = match item.split_once('=') {
            Some((kind, secs)) => {
                if !matches!(kind, "task" | "energy" | "network" | "filesystem") {
                    return false;
                }
                secs
            }
            None => item,
        };
        secs.parse::<u32>().is_ok()
    })
}

/// A user (or group) that exists, by name or number.
fn known_id(v: &str, user: bool) -> bool {
    if let Ok(n) = v.parse::<u32>() {
        return if user {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(n))
                .ok()
                .flatten()
                .is_some()
        } else {
            nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(n))
                .ok()
                .flatten()
                .is_some()
        };
    }
    if user {
        nix::unistd::User::from_name(v).ok().flatten().is_some()
    } else {
        nix::unistd::Group::from_name(v).ok().flatten().is_some()
    }
}

/// The `--batch` features must all be among the `--constraint` features (observed).
pub fn batch_within_constraint(batch: &str, constraint: Option<&str>) -> bool {
    let have: Vec<&str> = constraint
        .unwrap_or("")
        .split(['&', ',', '|'])
        .map(str::trim)
        .collect();
    batch
        .split(['&', ',', '|'])
        .all(|f| have.contains(&f.trim()))
}

/// `--priority=TOP` (`slurm_opt.c`: `NO_VAL - 1`), as `scontrol show job` then shows it.
pub const PRIORITY_TOP: u32 = 4_294_967_293;

/// `strtol`'s reading of a number: the leading sign and digits, 0 when there are none.
pub fn leading_int(v: &str) -> i32 {
    let t = v.trim_start();
    let (sign, digits) = match t.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    let digits: String = digits.chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<i64>().map_or(0, |n| {
        (sign * n).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    })
}

/// What the recorded options set, kept for `scontrol show job` (observed on the reference
/// cluster: each option changes the field named beside it, and nothing else).
#[derive(Debug, Default, Clone)]
pub struct Shown {
    /// `--time-min`: `TimeMin`, seconds.
    time_min: Option<u64>,
    /// `--deadline=now+N`: `Deadline`, seconds after submission.
    deadline_after: Option<f64>,
    /// `--deadline` as a date or time of day: `Deadline`, seconds since the epoch.
    deadline_at: Option<i64>,
    /// `--delay-boot`: `DelayBoot`, seconds.
    delay_boot: Option<u64>,
    /// `--mincpus`: `MinCPUsNode`.
    mincpus: Option<u32>,
    /// `--tmp`: `MinTmpDiskNode`, MB.
    tmp_mb: Option<u64>,
    /// `--network`: `Network`.
    network: Option<String>,
    /// `--contiguous`: `Contiguous=1`.
    contiguous: bool,
    /// `--no-requeue`: `Requeue=0`.
    no_requeue: bool,
    /// `--oversubscribe` (`YES`), `--exclusive=user|mcs` (`USER`, `MCS`): `OverSubscribe`.
    oversubscribe: Option<String>,
    /// `--sockets-per-node`: `Socks/Node`.
    sockets: Option<u32>,
    /// `--cores-per-socket`, `--hint=memory_bound`: the C of `ReqB:S:C:T`.
    cores: Option<u32>,
    /// `--threads-per-core`, `--hint=compute_bound|memory_bound|nomultithread`: its T.
    threads: Option<u32>,
    /// `--ntasks-per-node`: the N of `NtasksPerN:B:S:C`.
    per_node: Option<u32>,
    /// `--ntasks-per-socket`: its S.
    per_socket: Option<u32>,
    /// `--ntasks-per-core`: its C.
    per_core: Option<u32>,
    /// `-t` was given: then `--deadline` sets no `TimeMin` (observed).
    time_given: bool,
    /// `--comment`: `Comment=`.
    comment: Option<String>,
    /// `--switches=N[@time]`: `Switches=N@time`.
    switches: Option<String>,
    /// `--bb`: `BurstBuffer=`.
    burst_buffer: Option<String>,
    /// `--cpu-freq`: `CPU_min_freq= CPU_max_freq= Governor=`.
    cpu_freq: Option<String>,
    /// `--power`: `Power=`.
    power: Option<String>,
    /// `--gres-flags=enforce-binding`: `GresEnforceBind=Yes`.
    gres_enforce_bind: bool,
    /// `--spread-job`: `SpreadJob=Yes`.
    spread_job: bool,
    /// `--mail-type`: `MailType=`.
    mail_type: Option<String>,
    /// `--mail-user`: `MailUser=` (with a mail type only).
    mail_user: Option<String>,
    /// `--container`: `Container=`.
    container: Option<String>,
    /// `--cluster-constraint`: `ClusterFeatures=`.
    cluster_features: Option<String>,
    /// `--reboot`: `Reboot=1`, and the node is the job's alone (`OverSubscribe=NO`).
    reboot: bool,
}

impl Shown {
    /// Takes a recorded option (already checked by [`check`]); false for any other.
    pub fn apply(&mut self, long: &str, value: Option<&str>) -> bool {
        let v = value.unwrap_or("");
        let n = || v.trim().parse::<u32>().ok();
        let limit = || match crate::units::parse_time_limit(v) {
            Ok(crate::units::TimeLimit::Seconds(s)) => Some(s),
            _ => None,
        };
        match long {
            "time-min" => self.time_min = limit(),
            // A `now+N` deadline follows the (simulated) submission; a date or a time of day
            // is a moment of the clock.
            "deadline" if v.trim_start().to_ascii_lowercase().starts_with("now") => {
                self.deadline_after = deadline_offset(v);
                self.deadline_at = None;
            }
            "deadline" => {
                self.deadline_at =
                    deadline_offset(v).map(|after| chrono::Local::now().timestamp() + after as i64);
                self.deadline_after = None;
            }
            "delay-boot" => self.delay_boot = limit(),
            "mincpus" => self.mincpus = n(),
            "tmp" => self.tmp_mb = crate::units::parse_memory_mb(v).ok(),
            "network" => self.network = Some(v.to_string()),
            "contiguous" => self.contiguous = true,
            "no-requeue" => self.no_requeue = true,
            "requeue" => self.no_requeue = false,
            "oversubscribe" => self.oversubscribe = Some("YES".into()),
            "sockets-per-node" => self.sockets = n(),
            "cores-per-socket" => self.cores = n(),
            "threads-per-core" => self.threads = n(),
            "ntasks-per-node" | "tasks-per-node" => self.per_node = n(),
            "ntasks-per-socket" => self.per_socket = n(),
            "ntasks-per-core" => self.per_core = n(),
            // proc_args.c verify_hint.
            "hint" => {
                for word in v.split(',') {
                    match word.to_ascii_lowercase().as_str() {
                        "compute_bound" | "nomultithread" => self.threads = Some(1),
                        "memory_bound" => {
                            self.cores = Some(1);
                            self.threads = Some(1);
                        }
                        "multithread" => self.threads = None,
                        _ => {}
                    }
                }
            }
            "exclusive" => {
                self.oversubscribe = value.map(str::to_ascii_uppercase);
                return false;
            }
            "time" => {
                self.time_given = true;
                return false;
            }
            "comment" => self.comment = Some(v.to_string()),
            "switches" => self.switches = Some(v.to_string()),
            "bb" => self.burst_buffer = Some(v.to_string()),
            "cpu-freq" => self.cpu_freq = Some(v.to_string()),
            "power" => self.power = Some(v.to_string()),
            "gres-flags" => {
                self.gres_enforce_bind = v
                    .split(',')
                    .any(|w| w.eq_ignore_ascii_case("enforce-binding"))
            }
            "spread-job" => self.spread_job = true,
            "mail-type" => self.mail_type = Some(v.to_string()),
            "mail-user" => self.mail_user = Some(v.to_string()),
            "container" => self.container = Some(v.to_string()),
            "cluster-constraint" => self.cluster_features = Some(v.to_string()),
            "reboot" => self.reboot = true,
            _ => return false,
        }
        true
    }

    /// The `scontrol show job` fields these options set, by field name (`DeadlineAfter` is
    /// seconds after submission; `scontrol` adds the submit time).
    pub fn attributes(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            out.insert(k.to_string(), v);
        };
        let or_star = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        // Observed: a deadline without --time-min and without -t gives TimeMin=00:01:00.
        let time_min = self
            .time_min
            .or(
                (self.deadline_after.is_some() || self.deadline_at.is_some())
                    .then_some(60)
                    .filter(|_| !self.time_given),
            )
            .filter(|s| *s > 0);
        if let Some(s) = time_min {
            put("TimeMin", crate::units::format_long_duration(s));
        }
        if let Some(after) = self.deadline_after {
            put("DeadlineAfter", after.to_string());
        }
        if let Some(at) = self.deadline_at {
            put("DeadlineAt", at.to_string());
        }
        if let Some(s) = self.delay_boot {
            put("DelayBoot", crate::units::format_long_duration(s));
        }
        if let Some(n) = self.mincpus {
            put("MinCPUsNode", n.to_string());
        }
        if let Some(mb) = self.tmp_mb {
            put(
                "MinTmpDiskNode",
                if mb > 0 { format!("{mb}M") } else { "0".into() },
            );
        }
        if let Some(n) = &self.network {
            put("Network", n.clone());
        }
        if self.contiguous {
            put("Contiguous", "1".into());
        }
        if self.no_requeue {
            put("Requeue", "0".into());
        }
        if let Some(o) = &self.oversubscribe {
            put("OverSubscribe", o.clone());
        }
        if let Some(s) = self.sockets {
            put("Socks/Node", s.to_string());
        }
        if self.cores.is_some() || self.threads.is_some() {
            put(
                "ReqB:S:C:T",
                format!("0:0:{}:{}", or_star(self.cores), or_star(self.threads)),
            );
        }
        if let Some(c) = &self.comment {
            put("Comment", c.clone());
        }
        if let Some(text) = self.switches.as_deref().and_then(switches_text) {
            put("Switches", text);
        }
        if let Some(b) = &self.burst_buffer {
            put("BurstBuffer", b.clone());
        }
        if let Some(text) = self.cpu_freq.as_deref().and_then(cpu_freq_text) {
            put("CpuFreq", text);
        }
        if let Some(p) = &self.power {
            put("Power", p.to_ascii_uppercase());
        }
        // Observed: these flags follow `Power=` on one line, glued together without a blank
        // (`GresEnforceBind=YesKillOInInvalidDependent=YesSpreadJob=Yes`); the dependency
        // flag is added by sbatch's own `--kill-on-invalid-dep`.
        if self.gres_enforce_bind {
            put("GresEnforceBind", "Yes".into());
        }
        if self.spread_job {
            put("SpreadJob", "Yes".into());
        }
        if let Some(text) = self.mail_type.as_deref().and_then(mail_type_text) {
            put("MailType", text);
            if let Some(user) = &self.mail_user {
                put("MailUser", user.clone());
            }
        }
        if let Some(c) = &self.container {
            put("Container", c.clone());
        }
        if let Some(f) = &self.cluster_features {
            put("ClusterFeatures", f.clone());
        }
        if self.reboot {
            put("Reboot", "1".into());
            put("OverSubscribe", "NO".into());
        }
        if self.per_node.is_some() || self.per_socket.is_some() || self.per_core.is_some() {
            put(
                "NtasksPerN:B:S:C",
                format!(
                    "{}:0:{}:{}",
                    self.per_node.unwrap_or(0),
                    or_star(self.per_socket),
                    or_star(self.per_core)
                ),
            );
        }
        out
    }
}

/// `Switches=N@HH:MM:SS`: the wait is capped at the controller's `MaxSwitchWait` (300 s by
/// default) and is that cap without `@` (observed: `1@10` and `2` show `00:05:00`, `1@2:00`
/// `00:02:00`).
fn switches_text(v: &str) -> Option<String> {
    const MAX_SWITCH_WAIT: u64 = 300;
    let (count, wait) = match v.split_once('@') {
        Some((count, wait)) => match crate::units::parse_time_limit(wait).ok()? {
            crate::units::TimeLimit::Seconds(s) => (count, s.min(MAX_SWITCH_WAIT)),
            crate::units::TimeLimit::Unlimited => (count, MAX_SWITCH_WAIT),
        },
        None => (v, MAX_SWITCH_WAIT),
    };
    let count: u32 = count.trim().parse().ok()?;
    Some(format!(
        "{count}@{}",
        crate::units::format_long_duration(wait)
    ))
}

/// `--cpu-freq=[min-]max[:governor]` or `governor`, as `scontrol show job` prints it
/// (observed: `low` `CPU_max_freq=Low ` with its trailing blank, `low-high:ondemand`
/// `CPU_min_freq=Low CPU_max_freq=High Governor=OnDemand`, `performance`
/// `Governor=Performance`, `2000000` as given).
fn cpu_freq_text(v: &str) -> Option<String> {
    fn freq(word: &str) -> Option<String> {
        let known = ["low", "medium", "high", "highm1"];
        if let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(word)) {
            let mut c = k.chars();
            return c
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + c.as_str());
        }
        word.parse::<u64>().ok().map(|n| n.to_string())
    }
    fn governor(word: &str) -> Option<&'static str> {
        [
            ("conservative", "Conservative"),
            ("ondemand", "OnDemand"),
            ("performance", "Performance"),
            ("powersave", "PowerSave"),
            ("userspace", "UserSpace"),
            ("schedutil", "SchedUtil"),
        ]
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(word))
        .map(|(_, shown)| *shown)
    }
    if let Some(g) = governor(v) {
        return Some(format!("Governor={g}"));
    }
    let (range, gov) = match v.split_once(':') {
        Some((range, gov)) => (range, Some(governor(gov)?)),
        None => (v, None),
    };
    let mut text = String::new();
    match range.split_once('-') {
        Some((min, max)) => {
            text.push_str(&format!("CPU_min_freq={} ", freq(min)?));
            text.push_str(&format!("CPU_max_freq={} ", freq(max)?));
        }
        None => text.push_str(&format!("CPU_max_freq={} ", freq(range)?)),
    }
    if let Some(g) = gov {
        text.push_str(&format!("Governor={g}"));
    }
    Some(text)
}

/// `MailType=` in the order `print_mail_type()` (22.05 `src/common/proc_args.c`) tests the
/// bits; `ALL` is BEGIN, END, FAIL, REQUEUE, STAGE_OUT and INVALID_DEPEND; `NONE` shows
/// nothing (observed).
fn mail_type_text(v: &str) -> Option<String> {
    const ORDER: &[&str] = &[
        "ARRAY_TASKS",
        "INVALID_DEPEND",
        "BEGIN",
        "END",
        "FAIL",
        "REQUEUE",
        "STAGE_OUT",
        "TIME_LIMIT",
        "TIME_LIMIT_90",
        "TIME_LIMIT_80",
        "TIME_LIMIT_50",
    ];
    let mut set: Vec<&str> = Vec::new();
    for word in v.split(',') {
        let word = word.to_ascii_uppercase();
        if word == "ALL" {
            set.extend([
                "BEGIN",
                "END",
                "FAIL",
                "REQUEUE",
                "STAGE_OUT",
                "INVALID_DEPEND",
            ]);
        } else if let Some(k) = ORDER.iter().find(|k| **k == word) {
            set.push(k);
        }
    }
    let shown: Vec<&str> = ORDER.iter().copied().filter(|k| set.contains(k)).collect();
    (!shown.is_empty()).then(|| shown.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_job_fields_as_observed() {
        assert_eq!(switches_text("1@10").as_deref(), Some("1@00:05:00"));
        assert_eq!(switches_text("2").as_deref(), Some("2@00:05:00"));
        assert_eq!(switches_text("1@2:00").as_deref(), Some("1@00:02:00"));
        assert_eq!(switches_text("x@2"), None);
        assert_eq!(cpu_freq_text("low").as_deref(), Some("CPU_max_freq=Low "));
        assert_eq!(
            cpu_freq_text("low-high:ondemand").as_deref(),
            Some("CPU_min_freq=Low CPU_max_freq=High Governor=OnDemand")
        );
        assert_eq!(
            cpu_freq_text("performance").as_deref(),
            Some("Governor=Performance")
        );
        assert_eq!(
            cpu_freq_text("highm1").as_deref(),
            Some("CPU_max_freq=Highm1 ")
        );
        assert_eq!(
            cpu_freq_text("2000000").as_deref(),
            Some("CPU_max_freq=2000000 ")
        );
        assert_eq!(cpu_freq_text("bogus"), None);
        assert_eq!(
            mail_type_text("ALL").as_deref(),
            Some("INVALID_DEPEND,BEGIN,END,FAIL,REQUEUE,STAGE_OUT")
        );
        assert_eq!(mail_type_text("end,begin").as_deref(), Some("BEGIN,END"));
        assert_eq!(
            mail_type_text("TIME_LIMIT_90,ARRAY_TASKS").as_deref(),
            Some("ARRAY_TASKS,TIME_LIMIT_90")
        );
        assert_eq!(mail_type_text("NONE"), None);
    }

    #[test]
    fn each_command_has_slurm_2205s_option_count() {
        // Counted in `common_options[]` of slurm_opt.c (22.05.8) by their set_func fields.
        assert_eq!(spec(SBATCH).len(), 106);
        assert_eq!(spec(SRUN).len(), 131);
        assert_eq!(spec(SALLOC).len(), 95);
    }

    #[test]
    fn no_command_has_a_name_or_letter_twice() {
        for command in [SBATCH, SRUN, SALLOC] {
            let table = spec(command);
            for (i, a) in table.iter().enumerate() {
                for b in &table[i + 1..] {
                    assert_ne!(a.long, b.long);
                    assert!(a.short.is_none() || a.short != b.short, "{}", a.long);
                }
            }
        }
    }

    #[test]
    fn distributions() {
        for ok in [
            "block",
            "cyclic:fcyclic",
            "plane=4",
            "block:cyclic:block,Pack",
            "*:*",
        ] {
            assert!(valid_distribution(ok), "{ok}");
        }
        for bad in ["bogus", "plane=x", "block:bogus", "block,maybe", "a:b:c:d"] {
            assert!(!valid_distribution(bad), "{bad}");
        }
    }
}
