//! Normalisation of scheduler output so that two clusters can be compared.
//!
//! Job ids become `<JOB1>`, `<JOB2>`, ... in the order a case first sees them (zero-padded forms
//! such as `%4j` become `<JOB1:4>`), the machine's host name and the node name `localhost` become
//! `<HOST>`, `YYYY-MM-DDTHH:MM:SS` timestamps become `<TIME>`, and the case's working directory
//! becomes `<CWD>`.
//!
//! ```
//! use conformance::normalize::Normalizer;
//! let mut n = Normalizer::new(std::path::Path::new("/tmp/case"), "vm");
//! assert_eq!(n.text("Submitted batch job 417\n"), "Submitted batch job <JOB1>\n");
//! assert_eq!(
//!     n.text("slurmstepd-vm: error: *** JOB 417 ON localhost CANCELLED AT 2026-11-23T18:29:06 ***"),
//!     "slurmstepd-<HOST>: error: *** JOB <JOB1> ON <HOST> CANCELLED AT <TIME> ***"
//! );
//! assert_eq!(n.name("/tmp/case/out-0417-417.txt"), "<CWD>/out-<JOB1:4>-<JOB1>.txt");
//! // Dependencies name the job after their kind.
//! assert_eq!(n.text("afterok:417(failed)"), "afterok:<JOB1>(failed)");
//! // Array tasks: the array's id before `_<task>`, also in `ArrayJobId=`.
//! assert_eq!(n.text("417_[2-4%2]|PENDING\n"), "<JOB1>_[2-4%2]|PENDING\n");
//! assert_eq!(
//!     n.text("JobId=418 ArrayJobId=417 ArrayTaskId=1 StdOut=/tmp/case/slurm-417_1.out"),
//!     "JobId=<JOB2> ArrayJobId=<JOB1> ArrayTaskId=1 StdOut=<CWD>/slurm-<JOB1>_1.out"
//! );
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;

use regex::{Captures, Regex};

// Places where Slurm prints a job id. The id is always the group named `id`.
static JOB_ID_CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?P<pre>\b[Jj]ob |\bJOB |\bJobId=|\bArrayJobId=|\bafter(?:any|ok|notok|corr)?:|\bjob id |\ballocation |\bStepId=|\bSTEP |\bSLURM_JOB_?ID=|\bslurm-)(?P<id>\d+)(?P<end>\b|_)",
    )
    .expect("static regex")
});
// A job id opening a line, as in `--parsable`, `squeue -o %i|...` and `sacct -P` output: the
// number is followed by `|`, `.`, `;`, a blank, `_` (an array task, `12_3`) or the end of the
// line (so `3:0` is not taken for one).
static LEADING_JOB_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^(?P<id>\d+)(?P<post>[|.; \t_]|$)").expect("static regex"));
static TIMESTAMP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}").expect("static regex"));
static DIGITS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d+").expect("static regex"));

/// Rewrites one case's output into a cluster-independent form.
#[derive(Debug, Clone)]
pub struct Normalizer {
    cwd: String,
    host: Regex,
    ids: HashMap<u64, usize>,
}

impl Normalizer {
    /// A normaliser for a case running in `cwd` on a machine called `hostname`.
    pub fn new(cwd: &Path, hostname: &str) -> Self {
        let mut names = vec![regex::escape("localhost")];
        if !hostname.is_empty() && hostname != "localhost" {
            names.push(regex::escape(hostname));
        }
        let host = Regex::new(&format!(r"\b(?:{})\b", names.join("|"))).expect("escaped names");
        Normalizer {
            cwd: cwd.to_string_lossy().into_owned(),
            host,
            ids: HashMap::new(),
        }
    }

    /// A normaliser for `cwd` on this machine.
    pub fn for_this_machine(cwd: &Path) -> Self {
        let hostname = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        Normalizer::new(cwd, &hostname)
    }

    /// Registers a job id (if new) and returns its placeholder.
    pub fn learn(&mut self, id: u64) -> String {
        let next = self.ids.len() + 1;
        let n = *self.ids.entry(id).or_insert(next);
        format!("<JOB{n}>")
    }

    /// Every job id learned so far, in the order they were first seen.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<(usize, u64)> = self.ids.iter().map(|(id, n)| (*n, *id)).collect();
        ids.sort_unstable();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// The placeholder of a known job id.
    pub fn label(&self, id: u64) -> Option<String> {
        self.ids.get(&id).map(|n| format!("<JOB{n}>"))
    }

