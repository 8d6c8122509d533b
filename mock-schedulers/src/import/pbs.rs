//! `mock-cluster import pbs`: a cluster file (`flavor = "pbs"`) from `pbsnodes -av`, `qstat
//! -Qf` and optionally `qmgr -c 'p s'`, in the formats OpenPBS prints (the sources are cited
//! where each is read; `tests/import.rs` cites them for its samples).

use std::collections::HashSet;

use super::records::{pbs_records, shorten};
use super::{ImportError, Imported, NotImported, PartitionOut, Source, err, group_nodes};

/// What `mock-cluster import pbs` reads.
#[derive(Debug, Clone)]
pub(crate) struct PbsInput {
    /// `pbsnodes -av`.
    pub(crate) nodes: Source,
    /// `qstat -Qf`.
    pub(crate) queues: Source,
    /// `qmgr -c 'p s'` (print server), for `default_queue`.
    pub(crate) server: Option<Source>,
    /// `--cluster-name`: neither output names the server.
    pub(crate) cluster_name: String,
}

/// Node states that are the node's current use (`pbs_node_attributes(7B)` `state`), not its
/// configuration: a simulated node starts free and passes through these on its own.
const USE_STATES: &[&str] = &[
    "free",
    "job-busy",
    "job-exclusive",
    "resv-exclusive",
    "busy",
];

/// Node attributes that describe the node's status or identity rather than a setting
/// (`pbs_node_attributes(7B)`), and the ones imported: not listed as "not imported".
const NODE_READ: &[&str] = &[
    "Mom",
    "Port",
    "pbs_version",
    "ntype",
    "state",
    "pcpus",
    "jobs",
    "resv",
    "resv_enable",
    "license",
    "last_state_change_time",
    "last_used_time",
    "in_multivnode_host",
    "comment",
    "queue",
    "resources_available.arch",
    "resources_available.host",
    "resources_available.vnode",
    "resources_available.ncpus",
    "resources_available.mem",
];

/// Queue attributes that describe the queue's status, and the ones imported
/// (`pbs_queue_attributes(7B)`).
const QUEUE_READ: &[&str] = &[
    "queue_type",
    "total_jobs",
    "state_count",
    "hasnodes",
    "enabled",
    "started",
    "resources_max.walltime",
    "resources_max.nodect",
];

/// A PBS size (`pbs_resources(7B)`, "Size": an integer with an optional suffix `b`, `kb`, `mb`,
/// `gb`, `tb`, `pb`, or `w`, `kw`, ... for words; no suffix means bytes; `k` is 1024) in
/// whole megabytes, rounded down.
pub(crate) fn size_mb(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let digits = lower.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = lower.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let (scale, word) = match unit {
        "" | "b" => (0, false),
        "w" => (0, true),
        _ => {
            let (prefix, last) = unit.split_at(unit.len().checked_sub(1)?);
            let word = match last {
                "b" => false,
                "w" => true,
                _ => return None,
            };
            let scale = match prefix {
                "k" => 1,
                "m" => 2,
                "g" => 3,
                "t" => 4,
                "p" => 5,
                _ => return None,
            };
            (scale, word)
        }
    };
    // A word is the machine's word: 8 bytes on the 64-bit hosts PBS runs on.
    let bytes = number
        .checked_mul(if word { 8 } else { 1 })?
        .checked_mul(1024u64.checked_pow(scale)?)?;
    Some(bytes / (1024 * 1024))
}

