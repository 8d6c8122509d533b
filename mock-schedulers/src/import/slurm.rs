//! `mock-cluster import slurm`: a cluster file from `scontrol show nodes`, `scontrol show
//! partitions` (either form), optionally `scontrol show config` (for `ClusterName`) and
//! `sacctmgr -n -P show qos`, as Slurm 22.05 prints them (captured in
//! `tests/fixtures/slurm-22.05-capture/` by `ci/slurm capture`).

use std::collections::HashSet;

use super::records::slurm_records;
use super::{ImportError, Imported, NotImported, PartitionOut, QosOut, Source, err, group_nodes};
use crate::hostlist;
use crate::units;

/// What `mock-cluster import slurm` reads.
#[derive(Debug, Clone)]
pub(crate) struct SlurmInput {
    /// `scontrol show nodes` (or `scontrol -o show nodes`).
    pub(crate) nodes: Source,
    /// `scontrol show partitions` (or `-o`).
    pub(crate) partitions: Source,
    /// `scontrol show config`, for `ClusterName`.
    pub(crate) config: Option<Source>,
    /// `sacctmgr -n -P show qos` (a header line, as `sacctmgr -P` prints it, is understood).
    pub(crate) qos: Option<Source>,
    /// `--cluster-name`, which wins over the config's `ClusterName`.
    pub(crate) cluster_name: Option<String>,
    /// Lines for the output's header (what was not read, and why).
    pub(crate) notes: Vec<String>,
}

/// Node states that are the node's current use, not its configuration: a simulated node
/// starts idle and comes and goes through these on its own (`scontrol(1)` NODE STATE).
const USE_STATES: &[&str] = &["IDLE", "ALLOCATED", "MIXED", "COMPLETING", "PLANNED"];

/// Node settings the cluster file has no place for, with the value that means "not set"
/// (what `scontrol show nodes` prints for a node configured without them).
const NODE_UNSUPPORTED: &[(&str, &[&str])] = &[
    ("Gres", &["(null)", ""]),
    ("Weight", &["1"]),
    ("TmpDisk", &["0"]),
    ("CoreSpecCount", &[]),
    ("CPUSpecList", &[]),
    ("MemSpecLimit", &[]),
    ("Owner", &["N/A"]),
    ("MCS_label", &["N/A"]),
];

/// Partition settings the cluster file has no place for, with the values Slurm 22.05 prints
/// when they are not set (`scontrol show partitions` of a partition configured with only
/// `Nodes`, `Default`, `MaxTime` and `State`: `tests/fixtures/slurm-22.05-capture/`).
const PARTITION_UNSUPPORTED: &[(&str, &[&str])] = &[
    ("AllowGroups", &["ALL"]),
    ("AllowAccounts", &["ALL"]),
    ("AllowQos", &["ALL"]),
    ("DenyAccounts", &[]),
    ("DenyQos", &[]),
    ("AllocNodes", &["ALL"]),
    ("Alternate", &[]),
    ("DefaultTime", &["NONE"]),
    ("DisableRootJobs", &["NO"]),
    ("ExclusiveUser", &["NO"]),
    ("GraceTime", &["0"]),
    ("Hidden", &["NO"]),
    ("MinNodes", &["0", "1"]),
    ("LLN", &["NO"]),
    ("MaxCPUsPerNode", &["UNLIMITED"]),
    ("MaxCPUsPerSocket", &["UNLIMITED"]),
    ("PriorityJobFactor", &["1"]),
    ("PriorityTier", &["1"]),
    ("RootOnly", &["NO"]),
    ("ReqResv", &["NO"]),
    ("OverSubscribe", &["NO"]),
    ("OverTimeLimit", &["NONE"]),
    ("PreemptMode", &["OFF"]),
    ("SelectTypeParameters", &["NONE"]),
    ("JobDefaults", &["(null)"]),
    ("DefMemPerNode", &["UNLIMITED"]),
    ("DefMemPerCPU", &["UNLIMITED"]),
    ("MaxMemPerNode", &["UNLIMITED"]),
    ("MaxMemPerCPU", &["UNLIMITED"]),
    ("TRESBillingWeights", &[]),
    ("CpuBind", &[]),
    ("PowerDownOnIdle", &["NO"]),
    ("ResumeTimeout", &["GLOBAL"]),
    ("SuspendTimeout", &["GLOBAL"]),
    ("SuspendTime", &["GLOBAL"]),
];