    /// Normalises free text: job ids where Slurm prints them, host names, timestamps, the
    /// working directory. Job ids found in those places are learned.
    pub fn text(&mut self, text: &str) -> String {
        let text = text.replace(&self.cwd, "<CWD>");
        let text = TIMESTAMP.replace_all(&text, "<TIME>").into_owned();
        let text = JOB_ID_CONTEXT
            .replace_all(&text, |caps: &Captures<'_>| {
                let (pre, end) = (&caps["pre"], &caps["end"]);
                match caps["id"].parse::<u64>() {
                    Ok(id) => format!("{pre}{}{end}", self.learn(id)),
                    Err(_) => caps[0].to_string(),
                }
            })
            .into_owned();
        let text = LEADING_JOB_ID
            .replace_all(&text, |caps: &Captures<'_>| {
                let post = &caps["post"];
                match caps["id"].parse::<u64>() {
                    Ok(id) => format!("{}{post}", self.learn(id)),
                    Err(_) => caps[0].to_string(),
                }
            })
            .into_owned();
        self.host.replace_all(&text, "<HOST>").into_owned()
    }

    /// Normalises one value that holds no job id (a state, an exit code, a time limit): host
    /// names, timestamps and the working directory only.
    pub fn value(&self, value: &str) -> String {
        let value = value.replace(&self.cwd, "<CWD>");
        let value = TIMESTAMP.replace_all(&value, "<TIME>").into_owned();
        self.host.replace_all(&value, "<HOST>").into_owned()
    }

    /// Normalises a file name or path: every digit run equal to a known job id (also
    /// zero-padded) becomes its placeholder; host names and the working directory too.
    pub fn name(&self, name: &str) -> String {
        let name = name.replace(&self.cwd, "<CWD>");
        let name = DIGITS
            .replace_all(&name, |caps: &Captures<'_>| {
                let digits = &caps[0];
                let Ok(id) = digits.parse::<u64>() else {
                    return digits.to_string();
                };
                match self.label(id) {
                    Some(label) if digits.starts_with('0') && digits.len() > 1 => {
                        format!("{}:{}>", label.trim_end_matches('>'), digits.len())
                    }
                    Some(label) => label,
                    None => digits.to_string(),
                }
            })
            .into_owned();
        self.host.replace_all(&name, "<HOST>").into_owned()
    }
}

/// Parses `Submitted batch job N` (or a `--parsable` `N[;cluster]` line) into the job id.
pub fn submitted_job_id(stdout: &str) -> Option<u64> {
    let line = stdout.lines().find(|l| !l.trim().is_empty())?.trim();
    let id = line
        .strip_prefix("Submitted batch job ")
        .map(|rest| rest.split_whitespace().next().unwrap_or(""))
        .unwrap_or_else(|| line.split(';').next().unwrap_or(""));
    id.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_numbered_in_order_of_appearance() {
        let mut n = Normalizer::new(Path::new("/w"), "vm");
        assert_eq!(
            n.text("srun: job 12 queued and waiting for resources\nsrun: job 12 has been allocated resources\n"),
            "srun: job <JOB1> queued and waiting for resources\nsrun: job <JOB1> has been allocated resources\n"
        );
        assert_eq!(
            n.text("13|PENDING|Priority\n12|RUNNING|None"),
            "<JOB2>|PENDING|Priority\n<JOB1>|RUNNING|None"
        );
    }

    #[test]
    fn numbers_outside_job_id_places_are_kept() {
        let mut n = Normalizer::new(Path::new("/w"), "vm");
        n.learn(1);
        assert_eq!(n.text("ExitCode=1:0 NumCPUs=1"), "ExitCode=1:0 NumCPUs=1");
        assert_eq!(n.text("<JOB1>.batch|x"), "<JOB1>.batch|x");
        assert_eq!(
            n.text("1.batch|CANCELLED|0:15"),
            "<JOB1>.batch|CANCELLED|0:15"
        );
    }

    #[test]
    fn host_names_are_whole_words_only() {
        let mut n = Normalizer::new(Path::new("/w"), "vm");
        assert_eq!(
            n.text("vm vmx localhost slurmstepd-vm:"),
            "<HOST> vmx <HOST> slurmstepd-<HOST>:"
        );
    }

    #[test]
    fn submitted_ids_parse() {
        assert_eq!(submitted_job_id("Submitted batch job 42\n"), Some(42));
        assert_eq!(submitted_job_id("42\n"), Some(42));
        assert_eq!(submitted_job_id("42;batchci\n"), Some(42));
        assert_eq!(submitted_job_id("sbatch: error\n"), None);
    }
}
