//! `mock-cluster import`: a cluster file built from what a real cluster reports.
//!
//! An admin captures the scheduler's own description of its nodes and partitions (queues) on a
//! login node; the importer turns it into the TOML of `mock-cluster`'s cluster file. What the
//! cluster file cannot express is never guessed: it is listed as `# not imported: ...` comments
//! at the top of the output, with the node, partition or QOS and the value.

pub(crate) mod pbs;
pub(crate) mod records;
pub(crate) mod slurm;

use thiserror::Error;

/// Input the importer cannot use; names the file (or the command whose output it was) and the
/// 1-based line.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{file}:{line}: {message}")]
pub(crate) struct ImportError {
    /// The file, or the command whose output was read (`scontrol show nodes`).
    pub(crate) file: String,
    /// 1-based line of the offending text.
    pub(crate) line: usize,
    /// What is wrong with it.
    pub(crate) message: String,
}

impl ImportError {
    pub(crate) fn new(file: &str, line: usize, message: impl Into<String>) -> ImportError {
        ImportError {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }
}

/// One captured output: its text and the name errors give it.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The name in errors and in the output's header: a path or a command line.
    pub(crate) name: String,
    /// What the command printed.
    pub(crate) text: String,
}

/// An error at `line` of the captured output `src`.
pub(crate) fn err(src: &Source, line: usize, message: impl Into<String>) -> ImportError {
    ImportError::new(&src.name, line, message)
}

/// What the importer could not carry into the cluster file: `(subject, setting)` pairs in the
/// order met, merged so that one setting shared by many nodes is one line.
#[derive(Debug, Default)]
pub(crate) struct NotImported {
    node_notes: Vec<(String, Vec<String>)>,
    notes: Vec<String>,
}

impl NotImported {
    /// A node's setting; nodes with the same setting are listed together as a hostlist.
    pub(crate) fn node(&mut self, node: &str, setting: String) {
        match self.node_notes.iter_mut().find(|(s, _)| *s == setting) {
            Some((_, nodes)) => nodes.push(node.to_string()),
            None => self.node_notes.push((setting, vec![node.to_string()])),
        }
    }

    /// Any other setting (`partition batch: MaxCPUsPerNode=4`).
    pub(crate) fn other(&mut self, note: String) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// The `# not imported: ...` lines.
    pub(crate) fn comment_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .node_notes
            .iter()
            .map(|(setting, nodes)| {
                format!(
                    "# not imported: {} {}: {setting}",
                    if nodes.len() == 1 { "node" } else { "nodes" },
                    crate::hostlist::compress(nodes)
                )
            })
            .collect();
        lines.extend(self.notes.iter().map(|n| format!("# not imported: {n}")));
        lines
    }
}

/// A node shape of the output: nodes with the same CPUs, memory and features.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeGroup {
    pub(crate) names: Vec<String>,
    pub(crate) cpus: u32,
    pub(crate) memory_mb: u64,
    pub(crate) features: Vec<String>,
}

/// One partition (or queue) of the output.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PartitionOut {
    pub(crate) name: String,
    pub(crate) nodes: Vec<String>,
    pub(crate) default: bool,
    /// A Slurm time string (`UNLIMITED`, `30:00`, `2-00:00:00`).
    pub(crate) max_time: String,
    pub(crate) max_nodes: Option<u32>,
    pub(crate) state: String,
    pub(crate) qos: Option<String>,
}

/// One QOS of the output.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QosOut {
    pub(crate) name: String,
    pub(crate) priority: u32,
    pub(crate) max_wall: Option<String>,
    pub(crate) max_cpus_per_job: Option<u32>,
    pub(crate) max_jobs_per_user: Option<u32>,
    pub(crate) max_submit_jobs_per_user: Option<u32>,
}

/// Everything an import found, ready to be written as a cluster file.
#[derive(Debug, Default)]
pub(crate) struct Imported {
    pub(crate) header: Vec<String>,
    pub(crate) cluster_name: String,
    pub(crate) flavor: Option<&'static str>,
    /// The periodic scheduling pass, when it is not the stock 30 s.
    pub(crate) sched_interval: Option<f64>,
    pub(crate) nodes: Vec<NodeGroup>,
    pub(crate) partitions: Vec<PartitionOut>,
    pub(crate) qos: Vec<QosOut>,
    pub(crate) not_imported: NotImported,
}

