//! Fake `sinfo`.

use super::{CONNECT_FAILURE, SOCKET_TIMEOUT};
use crate::cli::Call;
use crate::cli::getopt::{HasArg::*, Opt, opt};
use crate::config::Cluster;
use crate::protocol::{NodeUsage, Request, Response};
use crate::units;

use super::format::{parse_format, render};

const SPEC: &[Opt] = &[
    opt("all", Some('a'), No),
    opt("format", Some('o'), Required),
    opt("help", None, No),
    opt("long", Some('l'), No),
    opt("Node", Some('N'), No),
    opt("noheader", Some('h'), No),
    opt("partition", Some('p'), Required),
    opt("summarize", Some('s'), No),
    opt("usage", None, No),
    opt("version", Some('V'), No),
    opt("verbose", Some('v'), No),
];

const HELP: &str = "Usage: sinfo [OPTIONS]

Fake sinfo of mock-cluster: partitions and nodes of the simulated cluster.

  -h, --noheader             no headers on output
  -N, --Node                 one line per node
  -o, --format=format        format specification (%P %a %l %D %t %N %c %m %T %C)
  -p, --partition=partition  only this partition

Examples:
  sinfo
  sinfo -N -h -o '%N %T %C'
";

/// A node with its current use.
type Member = (crate::config::Node, NodeUsage);

fn node_state(u: &NodeUsage, cpus: u32, long: bool) -> &'static str {
    let s = if u.down {
        ("down", "down")
    } else if u.alloc_cpus == 0 {
        ("idle", "idle")
    } else if u.alloc_cpus >= cpus {
        ("alloc", "allocated")
    } else {
        ("mix", "mixed")
    };
    if long { s.1 } else { s.0 }
}

