//! Flux rules (reference section 4; flux-core 4a5e79f56b: `src/common/libutil/fluid.c`,
//! `src/common/libjob/id.c`, `src/shell/shell.c`, `src/broker/runat.c`,
//! `src/modules/job-exec/job-exec.c`, `doc/man7/flux-environment.rst`,
//! `doc/man1/common/job-mustache-templates.rst`).
//!
//! Job ids: the daemon numbers jobs 1, 2, 3...; Flux ids are 64-bit FLUIDs laid out
//! `[ts:40 id:14 seq:10]`. The simulated cluster's Flux id of daemon job `n` is the FLUID with
//! timestamp `n`, generator id 0 and sequence 0, that is `n << 24`, so ids grow with the job
//! number and every Flux id maps back to at most one job.
//!
//! A Flux job's own words live in [`crate::model::JobRequest::attributes`] under the keys of
//! [`attr`]: which command made it (the environment of `flux alloc`'s initial program differs
//! from that of `flux run` tasks), where the fake keeps Flux's files, and an allocation the
//! scheduler denied.

use std::collections::BTreeMap;

use super::{Notice, Refusal, Rules, Site, Words};
use crate::model::{Job, JobRequest, JobState};
use crate::pattern::PatternFields;

/// Flux's rules.
#[derive(Debug)]
pub struct Flux;

/// Keys of [`JobRequest::attributes`] that the Flux commands fill in.
pub mod attr {
    /// `alloc` (a Flux instance whose initial program is the command), `run` or `submit`.
    pub const MODE: &str = "flux.mode";
    /// The directory under the state directory where the fake keeps Flux's files (the
    /// instance URI, job temporary directories, the output "KVS").
    pub const ROOT: &str = "flux.root";
    /// The scheduler denied the allocation: the exception note (`unsatisfiable request...`).
    pub const DENIED: &str = "flux.denied";
    /// `--urgency` (0 to 31, 16 by default).
    pub const URGENCY: &str = "flux.urgency";
    /// `-o/--output` as given, a mustache template (shown in `flux job attach`'s redirect line).
    pub const OUTPUT: &str = "flux.output";
    /// `--error` as given.
    pub const ERROR: &str = "flux.error";
    /// `unicode` or `ascii`: the F58 prefix in the job's environment (kept here because the
    /// daemon hands out jobs without their environment).
    pub const F58: &str = "flux.f58";
}

/// `flux alloc`: a Flux instance; `flux run` / `flux submit`: tasks.
pub const MODE_ALLOC: &str = "alloc";
/// See [`MODE_ALLOC`].
pub const MODE_RUN: &str = "run";
/// See [`MODE_ALLOC`].
pub const MODE_SUBMIT: &str = "submit";

/// Variables the broker removes from the environment of an instance's initial program
/// (`src/broker/runat.c` `env_blocklist`); a trailing `*` matches a prefix.
pub const INITIAL_PROGRAM_BLOCKLIST: &[&str] = &[
    "FLUX_JOB_ID",
    "FLUX_ENCLOSING_ID",
    "FLUX_JOB_SIZE",
    "FLUX_JOB_NNODES",
    "FLUX_JOB_TMPDIR",
    "FLUX_TASK_RANK",
    "FLUX_TASK_LOCAL_ID",
    "FLUX_URI",
    "FLUX_KVS_NAMESPACE",
    "FLUX_PROXY_REMOTE",
    "PMI_*",
    "PMIX_*",
    "FLUX_PMI_LIBRARY_PATH",
    "I_MPI_PMI_LIBRARY",
    "SLURM_*",
    "NOTIFY_SOCKET",
    "PALS_*",
];

/// Whether `name` is one of [`INITIAL_PROGRAM_BLOCKLIST`].
pub fn blocked_in_initial_program(name: &str) -> bool {
    INITIAL_PROGRAM_BLOCKLIST
        .iter()
        .any(|b| match b.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *b,
        })
}

const B58_DIGITS: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
/// F58's prefix in a multibyte UTF-8 locale (U+0192).
pub const F58_PREFIX: &str = "\u{192}";
/// F58's prefix otherwise.
pub const F58_ASCII_PREFIX: &str = "f";
const BITS_PER_TS: u32 = 40;
const ID_SHIFT: u32 = 24;

/// The Flux id (FLUID) of daemon job `id`.
pub fn flux_id(id: u32) -> u64 {
    u64::from(id) << ID_SHIFT
}

/// The daemon job of a Flux id, when there can be one.
pub fn daemon_id(fluid: u64) -> Option<u32> {
    if fluid & ((1 << ID_SHIFT) - 1) != 0 {
        return None;
    }
    u32::try_from(fluid >> ID_SHIFT).ok().filter(|&n| n > 0)
}