/// Groups nodes `(name, cpus, memory, features)` by shape, in the order shapes are first met.
pub(crate) fn group_nodes(nodes: Vec<(String, u32, u64, Vec<String>)>) -> Vec<NodeGroup> {
    let mut groups: Vec<NodeGroup> = Vec::new();
    for (name, cpus, memory_mb, features) in nodes {
        match groups
            .iter_mut()
            .find(|g| g.cpus == cpus && g.memory_mb == memory_mb && g.features == features)
        {
            Some(g) => g.names.push(name),
            None => groups.push(NodeGroup {
                names: vec![name],
                cpus,
                memory_mb,
                features,
            }),
        }
    }
    groups
}

/// A TOML basic string.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl Imported {
    /// The cluster file's text.
    pub(crate) fn to_toml(&self) -> String {
        let mut out = String::new();
        for line in self
            .header
            .iter()
            .chain(self.not_imported.comment_lines().iter())
        {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&format!("cluster_name = {}\n", quoted(&self.cluster_name)));
        if let Some(flavor) = self.flavor {
            out.push_str(&format!("flavor = {}\n", quoted(flavor)));
        }
        if let Some(interval) = self.sched_interval {
            out.push_str(&format!("sched_interval = {interval:?}\n"));
        }
        for g in &self.nodes {
            out.push_str("\n[[nodes]]\n");
            out.push_str(&format!(
                "names = {}\n",
                quoted(&crate::hostlist::compress(&g.names))
            ));
            out.push_str(&format!("cpus = {}\n", g.cpus));
            out.push_str(&format!("memory_mb = {}\n", g.memory_mb));
            if !g.features.is_empty() {
                let list: Vec<String> = g.features.iter().map(|f| quoted(f)).collect();
                out.push_str(&format!("features = [{}]\n", list.join(", ")));
            }
        }
        for p in &self.partitions {
            out.push_str("\n[[partitions]]\n");
            out.push_str(&format!("name = {}\n", quoted(&p.name)));
            out.push_str(&format!(
                "nodes = {}\n",
                quoted(&crate::hostlist::compress(&p.nodes))
            ));
            if p.default {
                out.push_str("default = true\n");
            }
            out.push_str(&format!("max_time = {}\n", quoted(&p.max_time)));
            if let Some(n) = p.max_nodes {
                out.push_str(&format!("max_nodes = {n}\n"));
            }
            out.push_str(&format!("state = {}\n", quoted(&p.state)));
            if let Some(q) = &p.qos {
                out.push_str(&format!("qos = {}\n", quoted(q)));
            }
        }
        for q in &self.qos {
            out.push_str("\n[[qos]]\n");
            out.push_str(&format!("name = {}\n", quoted(&q.name)));
            if let Some(n) = q.max_jobs_per_user {
                out.push_str(&format!("max_jobs_per_user = {n}\n"));
            }
            if let Some(n) = q.max_submit_jobs_per_user {
                out.push_str(&format!("max_submit_jobs_per_user = {n}\n"));
            }
            if let Some(w) = &q.max_wall {
                out.push_str(&format!("max_wall = {}\n", quoted(w)));
            }
            if let Some(n) = q.max_cpus_per_job {
                out.push_str(&format!("max_cpus_per_job = {n}\n"));
            }
            out.push_str(&format!("priority = {}\n", q.priority));
        }
        out
    }
}