/// The columns of `sacctmgr show qos` in Slurm 22.05 (its default `format`, as the header of
/// `sacctmgr -P show qos` names them: `tests/fixtures/slurm-22.05-capture/sacctmgr-P-show-qos.txt`).
/// `-n` drops the header, so this is what a headerless capture is read with.
const QOS_COLUMNS: &[&str] = &[
    "Name",
    "Priority",
    "GraceTime",
    "Preempt",
    "PreemptExemptTime",
    "PreemptMode",
    "Flags",
    "UsageThres",
    "UsageFactor",
    "GrpTRES",
    "GrpTRESMins",
    "GrpTRESRunMins",
    "GrpJobs",
    "GrpSubmit",
    "GrpWall",
    "MaxTRES",
    "MaxTRESPerNode",
    "MaxTRESMins",
    "MaxWall",
    "MaxTRESPU",
    "MaxJobsPU",
    "MaxSubmitPU",
    "MaxTRESPA",
    "MaxJobsPA",
    "MaxSubmitPA",
    "MinTRES",
];

/// QOS columns whose empty (or listed) value means "not set"; any other value is listed as
/// not imported. Name, Priority, MaxWall, MaxTRES's cpu, MaxJobsPU and MaxSubmitPU are imported.
const QOS_UNSET: &[(&str, &[&str])] = &[
    ("GraceTime", &["00:00:00"]),
    ("PreemptMode", &["cluster"]),
    ("UsageFactor", &["1.000000"]),
];

/// A node name the cluster file can hold (a hostlist of one name).
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains([',', '[', ']', ' ', '\t', '"', '\\'])
}

/// Imports a Slurm cluster.
pub(crate) fn import(input: &SlurmInput) -> Result<Imported, ImportError> {
    let mut not_imported = NotImported::default();
    let cluster_name = cluster_name(input)?;
    let qos = match &input.qos {
        Some(src) => parse_qos(src, &mut not_imported)?,
        None => Vec::new(),
    };
    let nodes = parse_nodes(&input.nodes, &mut not_imported)?;
    let node_names: HashSet<&str> = nodes.iter().map(|n| n.0.as_str()).collect();
    let partitions = parse_partitions(&input.partitions, &node_names, &qos, &mut not_imported)?;
    let mut header = vec![format!(
        "# Imported by `mock-cluster import slurm` from: {}",
        [
            Some(&input.nodes),
            Some(&input.partitions),
            input.config.as_ref(),
            input.qos.as_ref()
        ]
        .into_iter()
        .flatten()
        .map(|s| s.name.clone())
        .collect::<Vec<_>>()
        .join(", ")
    )];
    header.extend(input.notes.iter().cloned());
    Ok(Imported {
        header,
        cluster_name,
        flavor: None,
        sched_interval: input.config.as_ref().and_then(sched_interval),
        nodes: group_nodes(nodes),
        partitions,
        qos,
        not_imported,
    })
}

/// `--cluster-name`, else `ClusterName` from `scontrol show config`: neither `scontrol show
/// nodes` nor `scontrol show partitions` names the cluster.
fn cluster_name(input: &SlurmInput) -> Result<String, ImportError> {
    if let Some(name) = &input.cluster_name {
        return Ok(name.clone());
    }
    let Some(config) = &input.config else {
        return Err(ImportError::new(
            &input.nodes.name,
            1,
            "the cluster's name is not in this output: give --cluster-name NAME, or --config FILE \
             with the output of `scontrol show config`",
        ));
    };
    for (index, line) in config.text.lines().enumerate() {
        if let Some((key, value)) = line.split_once('=')
            && key.trim() == "ClusterName"
        {
            let name = value.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(err(
                    config,
                    index + 1,
                    format!("bad ClusterName `{}`", super::records::shorten(name)),
                ));
            }
            return Ok(name.to_string());
        }
    }
    Err(err(
        config,
        1,
        "no `ClusterName = ...` line (expected the output of `scontrol show config`)",
    ))
}