/// A PBS duration (`pbs_resources(7B)`, "Duration": `[[hours:]minutes:]seconds[.milliseconds]`)
/// in seconds.
pub(crate) fn duration_seconds(text: &str) -> Option<u64> {
    let parts: Vec<&str> = text.trim().split(':').collect();
    if parts.len() > 3 {
        return None;
    }
    let mut total: u64 = 0;
    for (i, part) in parts.iter().enumerate() {
        let whole = if i + 1 == parts.len() {
            // Milliseconds are dropped: limits are whole minutes in the simulation anyway.
            match part.split_once('.') {
                Some((s, ms)) if ms.bytes().all(|b| b.is_ascii_digit()) => s,
                Some(_) => return None,
                None => part,
            }
        } else {
            part
        };
        if whole.is_empty() || whole.len() > 9 || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        total = total.checked_mul(60)?.checked_add(whole.parse().ok()?)?;
    }
    Some(total)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains([',', '[', ']', ' ', '\t', '"', '\\'])
}

/// Imports a PBS cluster.
pub(crate) fn import(input: &PbsInput) -> Result<Imported, ImportError> {
    let mut not_imported = NotImported::default();
    let nodes = parse_nodes(&input.nodes, &mut not_imported)?;
    let default_queue = match &input.server {
        Some(src) => default_queue(src)?,
        None => None,
    };
    let mut partitions = parse_queues(&input.queues, &nodes, &mut not_imported)?;
    let mut header = vec![format!(
        "# Imported by `mock-cluster import pbs` from: {}",
        [
            Some(&input.nodes),
            Some(&input.queues),
            input.server.as_ref()
        ]
        .into_iter()
        .flatten()
        .map(|s| s.name.clone())
        .collect::<Vec<_>>()
        .join(", ")
    )];
    match (&input.server, default_queue) {
        (Some(src), Some((name, line))) => match partitions.iter_mut().find(|p| p.name == name) {
            Some(p) => p.default = true,
            None => {
                return Err(err(
                    src,
                    line,
                    format!(
                        "default_queue `{name}` is not an execution queue of the queues' output"
                    ),
                ));
            }
        },
        (server, _) => {
            if let Some(first) = partitions.first_mut() {
                first.default = true;
                header.push(format!(
                    "# default queue: {}, the first queue ({})",
                    first.name,
                    if server.is_some() {
                        "the server has no default_queue"
                    } else {
                        "no `qmgr -c 'p s'` output was given"
                    }
                ));
            }
        }
    }
    let shapes = nodes
        .into_iter()
        .map(|n| (n.name, n.cpus, n.memory_mb, Vec::new()))
        .collect();
    Ok(Imported {
        header,
        cluster_name: input.cluster_name.clone(),
        flavor: Some("pbs"),
        sched_interval: None,
        nodes: group_nodes(shapes),
        partitions,
        qos: Vec::new(),
        not_imported,
    })
}

/// A node and the queue it is tied to (its `queue` attribute), if any.
struct PbsNode {
    name: String,
    cpus: u32,
    memory_mb: u64,
    queue: Option<String>,
}

/// `pbsnodes -av`: `pbsnodes.c` `prt_node` prints the vnode's name, then `     attr = value` or
/// `     attr.resource = value` lines, then a blank line.
fn parse_nodes(src: &Source, not_imported: &mut NotImported) -> Result<Vec<PbsNode>, ImportError> {
    let records = pbs_records(&src.text, &src.name, "")?;
    let mut nodes: Vec<PbsNode> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for record in &records {
        let name = record.name.as_str();
        if !valid_name(name) {
            return Err(err(
                src,
                record.line,
                format!("bad node name `{}`", shorten(name)),
            ));
        }
        if !seen.insert(name.to_string()) {
            return Err(err(
                src,
                record.line,
                format!("node `{name}` is listed twice"),
            ));
        }
        let what = format!("node `{name}`");
        let ncpus = record.required(src, &what, "resources_available.ncpus", " = ")?;
        let cpus = ncpus
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=65_535).contains(n))
            .ok_or_else(|| {
                err(
                    src,
                    record.line_of("resources_available.ncpus"),
                    format!("{what}: `resources_available.ncpus = {ncpus}` is not a number of CPUs (1 to 65535)"),
                )
            })?;
        let mem = record.required(src, &what, "resources_available.mem", " = ")?;
        let memory_mb = size_mb(mem).ok_or_else(|| {
            err(
                src,
                record.line_of("resources_available.mem"),
                format!("{what}: `resources_available.mem = {mem}`: unknown unit or not a size (b, kb, mb, gb, tb, pb)"),
            )
        })?;
        if let Some(state) = record.get("state")
            && !state.split(',').all(|s| USE_STATES.contains(&s.trim()))
        {
            not_imported.node(name, format!("state = {state}"));
        }
        for field in &record.fields {
            let key = field.key.as_str();
            if NODE_READ.contains(&key) || key.starts_with("resources_assigned.") {
                continue;
            }
            let unset = match key {
                "resources_available.ngpus" | "resources_available.nmics" => field.value == "0",
                "sharing" => field.value == "default_shared",
                _ => false,
            };
            if !unset {
                not_imported.node(name, format!("{key} = {}", field.value));
            }
        }
        nodes.push(PbsNode {
            name: name.to_string(),
            cpus,
            memory_mb,
            queue: record.get("queue").map(str::to_string),
        });
    }
    if nodes.is_empty() {
        return Err(err(
            src,
            1,
            "no nodes (expected the output of `pbsnodes -av`)",
        ));
    }
    Ok(nodes)
}