/// Runs sinfo; returns the exit code.
pub fn main(call: &mut Call) -> i32 {
    let cli = match super::parse_command_line(call, SPEC, false, 1, true, HELP) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let conn = match call.conn() {
        Ok(c) => c,
        Err(e) => {
            call.unreachable(&e, &format!("slurm_load_partitions: {CONNECT_FAILURE}"));
            return 1;
        }
    };
    let (cluster, usage): (Cluster, Vec<NodeUsage>) = match conn.call(&Request::Cluster {
        status_command: true,
    }) {
        Ok(Response::Cluster { cluster, usage, .. }) => (*cluster, usage),
        Ok(Response::StatusTimeout) => {
            eprintln!("slurm_load_partitions: {SOCKET_TIMEOUT}");
            return 1;
        }
        Ok(Response::Error { message, .. }) => {
            eprintln!("slurm_load_partitions: {message}");
            return 1;
        }
        _ => {
            eprintln!("slurm_load_partitions: {CONNECT_FAILURE}");
            return 1;
        }
    };
    let node_mode = cli.has("Node");
    let fmt = cli.value("format").unwrap_or(if node_mode {
        "%#N %.6D %.#P %6t"
    } else {
        "%#P %.5a %.10l %.6D %.6t %N"
    });
    let only = cli.value("partition");
    // Rows: (partition, default, nodes with usage, state group)
    let mut rows: Vec<(String, bool, Vec<Member>)> = Vec::new();
    for p in &cluster.partitions {
        if only.is_some_and(|o| !o.split(',').any(|x| x == p.name)) {
            continue;
        }
        let members: Vec<(crate::config::Node, NodeUsage)> = p
            .nodes
            .iter()
            .filter_map(|n| {
                let node = cluster.node(n)?.clone();
                let u = usage.iter().find(|u| &u.name == n)?.clone();
                Some((node, u))
            })
            .collect();
        if node_mode {
            for m in members {
                rows.push((p.name.clone(), p.default, vec![m]));
            }
        } else {
            // One line per state within the partition, as sinfo groups them.
            let mut groups: Vec<(&'static str, Vec<(crate::config::Node, NodeUsage)>)> = Vec::new();
            for m in members {
                let st = node_state(&m.1, m.0.cpus, false);
                match groups.iter_mut().find(|g| g.0 == st) {
                    Some(g) => g.1.push(m),
                    None => groups.push((st, vec![m])),
                }
            }
            for (_, g) in groups {
                rows.push((p.name.clone(), p.default, g));
            }
        }
    }
    if node_mode {
        // One row per node and partition, sorted by node name (observed: Slurm 22.05's own
        // order of one node's partitions varies from run to run; here it is declaration order).
        rows.sort_by(|a, b| {
            let name = |r: &(String, bool, Vec<Member>)| r.2.first().map(|m| m.0.name.clone());
            name(a).cmp(&name(b))
        });
    }
    let part_width = cluster
        .partitions
        .iter()
        .map(|p| p.name.len() + usize::from(p.default))
        .max()
        .unwrap_or(9)
        .max(9);
    let node_width = rows
        .iter()
        .map(|r| {
            crate::hostlist::compress(&r.2.iter().map(|m| m.0.name.clone()).collect::<Vec<_>>())
                .len()
        })
        .max()
        .unwrap_or(8)
        // Observed on Slurm 22.05: `sinfo -N` gives NODELIST 9 columns for 6- and 9-character
        // names alike.
        .max(if node_mode { 9 } else { 8 });
    let pieces = parse_format(
        &fmt.replace("%.#P", &format!("%.{part_width}P"))
            .replace("%#P", &format!("%{part_width}P"))
            .replace("%#N", &format!("%{node_width}N")),
    );
    let header = |c: char| -> &'static str {
        match c {
            'P' | 'R' => "PARTITION",
            'a' => "AVAIL",
            'l' => "TIMELIMIT",
            'D' => "NODES",
            't' | 'T' => "STATE",
            'N' => "NODELIST",
            'c' => "CPUS",
            'm' => "MEMORY",
            'C' => "CPUS(A/I/O/T)",
            'f' => "AVAIL_FEATURES",
            _ => "",
        }
    };
    let mut out = String::new();
    if !cli.has("noheader") {
        out.push_str(&render(&pieces, &|c| header(c).to_string()));
        out.push('\n');
    }
    for (name, default, members) in &rows {
        let part = cluster.partition(name);
        let names: Vec<String> = members.iter().map(|m| m.0.name.clone()).collect();
        let line = render(&pieces, &|c| match c {
            'P' => format!("{name}{}", if *default { "*" } else { "" }),
            'R' => name.clone(),
            'a' => part.map_or("up".into(), |p| p.state.to_ascii_lowercase()),
            'l' => part.map_or("infinite".into(), |p| units::format_limit_sinfo(p.max_time)),
            'D' => members.len().to_string(),
            't' => members.first().map_or("n/a".into(), |m| {
                node_state(&m.1, m.0.cpus, false).to_string()
            }),
            'T' => members.first().map_or("n/a".into(), |m| {
                node_state(&m.1, m.0.cpus, true).to_string()
            }),
            'N' => crate::hostlist::compress(&names),
            'c' => members.first().map_or("0".into(), |m| m.0.cpus.to_string()),
            'm' => members
                .first()
                .map_or("0".into(), |m| m.0.memory_mb.to_string()),
            'C' => {
                let a: u64 = members.iter().map(|m| u64::from(m.1.alloc_cpus)).sum();
                let t: u64 = members.iter().map(|m| u64::from(m.0.cpus)).sum();
                let o: u64 = members
                    .iter()
                    .filter(|m| m.1.down)
                    .map(|m| u64::from(m.0.cpus))
                    .sum();
                // A node that fails under running jobs counts as allocated and down at once.
                format!("{a}/{}/{o}/{t}", t.saturating_sub(a).saturating_sub(o))
            }
            'f' => members.first().map_or("(null)".into(), |m| {
                if m.0.features.is_empty() {
                    "(null)".into()
                } else {
                    m.0.features.join(",")
                }
            }),
            _ => String::new(),
        });
        out.push_str(&line);
        out.push('\n');
    }
    print!("{out}");
    0
}