/// Whether F58 ids take the `ƒ` prefix in an environment: the locale (`LC_ALL`, else
/// `LC_CTYPE`, else `LANG`) is UTF-8 and `FLUX_F58_FORCE_ASCII` is unset
/// (`fluid.c` `is_utf8_locale`).
pub fn unicode_prefix(get: &dyn Fn(&str) -> Option<String>) -> bool {
    if get("FLUX_F58_FORCE_ASCII").is_some() {
        return false;
    }
    let locale = ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .filter_map(|k| get(k))
        .find(|v| !v.is_empty())
        .unwrap_or_default()
        .to_ascii_lowercase();
    locale.contains("utf-8") || locale.contains("utf8")
}

/// Whether F58 ids take the `ƒ` prefix for a job, by its environment.
pub fn unicode_prefix_in(env: &BTreeMap<String, String>) -> bool {
    unicode_prefix(&|k| env.get(k).cloned())
}

/// Whether F58 ids take the `ƒ` prefix for a job (its environment, as the submitting command
/// recorded it in [`attr::F58`]).
pub fn unicode_prefix_of(req: &JobRequest) -> bool {
    match req.attributes.get(attr::F58).map(String::as_str) {
        Some("unicode") => true,
        Some(_) => false,
        None => unicode_prefix_in(&req.env),
    }
}

/// F58: base58 of the id with the `ƒ` (or, with `ascii`, `f`) prefix.
pub fn f58(id: u64, unicode: bool) -> String {
    let mut digits = Vec::new();
    let mut n = id;
    loop {
        digits.push(B58_DIGITS[(n % 58) as usize] as char);
        n /= 58;
        if n == 0 {
            break;
        }
    }
    let prefix = if unicode {
        F58_PREFIX
    } else {
        F58_ASCII_PREFIX
    };
    let mut out = String::from(prefix);
    out.extend(digits.iter().rev());
    out
}

/// One of `flux_job_id_encode`'s forms: `dec`, `hex`, `dothex`, `kvs`, `f58`, `f58plain`
/// (case-insensitive); `None` for a form the simulated cluster does not know (`words`,
/// `emoji` included).
pub fn encode(id: u64, form: &str, unicode: bool) -> Option<String> {
    let dothex = || {
        format!(
            "{:04x}.{:04x}.{:04x}.{:04x}",
            (id >> 48) & 0xffff,
            (id >> 32) & 0xffff,
            (id >> 16) & 0xffff,
            id & 0xffff
        )
    };
    Some(match form.to_ascii_lowercase().as_str() {
        "dec" => id.to_string(),
        "hex" => format!("{id:#x}"),
        "dothex" => dothex(),
        "kvs" => format!("job.{}", dothex()),
        "f58" => f58(id, unicode),
        "f58plain" => f58(id, false),
        _ => return None,
    })
}

fn valid_fluid(id: u64) -> Option<u64> {
    (id >> (64 - BITS_PER_TS) < (1 << BITS_PER_TS)).then_some(id)
}

/// Parses a job id as Flux's tools accept it (`flux_job_id_parse`, `fluid_parse`): decimal,
/// `0x` hex, F58 with the `ƒ` or `f` prefix, dotted hex, with or without `job.`, surrounded by
/// white space. Mnemonic words and emoji are not understood.
pub fn parse_jobid(text: &str) -> Option<u64> {
    let t = text.trim();
    let t = t.strip_prefix("job.").unwrap_or(t);
    if t.is_empty() {
        return None;
    }
    if t.contains('.') {
        let parts: Vec<&str> = t.split('.').collect();
        if parts.len() != 4
            || parts
                .iter()
                .any(|p| p.is_empty() || p.len() > 4 || !p.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return None;
        }
        let mut id = 0u64;
        for p in parts {
            id = (id << 16) | u64::from_str_radix(p, 16).ok()?;
        }
        return valid_fluid(id);
    }
    let f58_digits = t
        .strip_prefix(F58_PREFIX)
        .or_else(|| t.strip_prefix(F58_ASCII_PREFIX));
    if let Some(digits) = f58_digits {
        if digits.is_empty() || digits.len() > 12 {
            return None;
        }
        let mut id: u64 = 0;
        for c in digits.bytes() {
            let d = B58_DIGITS.iter().position(|&x| x == c)? as u64;
            id = id.checked_mul(58)?.checked_add(d)?;
        }
        return valid_fluid(id);
    }
    let id = match t.strip_prefix("0x") {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u64::from_str_radix(hex, 16).ok()?
        }
        Some(_) => return None,
        None if t.bytes().all(|b| b.is_ascii_digit()) => t.parse().ok()?,
        None => return None,
    };
    valid_fluid(id)
}