/// The periodic scheduling pass of `scontrol show config`: the smaller of the main scheduler's
/// `sched_interval` (60 s by default) and, with `sched/backfill`, backfill's `bf_interval` (30 s
/// by default), from `SchedulerParameters` (slurm.conf(5)); `None` when it is the stock 30 s.
fn sched_interval(config: &Source) -> Option<f64> {
    let mut scheduler = "sched/backfill";
    let mut parameters = "";
    for line in config.text.lines() {
        if let Some((key, value)) = line.split_once('=') {
            match key.trim() {
                "SchedulerType" => scheduler = value.trim(),
                "SchedulerParameters" => parameters = value.trim(),
                _ => {}
            }
        }
    }
    let setting = |name: &str, default: f64| {
        parameters
            .split(',')
            .find_map(|p| p.trim().strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            // A value of 0 or less turns a pass off (sched_interval=-1): the other one counts.
            .filter(|v: &f64| *v > 0.0)
            .unwrap_or(if parameters.contains(&format!("{name}=")) {
                f64::INFINITY
            } else {
                default
            })
    };
    let main = setting("sched_interval", 60.0);
    let interval = if scheduler == "sched/backfill" {
        main.min(setting("bf_interval", 30.0))
    } else {
        main
    };
    (interval.is_finite() && interval != 30.0).then_some(interval)
}

type NodeShape = (String, u32, u64, Vec<String>);

fn parse_nodes(
    src: &Source,
    not_imported: &mut NotImported,
) -> Result<Vec<NodeShape>, ImportError> {
    let records = slurm_records(&src.text, &src.name)?;
    let mut nodes: Vec<NodeShape> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for record in &records {
        let Some(first) = record.fields.first() else {
            continue;
        };
        if first.key != "NodeName" {
            return Err(err(
                src,
                record.line,
                format!(
                    "expected a `NodeName=` record (the output of `scontrol show nodes`), found `{}=`",
                    first.key
                ),
            ));
        }
        let name = first.value.as_str();
        if !valid_name(name) {
            return Err(err(
                src,
                record.line,
                format!("bad node name `{}`", super::records::shorten(name)),
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
        let total_text = record.required(src, &what, "CPUTot", "=")?;
        let cpus_of = |key: &str, text: &str| -> Result<u32, ImportError> {
            text.parse::<u32>()
                .ok()
                .filter(|n| (1..=65_535).contains(n))
                .ok_or_else(|| {
                    err(
                        src,
                        record.line_of(key),
                        format!("{what}: `{key}={text}` is not a number of CPUs (1 to 65535)"),
                    )
                })
        };
        let total = cpus_of("CPUTot", total_text)?;
        // CPUEfctv (22.05): the CPUs jobs may use, CPUTot less the cores kept for the system
        // (CoreSpecCount, CPUSpecList): what the simulated node offers jobs.
        let cpus = match record.get("CPUEfctv") {
            Some(text) => cpus_of("CPUEfctv", text)?,
            None => total,
        };
        if cpus != total {
            not_imported.node(name, format!("CPUTot={total} (CPUEfctv={cpus} imported)"));
        }
        let memory_text = record.required(src, &what, "RealMemory", "=")?;
        let memory_mb = memory_text.parse::<u64>().map_err(|_| {
            err(
                src,
                record.line_of("RealMemory"),
                format!(
                    "{what}: `RealMemory={memory_text}`: unknown unit or not a number (scontrol prints whole megabytes)"
                ),
            )
        })?;
        let features = match record.get("AvailableFeatures") {
            None | Some("(null)") | Some("") => Vec::new(),
            Some(list) => list.split(',').map(str::to_string).collect(),
        };
        if let Some(active) = record.get("ActiveFeatures")
            && active != record.get("AvailableFeatures").unwrap_or("(null)")
        {
            not_imported.node(name, format!("ActiveFeatures={active}"));
        }
        for (key, unset) in NODE_UNSUPPORTED {
            if let Some(value) = record.get(key)
                && !unset.contains(&value)
            {
                not_imported.node(name, format!("{key}={value}"));
            }
        }
        if let Some(state) = record.get("State")
            && !state.split('+').all(|s| USE_STATES.contains(&s))
        {
            let reason = record
                .get("Reason")
                .map(|r| format!(" Reason={r}"))
                .unwrap_or_default();
            not_imported.node(name, format!("State={state}{reason}"));
        }
        nodes.push((name.to_string(), cpus, memory_mb, features));
    }
    if nodes.is_empty() {
        return Err(err(
            src,
            1,
            "no nodes (expected the output of `scontrol show nodes`)",
        ));
    }
    Ok(nodes)
}

fn parse_partitions(
    src: &Source,
    nodes: &HashSet<&str>,
    qos: &[QosOut],
    not_imported: &mut NotImported,
) -> Result<Vec<PartitionOut>, ImportError> {
    let records = slurm_records(&src.text, &src.name)?;
    let mut partitions: Vec<PartitionOut> = Vec::new();
    for record in &records {
        let Some(first) = record.fields.first() else {
            continue;
        };
        if first.key != "PartitionName" {
            return Err(err(
                src,
                record.line,
                format!(
                    "expected a `PartitionName=` record (the output of `scontrol show partitions`), found `{}=`",
                    first.key
                ),
            ));
        }
        let name = first.value.clone();
        if name.is_empty() || name.contains(['"', '\\', ',']) {
            return Err(err(
                src,
                record.line,
                format!("bad partition name `{}`", super::records::shorten(&name)),
            ));
        }
        if partitions.iter().any(|p| p.name == name) {
            return Err(err(
                src,
                record.line,
                format!("partition `{name}` is listed twice"),
            ));
        }
        let what = format!("partition `{name}`");
        let node_list = record.required(src, &what, "Nodes", "=")?;
        let max_time = record.required(src, &what, "MaxTime", "=")?;
        let state = record.required(src, &what, "State", "=")?;
        units::parse_time_limit(max_time).map_err(|_| {
            err(
                src,
                record.line_of("MaxTime"),
                format!("{what}: `MaxTime={max_time}` is not a Slurm time"),
            )
        })?;
        if !["UP", "DOWN", "DRAIN", "INACTIVE"].contains(&state) {
            return Err(err(
                src,
                record.line_of("State"),
                format!("{what}: `State={state}`: expected UP, DOWN, DRAIN or INACTIVE"),
            ));
        }
        let default = match record.get("Default") {
            None | Some("NO") => false,
            Some("YES") => true,
            Some(other) => {
                return Err(err(
                    src,
                    record.line_of("Default"),
                    format!("{what}: `Default={other}`: expected YES or NO"),
                ));
            }
        };
        if default && partitions.iter().any(|p| p.default) {
            return Err(err(
                src,
                record.line_of("Default"),
                format!("{what}: a second default partition"),
            ));
        }
        let max_nodes = match record.get("MaxNodes") {
            None | Some("UNLIMITED") => None,
            Some(text) => Some(text.parse::<u32>().map_err(|_| {
                err(
                    src,
                    record.line_of("MaxNodes"),
                    format!("{what}: `MaxNodes={text}` is not a number of nodes"),
                )
            })?),
        };
        let qos_name = match record.get("QoS") {
            None | Some("N/A") => None,
            Some(q) if qos.iter().any(|d| d.name == q) => Some(q.to_string()),
            Some(q) => {
                not_imported.other(format!(
                    "partition {name}: QoS={q} (no `sacctmgr show qos` line defines it)"
                ));
                None
            }
        };
        for (key, unset) in PARTITION_UNSUPPORTED {
            if let Some(value) = record.get(key)
                && !unset.contains(&value)
            {
                not_imported.other(format!("partition {name}: {key}={value}"));
            }
        }
        if node_list == "(null)" || node_list.is_empty() {
            not_imported.other(format!(
                "partition {name}: it has no nodes (Nodes={node_list})"
            ));
            continue;
        }
        let members = hostlist::expand(node_list).map_err(|e| {
            err(
                src,
                record.line_of("Nodes"),
                format!("{what}: `Nodes={node_list}`: {e}"),
            )
        })?;
        if let Some(unknown) = members.iter().find(|m| !nodes.contains(m.as_str())) {
            return Err(err(
                src,
                record.line_of("Nodes"),
                format!("{what}: node `{unknown}` is not in the nodes' output"),
            ));
        }
        partitions.push(PartitionOut {
            name,
            nodes: members,
            default,
            max_time: max_time.to_string(),
            max_nodes,
            state: state.to_string(),
            qos: qos_name,
        });
    }
    if partitions.is_empty() {
        return Err(err(
            src,
            1,
            "no partitions with nodes (expected the output of `scontrol show partitions`)",
        ));
    }
    if !partitions.iter().any(|p| p.default) {
        // Slurm refuses a job that names no partition then; a cluster file cannot say so,
        // and the simulated cluster would take the first partition.
        not_imported.other(
            "no partition is the default (Default=YES): Slurm refuses jobs that name none (`No partition specified or system default partition`); the simulated cluster takes the first".to_string(),
        );
    }
    Ok(partitions)
}

/// `sacctmgr -n -P show qos`: `|`-separated, in [`QOS_COLUMNS`] order unless a header line
/// (`sacctmgr -P` without `-n`) names the columns.
fn parse_qos(src: &Source, not_imported: &mut NotImported) -> Result<Vec<QosOut>, ImportError> {
    let mut columns: Vec<String> = QOS_COLUMNS.iter().map(|c| c.to_string()).collect();
    let mut out: Vec<QosOut> = Vec::new();
    for (index, line) in src.text.lines().enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        if out.is_empty() && fields.first() == Some(&"Name") && fields.contains(&"Priority") {
            columns = fields.iter().map(|c| c.to_string()).collect();
            continue;
        }
        if fields.len() != columns.len() {
            return Err(err(
                src,
                line_no,
                format!(
                    "expected {} `|`-separated fields (the output of `sacctmgr -n -P show qos`), found {}",
                    columns.len(),
                    fields.len()
                ),
            ));
        }
        let get = |col: &str| -> &str {
            columns
                .iter()
                .position(|c| c == col)
                .and_then(|i| fields.get(i).copied())
                .unwrap_or("")
        };
        let name = get("Name");
        if name.is_empty() || name.contains(['"', '\\']) {
            return Err(err(src, line_no, "a QOS without a name"));
        }
        let number = |col: &str| -> Result<Option<u32>, ImportError> {
            match get(col) {
                "" => Ok(None),
                text => text.parse::<u32>().map(Some).map_err(|_| {
                    err(
                        src,
                        line_no,
                        format!("QOS `{name}`: `{col}` is `{text}`, not a whole number"),
                    )
                }),
            }
        };
        let max_wall = match get("MaxWall") {
            "" => None,
            text => {
                units::parse_time_limit(text).map_err(|_| {
                    err(
                        src,
                        line_no,
                        format!("QOS `{name}`: `MaxWall` is `{text}`, not a Slurm time"),
                    )
                })?;
                Some(text.to_string())
            }
        };
        // MaxTRES is per job (`cpu=8,mem=16G`): its cpu part is imported, the rest listed.
        let mut max_cpus_per_job = None;
        let mut other_tres = Vec::new();
        for tres in get("MaxTRES").split(',').filter(|t| !t.is_empty()) {
            match tres.strip_prefix("cpu=").map(str::parse::<u32>) {
                Some(Ok(n)) => max_cpus_per_job = Some(n),
                _ => other_tres.push(tres),
            }
        }
        let qos = QosOut {
            name: name.to_string(),
            priority: number("Priority")?.unwrap_or(0),
            max_wall,
            max_cpus_per_job,
            max_jobs_per_user: number("MaxJobsPU")?,
            max_submit_jobs_per_user: number("MaxSubmitPU")?,
        };
        for (col, value) in columns.iter().zip(&fields) {
            if ["Name", "Priority", "MaxWall", "MaxJobsPU", "MaxSubmitPU"].contains(&col.as_str())
                || value.is_empty()
            {
                continue;
            }
            if col == "MaxTRES" {
                if !other_tres.is_empty() {
                    not_imported.other(format!("qos {name}: MaxTRES={}", other_tres.join(",")));
                }
                continue;
            }
            let unset = QOS_UNSET
                .iter()
                .find(|(c, _)| c == col)
                .is_some_and(|(_, values)| values.contains(value));
            if !unset {
                not_imported.other(format!("qos {name}: {col}={value}"));
            }
        }
        if out.iter().any(|q| q.name == qos.name) {
            return Err(err(src, line_no, format!("QOS `{name}` is listed twice")));
        }
        out.push(qos);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn source(name: &str, text: &str) -> Source {
        Source {
            name: name.into(),
            text: text.into(),
        }
    }

    fn input(nodes: &str, partitions: &str) -> SlurmInput {
        SlurmInput {
            nodes: source("nodes.txt", nodes),
            partitions: source("partitions.txt", partitions),
            config: None,
            qos: None,
            cluster_name: Some("c".into()),
            notes: Vec::new(),
        }
    }

    const NODE: &str = "NodeName=n1 CPUTot=2 CPUEfctv=2 RealMemory=100 State=IDLE\n";
    const PART: &str = "PartitionName=p Nodes=n1 Default=YES MaxTime=UNLIMITED State=UP\n";

    #[test]
    fn errors_name_the_file_and_line() {
        let cases = [
            (
                input("NodeName=n1 CPUTot=2\n", PART),
                "nodes.txt:1: node `n1`: no `RealMemory=`",
            ),
            (
                input("NodeName=n1 CPUTot=2\n   RealMemory=16G\n", PART),
                "nodes.txt:2: node `n1`: `RealMemory=16G`: unknown unit or not a number (scontrol prints whole megabytes)",
            ),
            (
                input(NODE, "PartitionName=p Nodes=n[1-2] MaxTime=1 State=UP\n"),
                "partitions.txt:1: partition `p`: node `n2` is not in the nodes' output",
            ),
            (
                input(NODE, "PartitionName=p Nodes=n1\n   MaxTime=soon State=UP\n"),
                "partitions.txt:2: partition `p`: `MaxTime=soon` is not a Slurm time",
            ),
            (
                input(PART, NODE),
                "nodes.txt:1: expected a `NodeName=` record (the output of `scontrol show nodes`), found `PartitionName=`",
            ),
            (
                input("", PART),
                "nodes.txt:1: no nodes (expected the output of `scontrol show nodes`)",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(import(&input).unwrap_err().to_string(), expected);
        }
        let mut no_name = input(NODE, PART);
        no_name.cluster_name = None;
        assert_eq!(
            import(&no_name).unwrap_err().to_string(),
            "nodes.txt:1: the cluster's name is not in this output: give --cluster-name NAME, or --config FILE with the output of `scontrol show config`"
        );
    }

    #[test]
    fn the_periodic_pass_comes_from_the_scheduler_parameters() {
        let config = |text: &str| Source {
            name: "config.txt".into(),
            text: text.into(),
        };
        let stock = "SchedulerParameters     = (null)\nSchedulerType           = sched/backfill\n";
        assert_eq!(sched_interval(&config(stock)), None);
        let ci = "SchedulerParameters     = sched_interval=1,bf_interval=1\nSchedulerType           = sched/backfill\n";
        assert_eq!(sched_interval(&config(ci)), Some(1.0));
        let builtin = "SchedulerType           = sched/builtin\n";
        assert_eq!(sched_interval(&config(builtin)), Some(60.0));
        let no_main = "SchedulerParameters     = sched_interval=-1,bf_interval=45\n";
        assert_eq!(sched_interval(&config(no_main)), Some(45.0));
    }

    #[test]
    fn a_cluster_without_a_default_partition_says_so() {
        let imported = import(&input(
            "NodeName=n1 CPUTot=4 CPUEfctv=4 RealMemory=1000 State=IDLE\n",
            "PartitionName=p Nodes=n1 Default=NO MaxTime=UNLIMITED State=UP\n",
        ))
        .unwrap();
        assert!(!imported.partitions[0].default);
        assert_eq!(
            imported.not_imported.comment_lines(),
            [
                "# not imported: no partition is the default (Default=YES): Slurm refuses jobs that name none (`No partition specified or system default partition`); the simulated cluster takes the first"
            ]
        );
    }

    #[test]
    fn qos_limits_in_the_sacctmgr_columns() {
        // The 26 columns of Slurm 22.05's `sacctmgr -n -P show qos` (QOS_COLUMNS), here with
        // Priority 100, MaxWall 2:00:00, MaxTRES cpu=16 (and a GPU count the cluster file
        // cannot hold), MaxJobsPU 2, MaxSubmitPU 20 and a GrpTRES limit.
        let mut fields = vec![""; QOS_COLUMNS.len()];
        for (column, value) in [
            ("Name", "ci"),
            ("Priority", "100"),
            ("GraceTime", "00:00:00"),
            ("PreemptMode", "cluster"),
            ("UsageFactor", "1.000000"),
            ("GrpTRES", "cpu=8"),
            ("MaxWall", "2:00:00"),
            ("MaxTRES", "cpu=16,gres/gpu=2"),
            ("MaxJobsPU", "2"),
            ("MaxSubmitPU", "20"),
        ] {
            let index = QOS_COLUMNS.iter().position(|c| *c == column).unwrap();
            fields[index] = value;
        }
        let text = fields.join("|") + "\n";
        let mut notes = NotImported::default();
        let qos = parse_qos(&source("qos.txt", &text), &mut notes).unwrap();
        assert_eq!(
            qos,
            vec![QosOut {
                name: "ci".into(),
                priority: 100,
                max_wall: Some("2:00:00".into()),
                max_cpus_per_job: Some(16),
                max_jobs_per_user: Some(2),
                max_submit_jobs_per_user: Some(20),
            }]
        );
        assert_eq!(
            notes.comment_lines(),
            vec![
                "# not imported: qos ci: GrpTRES=cpu=8",
                "# not imported: qos ci: MaxTRES=gres/gpu=2"
            ]
        );
        assert_eq!(
            parse_qos(&source("qos.txt", "normal|0\n"), &mut notes)
                .unwrap_err()
                .to_string(),
            "qos.txt:1: expected 26 `|`-separated fields (the output of `sacctmgr -n -P show qos`), found 2"
        );
    }

    proptest! {
        #[test]
        fn import_never_panics(nodes in "(?s).{0,300}", parts in "(?s).{0,300}", qos in "(?s).{0,200}") {
            let mut i = input(&nodes, &parts);
            i.qos = Some(source("q", &qos));
            i.config = Some(source("c", &qos));
            i.cluster_name = None;
            let _ = import(&i);
        }

        #[test]
        fn record_shaped_input_never_panics(
            name in "[a-z\\[\\]0-9,-]{0,12}",
            cpus in "[0-9a-z-]{0,8}",
            mem in "[0-9A-Z]{0,8}",
            nodes in "[a-z\\[\\]0-9,-]{0,12}",
            time in "[0-9:-]{0,10}|UNLIMITED",
        ) {
            let n = format!("NodeName={name} CPUTot={cpus} RealMemory={mem}\n");
            let p = format!("PartitionName=p Nodes={nodes} MaxTime={time} State=UP MaxNodes={cpus}\n");
            let _ = import(&input(&n, &p));
        }
    }
}