/// `qstat -Qf`: `qstat.c` `display_statque` prints `Queue: <name>`, then `prt_attr` prints
/// `    attr = value` lines, long values continued on tab-indented lines.
fn parse_queues(
    src: &Source,
    nodes: &[PbsNode],
    not_imported: &mut NotImported,
) -> Result<Vec<PartitionOut>, ImportError> {
    let records = pbs_records(&src.text, &src.name, "Queue: ")?;
    let mut partitions: Vec<PartitionOut> = Vec::new();
    for record in &records {
        let name = record.name.clone();
        if name.contains(['"', '\\', ',']) {
            return Err(err(
                src,
                record.line,
                format!("bad queue name `{}`", shorten(&name)),
            ));
        }
        if partitions.iter().any(|p| p.name == name) {
            return Err(err(
                src,
                record.line,
                format!("queue `{name}` is listed twice"),
            ));
        }
        let what = format!("queue `{name}`");
        let queue_type = record.required(src, &what, "queue_type", " = ")?;
        let flag = |key: &str| -> Result<bool, ImportError> {
            match record.required(src, &what, key, " = ")? {
                "True" | "true" | "TRUE" | "1" | "y" | "Y" => Ok(true),
                "False" | "false" | "FALSE" | "0" | "n" | "N" => Ok(false),
                other => Err(err(
                    src,
                    record.line_of(key),
                    format!("{what}: `{key} = {other}`: expected True or False"),
                )),
            }
        };
        let enabled = flag("enabled")?;
        let started = flag("started")?;
        if !queue_type.eq_ignore_ascii_case("execution") {
            not_imported.other(format!(
                "queue {name}: queue_type = {queue_type} (only execution queues are simulated)"
            ));
            continue;
        }
        let max_time = match record.get("resources_max.walltime") {
            None => "UNLIMITED".to_string(),
            Some(text) => {
                let secs = duration_seconds(text).filter(|s| *s > 0).ok_or_else(|| {
                    err(
                        src,
                        record.line_of("resources_max.walltime"),
                        format!("{what}: `resources_max.walltime = {text}` is not a duration"),
                    )
                })?;
                format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
            }
        };
        let max_nodes = match record.get("resources_max.nodect") {
            None => None,
            Some(text) => Some(text.parse::<u32>().map_err(|_| {
                err(
                    src,
                    record.line_of("resources_max.nodect"),
                    format!("{what}: `resources_max.nodect = {text}` is not a number of nodes"),
                )
            })?),
        };
        // enabled: the queue takes new jobs; started: its jobs may start (pbs_queue_attributes).
        // Slurm's partition states say the same: DRAIN takes none but runs what it has, DOWN
        // takes jobs but starts none, INACTIVE does neither (slurm.conf(5) State).
        let state = match (enabled, started) {
            (true, true) => "UP",
            (true, false) => "DOWN",
            (false, true) => "DRAIN",
            (false, false) => "INACTIVE",
        };
        for field in &record.fields {
            let key = field.key.as_str();
            if QUEUE_READ.contains(&key) || key.starts_with("resources_assigned.") {
                continue;
            }
            not_imported.other(format!("queue {name}: {key} = {}", field.value));
        }
        // A node tied to queues (its `queue` attribute) runs only their jobs; a queue that has
        // such nodes runs only on them (pbs_node_attributes(7B) `queue`).
        let tied: Vec<String> = nodes
            .iter()
            .filter(|n| n.queue.as_deref() == Some(name.as_str()))
            .map(|n| n.name.clone())
            .collect();
        let members = if tied.is_empty() {
            nodes
                .iter()
                .filter(|n| n.queue.is_none())
                .map(|n| n.name.clone())
                .collect()
        } else {
            tied
        };
        if members.is_empty() {
            not_imported.other(format!(
                "queue {name}: it has no nodes (all are tied to other queues)"
            ));
            continue;
        }
        partitions.push(PartitionOut {
            name,
            nodes: members,
            default: false,
            max_time,
            max_nodes,
            state: state.to_string(),
            qos: None,
        });
    }
    if partitions.is_empty() {
        return Err(err(
            src,
            1,
            "no execution queues (expected the output of `qstat -Qf`)",
        ));
    }
    Ok(partitions)
}