/// `mock-cluster import <scheduler>`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ImportCommand {
    /// From `scontrol show nodes` and `scontrol show partitions` (either form), or --live
    #[command(after_help = SLURM_EXAMPLES)]
    Slurm {
        /// Output of `scontrol show nodes` (or `scontrol -o show nodes`)
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "live",
            conflicts_with = "live"
        )]
        nodes: Option<std::path::PathBuf>,
        /// Output of `scontrol show partitions` (or `scontrol -o show partitions`)
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "live",
            conflicts_with = "live"
        )]
        partitions: Option<std::path::PathBuf>,
        /// Output of `scontrol show config`, for the cluster's name (ClusterName)
        #[arg(long, value_name = "FILE", conflicts_with = "live")]
        config: Option<std::path::PathBuf>,
        /// Output of `sacctmgr -n -P show qos`, for QOS and their limits
        #[arg(long, value_name = "FILE", conflicts_with = "live")]
        qos: Option<std::path::PathBuf>,
        /// The cluster's name (else ClusterName from --config or, with --live, scontrol show config)
        #[arg(long, value_name = "NAME")]
        cluster_name: Option<String>,
        /// Run scontrol (and sacctmgr, when on PATH) of the cluster this machine reaches
        #[arg(long)]
        live: bool,
    },
    /// From `pbsnodes -av` and `qstat -Qf` (flavor = "pbs")
    #[command(after_help = PBS_EXAMPLES)]
    Pbs {
        /// Output of `pbsnodes -av`
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "live",
            conflicts_with = "live"
        )]
        nodes: Option<std::path::PathBuf>,
        /// Output of `qstat -Qf`
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "live",
            conflicts_with = "live"
        )]
        queues: Option<std::path::PathBuf>,
        /// Output of `qmgr -c 'p s'`, for the default queue (else the first queue is the default)
        #[arg(long, value_name = "FILE", conflicts_with = "live")]
        server: Option<std::path::PathBuf>,
        /// The cluster's name (the PBS server's name; neither output has it)
        #[arg(long, value_name = "NAME")]
        cluster_name: String,
        /// Run pbsnodes, qstat (and qmgr, when it answers) of the server this machine reaches
        #[arg(long)]
        live: bool,
    },
}

/// Examples of `import` (`mock-cluster import --help`).
pub(crate) const IMPORT_EXAMPLES: &str = "Examples:
  # on the site's login node
  scontrol show nodes >nodes.txt; scontrol show partitions >partitions.txt
  scontrol show config >config.txt; sacctmgr -n -P show qos >qos.txt
  # anywhere
  mock-cluster import slurm --nodes nodes.txt --partitions partitions.txt \\
      --config config.txt --qos qos.txt >site.toml
  mock-cluster import slurm --live >site.toml     # on the login node itself
  mock-cluster import pbs --nodes pbsnodes.txt --queues queues.txt --server server.txt \\
      --cluster-name pbs01 >site.toml
  eval \"$(mock-cluster env --config site.toml)\"

What the cluster file cannot hold is listed as `# not imported: ...` lines at its top.";

const SLURM_EXAMPLES: &str = "Examples:
  mock-cluster import slurm --nodes nodes.txt --partitions partitions.txt \\
      --config config.txt --qos qos.txt >site.toml
  mock-cluster import slurm --nodes nodes.txt --partitions partitions.txt \\
      --cluster-name site >site.toml
  mock-cluster import slurm --live >site.toml
      # runs scontrol show nodes|partitions|config and sacctmgr -n -P show qos

The files hold what `scontrol show nodes`, `scontrol show partitions` (or their -o forms),
`scontrol show config` and `sacctmgr -n -P show qos` printed. GRES, node weights, MaxCPUsPerNode,
DefMemPerNode, AllowGroups and other settings a cluster file cannot hold are listed as
`# not imported: ...` lines at the top of the output.";

const PBS_EXAMPLES: &str = "Examples:
  pbsnodes -av >pbsnodes.txt; qstat -Qf >queues.txt; qmgr -c 'p s' >server.txt
  mock-cluster import pbs --nodes pbsnodes.txt --queues queues.txt --server server.txt \\
      --cluster-name pbs01 >site.toml
  mock-cluster import pbs --live --cluster-name pbs01 >site.toml   # on a PBS login node

Nodes: resources_available.ncpus and .mem. Queues: execution queues, resources_max.walltime,
resources_max.nodect, enabled/started (UP, DOWN, DRAIN, INACTIVE); nodes tied to a queue
(`queue` attribute) belong to it only. What a cluster file cannot hold is listed as
`# not imported: ...` lines at the top of the output.";

/// Reads a file into a [`Source`] named by the path as given.
fn read(path: &std::path::Path) -> Result<Source, i32> {
    let name = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => Ok(Source {
            name,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }),
        Err(e) => {
            eprintln!("mock-cluster: error: {name}: cannot read: {e}");
            Err(2)
        }
    }
}

/// How a live command ended when it gave no usable output.
#[derive(Debug, Error)]
enum RunError {
    #[error("not found on PATH")]
    NotFound,
    #[error("{0}")]
    Failed(String),
}