/// The F58 id of a job, prefixed as the job's environment says.
pub fn job_f58(job: &Job) -> String {
    f58(flux_id(job.id), unicode_prefix_of(&job.req))
}

/// Which command made the job (`alloc`, `run`, `submit`).
pub fn mode(req: &JobRequest) -> &str {
    req.attributes
        .get(attr::MODE)
        .map_or(MODE_SUBMIT, String::as_str)
}

/// The URI of the enclosing (system) instance, as tasks see it in `FLUX_URI`.
pub fn system_uri(root: &str) -> String {
    format!("local://{root}/local")
}

/// The URI of the instance `flux alloc` starts for job `f58`.
pub fn instance_uri(root: &str, f58: &str) -> String {
    format!("local://{root}/instance/{f58}/local-0")
}

/// The job's temporary directory (`FLUX_JOB_TMPDIR`, `jobtmp-<shell rank>-<f58>`).
pub fn job_tmpdir(root: &str, f58: &str) -> String {
    format!("{root}/jobtmp-0-{f58}")
}

/// Renders a mustache template of a job (`--output`, `--error`, `--input`): `{{id}}` and
/// `{{jobid}}` (F58, or `{{id.<form>}}`), `{{name}}`, `{{nnodes}}`, `{{size}}`/`{{ntasks}}`, and
/// the tags of the one shell and first task (`{{node.id}}`, `{{node.name}}`, `{{task.id}}`,
/// `{{taskid}}`, `{{task.index}}`, ...). An unknown tag stays as it is
/// (`doc/man1/common/job-mustache-templates.rst`).
pub fn render(template: &str, id: u32, req: &JobRequest, node: &str) -> String {
    let unicode = unicode_prefix_of(req);
    let fluid = flux_id(id);
    let root = req.attributes.get(attr::ROOT).cloned().unwrap_or_default();
    let tag = |name: &str| -> Option<String> {
        let name = name.trim();
        if let Some(form) = name
            .strip_prefix("id.")
            .or_else(|| name.strip_prefix("jobid."))
        {
            return encode(fluid, form, unicode);
        }
        Some(match name {
            "id" | "jobid" => f58(fluid, unicode),
            "name" => req.name.clone(),
            "nnodes" => req.nodes.unwrap_or(1).max(1).to_string(),
            "size" | "ntasks" => req.ntasks.unwrap_or(1).max(1).to_string(),
            "node.id" | "node.broker_rank" | "task.id" | "task.rank" | "taskid" | "task.index"
            | "task.localid" => "0".into(),
            "node.name" => node.to_string(),
            "node.ncores" => req.cpus_per_task.unwrap_or(1).max(1).to_string(),
            "tmpdir" => job_tmpdir(&root, &f58(fluid, unicode)),
            _ => return None,
        })
    };
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                match tag(&after[..end]) {
                    Some(value) => out.push_str(&value),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

impl Rules for Flux {
    fn words(&self, refusal: &Refusal) -> Words {
        let message = match refusal {
            Refusal::Injected(text) | Refusal::OtherUser(text) => text.clone(),
            // job-ingest's defaults frobnicator (`frobnicator/plugins/defaults.py`).
            Refusal::UnknownPartition(name) => format!("Invalid queue '{name}' specified"),
            // job-manager `queues_lookup` (`src/modules/job-manager/queues.c`).
            Refusal::NoDefaultPartition => "a named queue is required".into(),
            Refusal::SubmitLimit => "user has max active jobs".into(),
            Refusal::IdSpaceExhausted(_) => "Resource temporarily unavailable".into(),
            _ => "unsatisfiable request".into(),
        };
        Words {
            detail: Vec::new(),
            message,
        }
    }

    fn keeps_refused_job(&self, _refusal: &Refusal) -> bool {
        false
    }

    /// Every Flux command names the job's output itself (a file in the fake's "KVS", or
    /// `--output`); this pattern is never used by them.
    fn default_output(&self) -> &'static str {
        "flux-{{id}}.out"
    }

    /// `flux alloc`'s initial program: only `FLUX_URI` (the new instance) and
    /// `FLUX_ENCLOSING_ID` (`src/broker/runat.c` `runat_command_setenv`). Tasks of `flux run`
    /// and `flux submit`: the job shell's variables (`src/shell/shell.c`
    /// `shell_setup_environment`, `doc/man7/flux-environment.rst`), of task 0.
    fn job_env(&self, job: &Job, _site: Site<'_>) -> BTreeMap<String, String> {
        let id = job_f58(job);
        let root = job
            .req
            .attributes
            .get(attr::ROOT)
            .cloned()
            .unwrap_or_default();
        let mut env = BTreeMap::new();
        if mode(&job.req) == MODE_ALLOC {
            env.insert("FLUX_URI".into(), instance_uri(&root, &id));
            env.insert("FLUX_ENCLOSING_ID".into(), id);
            return env;
        }
        let nnodes = job.run.alloc.len().max(job.num_nodes as usize).max(1);
        env.insert("FLUX_URI".into(), system_uri(&root));
        env.insert(
            "FLUX_KVS_NAMESPACE".into(),
            format!("job-{}", flux_id(job.id)),
        );
        env.insert("FLUX_JOB_ID_PATH".into(), format!("/{id}"));
        env.insert(
            "FLUX_JOB_SIZE".into(),
            job.req.ntasks.unwrap_or(1).max(1).to_string(),
        );
        env.insert("FLUX_JOB_NNODES".into(), nnodes.to_string());
        env.insert("FLUX_JOB_TMPDIR".into(), job_tmpdir(&root, &id));
        env.insert("FLUX_TASK_RANK".into(), "0".into());
        env.insert("FLUX_TASK_LOCAL_ID".into(), "0".into());
        env.insert("FLUX_JOB_ID".into(), id);
        env
    }

    fn expand_pattern(
        &self,
        pattern: &str,
        fields: &PatternFields<'_>,
        req: &JobRequest,
    ) -> String {
        render(pattern, fields.job_id, req, fields.node)
    }

    /// A time limit raises the `timeout` exception and sends SIGALRM (`job-exec.c`
    /// `timelimit_cb`); a cancel sends SIGTERM (`jobinfo_cancel`).
    fn term_signal(&self, ending: JobState) -> i32 {
        if ending == JobState::Timeout {
            libc::SIGALRM
        } else {
            libc::SIGTERM
        }
    }

    fn chdir_failed(&self, _node: &str, dir: &str, errno: i32) -> String {
        format!(
            "flux-shell: FATAL: Could not change dir to {dir}: {}\n",
            super::strerror(errno)
        )
    }

    fn exec_failed(&self, node: &str, script: &str, error: &str) -> String {
        format!("flux-shell[0]: FATAL: task 0 (host {node}): start failed: {script}: {error}\n")
    }

    fn kill_notices(&self, _job: &Job, _ending: JobState, _at: f64) -> Vec<Notice> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f58_round_trips_and_matches_flux() {
        // fluid.c: 0 is "1", the alphabet has no 0 O I l.
        assert_eq!(f58(0, false), "f1");
        assert_eq!(f58(57, true), "\u{192}z");
        assert_eq!(f58(58, false), "f21");
        for id in [1u32, 2, 57, 58, 1000, u32::MAX] {
            let fluid = flux_id(id);
            for unicode in [true, false] {
                assert_eq!(parse_jobid(&f58(fluid, unicode)), Some(fluid));
            }
            assert_eq!(parse_jobid(&fluid.to_string()), Some(fluid));
            assert_eq!(parse_jobid(&format!("{fluid:#x}")), Some(fluid));
            let dothex = encode(fluid, "dothex", false).unwrap_or_default();
            assert_eq!(parse_jobid(&dothex), Some(fluid));
            assert_eq!(parse_jobid(&format!("job.{dothex}")), Some(fluid));
            assert_eq!(daemon_id(fluid), Some(id));
        }
        assert_eq!(daemon_id(5), None);
        assert_eq!(parse_jobid("f0"), None);
        assert_eq!(parse_jobid("fzzzzzzzzzzzzz"), None);
        assert_eq!(parse_jobid("12x"), None);
        assert_eq!(parse_jobid(""), None);
        assert_eq!(parse_jobid("0x"), None);
    }

    #[test]
    fn the_prefix_follows_the_locale() {
        let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(unicode_prefix_in(&env(&[("LANG", "en_US.UTF-8")])));
        assert!(unicode_prefix_in(&env(&[("LC_CTYPE", "C.utf8")])));
        assert!(!unicode_prefix_in(&env(&[("LANG", "C")])));
        assert!(!unicode_prefix_in(&env(&[
            ("LC_ALL", "C"),
            ("LANG", "en_US.UTF-8")
        ])));
        assert!(!unicode_prefix_in(&env(&[
            ("LANG", "en_US.UTF-8"),
            ("FLUX_F58_FORCE_ASCII", "1")
        ])));
    }

    #[test]
    fn blocklist_matches_names_and_prefixes() {
        assert!(blocked_in_initial_program("FLUX_JOB_ID"));
        assert!(blocked_in_initial_program("SLURM_JOB_ID"));
        assert!(blocked_in_initial_program("PMI_RANK"));
        assert!(!blocked_in_initial_program("FLUX_F58_FORCE_ASCII"));
        assert!(!blocked_in_initial_program("PATH"));
    }
}