/// `set server default_queue = <name>` in `qmgr -c 'p s'` (`qmgr.c` prints each attribute as
/// `set server <attr> = <value>`), with its line.
fn default_queue(src: &Source) -> Result<Option<(String, usize)>, ImportError> {
    for (index, line) in src.text.lines().enumerate() {
        let Some(rest) = line.trim().strip_prefix("set server ") else {
            continue;
        };
        let Some((key, value)) = rest.split_once('=') else {
            return Err(err(
                src,
                index + 1,
                format!(
                    "expected `set server attr = value`, found `{}`",
                    shorten(line.trim())
                ),
            ));
        };
        if key.trim() == "default_queue" {
            let value = value.trim();
            if value.is_empty() {
                return Err(err(src, index + 1, "an empty default_queue"));
            }
            return Ok(Some((value.to_string(), index + 1)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(size_mb("16gb"), Some(16384));
        assert_eq!(size_mb("16384mb"), Some(16384));
        assert_eq!(size_mb("16777216kb"), Some(16384));
        assert_eq!(size_mb("1048576"), Some(1));
        assert_eq!(size_mb("2mw"), Some(16));
        assert_eq!(size_mb("16 gb"), None);
        assert_eq!(size_mb("16xb"), None);
        assert_eq!(size_mb("gb"), None);
        assert_eq!(size_mb("99999999999pb"), None);
        assert_eq!(duration_seconds("24:00:00"), Some(86400));
        assert_eq!(duration_seconds("30:00"), Some(1800));
        assert_eq!(duration_seconds("90"), Some(90));
        assert_eq!(duration_seconds("01:00:00.500"), Some(3600));
        assert_eq!(duration_seconds("1:2:3:4"), None);
        assert_eq!(duration_seconds("soon"), None);
    }

    proptest! {
        #[test]
        fn import_never_panics(nodes in "(?s).{0,300}", queues in "(?s).{0,300}", server in "(?s).{0,100}") {
            let src = |name: &str, text: &str| Source { name: name.into(), text: text.into() };
            let input = PbsInput {
                nodes: src("n", &nodes),
                queues: src("q", &queues),
                server: Some(src("s", &server)),
                cluster_name: "c".into(),
            };
            let _ = import(&input);
        }

        #[test]
        fn sizes_never_panic(text in "[0-9]{0,25}[kmgtpbw]{0,3}") {
            let _ = size_mb(&text);
            let _ = duration_seconds(&text);
        }
    }
}