/// Runs a command from PATH; its stdout, named by the command line.
fn run_command(argv: &[&str]) -> Result<Source, RunError> {
    let name = argv.join(" ");
    let out = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => RunError::NotFound,
            _ => RunError::Failed(e.to_string()),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or("").trim().to_string();
        return Err(RunError::Failed(format!("{}: {first}", out.status)));
    }
    Ok(Source {
        name,
        text: String::from_utf8_lossy(&out.stdout).into_owned(),
    })
}

/// Runs `mock-cluster import ...`: prints the cluster file, or an error and exit code 2 (bad
/// input) or 1 (a live command failed).
pub(crate) fn run(cmd: ImportCommand) -> Result<(), i32> {
    let imported = match cmd {
        ImportCommand::Slurm {
            nodes,
            partitions,
            config,
            qos,
            cluster_name,
            live,
        } => {
            let input = if live {
                live_slurm(cluster_name)?
            } else {
                // clap makes --nodes and --partitions required without --live.
                let (Some(nodes), Some(partitions)) = (nodes, partitions) else {
                    eprintln!(
                        "mock-cluster: error: --nodes and --partitions are required without --live"
                    );
                    return Err(2);
                };
                slurm::SlurmInput {
                    nodes: read(&nodes)?,
                    partitions: read(&partitions)?,
                    config: config.as_deref().map(read).transpose()?,
                    qos: qos.as_deref().map(read).transpose()?,
                    cluster_name,
                    notes: Vec::new(),
                }
            };
            slurm::import(&input)
        }
        ImportCommand::Pbs {
            nodes,
            queues,
            server,
            cluster_name,
            live,
        } => {
            let input = if live {
                live_pbs(cluster_name)?
            } else {
                // clap makes --nodes and --queues required without --live.
                let (Some(nodes), Some(queues)) = (nodes, queues) else {
                    eprintln!(
                        "mock-cluster: error: --nodes and --queues are required without --live"
                    );
                    return Err(2);
                };
                pbs::PbsInput {
                    nodes: read(&nodes)?,
                    queues: read(&queues)?,
                    server: server.as_deref().map(read).transpose()?,
                    cluster_name,
                }
            };
            pbs::import(&input)
        }
    };
    match imported {
        Ok(imported) => {
            print!("{}", imported.to_toml());
            Ok(())
        }
        Err(e) => {
            eprintln!("mock-cluster: error: {e}");
            Err(2)
        }
    }
}

/// A command `--live` cannot do without: its output, or its error said and exit code 1.
fn must(argv: &[&str]) -> Result<Source, i32> {
    run_command(argv).map_err(|e| {
        eprintln!("mock-cluster: error: `{}`: {e}", argv.join(" "));
        1
    })
}

/// `--live`: what the PBS commands on PATH say now. `qmgr -c 'p s'` may be refused to
/// users who are not managers: then the first queue is the default, as without `--server`.
fn live_pbs(cluster_name: String) -> Result<pbs::PbsInput, i32> {
    Ok(pbs::PbsInput {
        nodes: must(&["pbsnodes", "-av"])?,
        queues: must(&["qstat", "-Qf"])?,
        server: run_command(&["qmgr", "-c", "p s"]).ok(),
        cluster_name,
    })
}

/// `--live`: what the Slurm commands on PATH say now.
fn live_slurm(cluster_name: Option<String>) -> Result<slurm::SlurmInput, i32> {
    let nodes = must(&["scontrol", "show", "nodes"])?;
    let partitions = must(&["scontrol", "show", "partitions"])?;
    // Also with --cluster-name: the scheduler's passes are there too.
    let config = Some(must(&["scontrol", "show", "config"])?);
    let mut notes = Vec::new();
    // QOS live in slurmdbd: a cluster without accounting (or without sacctmgr) has none to give.
    let qos = match run_command(&["sacctmgr", "-n", "-P", "show", "qos"]) {
        Ok(src) => Some(src),
        Err(e) => {
            notes.push(format!(
                "# QOS not imported: `sacctmgr -n -P show qos`: {e}"
            ));
            None
        }
    };
    Ok(slurm::SlurmInput {
        nodes,
        partitions,
        config,
        qos,
        cluster_name,
        notes,
    })
}
