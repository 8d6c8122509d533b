//! Fake `bhosts` (IBM's bhosts reference; OL `lsbatch/cmd/bhosts.c` `prtHostsShort`,
//! `lsbatch/cmd/cmd.prt.c`): the batch hosts with their status and job slots, as mbatchd
//! reports them. The short table only (`-w` wide); `-l`, `-R` and `-s` are not simulated.

use super::{host_slots, print_timeout, query_jobs};
use crate::cli::Call;
use crate::model::JobState;

/// OL's usage text (`I18N_Usage`, `I18N_or`).
const USAGE: &str = "Usage:
bhosts [-h] [-V] [-R res_req] [-w | -l] [host_name ... | cluster_name]
or
bhosts [-h] [-V] -s [ resource_name ] 
";

/// One host's line: `prtWord(18)` name (cut, or `%-18s` whole with `-w`), `prtWordL` status
/// (11, or 14 with `-w`), `prtDash(5)` JL/U, then MAX, NJOBS, RUN, SSUSP, USUSP and RSV at 6.
fn line(host: &str, status: &str, max: u32, slots: usize, wide: bool) -> String {
    let name = if wide {
        format!("{host:<18}")
    } else {
        format!("{:<18}", host.chars().take(18).collect::<String>())
    };
    let status_width = if wide { 14 } else { 11 };
    format!(
        "{name} {status:<status_width$} {:>5} {max:>6} {slots:>6} {slots:>6} {:>6} {:>6} {:>6}\n",
        "-", 0, 0, 0
    )
}

/// Runs bhosts; returns the exit code (OL exits -1, 255, on every failure).
pub fn main(call: &mut Call) -> i32 {
    let args = call.args();
    let mut wide = false;
    let mut hosts = Vec::new();
    for arg in &args {
        match arg.as_str() {
            "-h" => {
                eprint!("{USAGE}");
                return 0;
            }
            "-V" => {
                eprintln!("{}", super::VERSION);
                return 0;
            }
            "-w" => wide = true,
            "-l" | "-R" | "-s" => {
                eprintln!("bhosts: {arg} is not supported by mock-cluster");
                return 255;
            }
            option if option.starts_with('-') => {
                eprintln!("bhosts: illegal option -- {}", &option[1..]);
                eprint!("{USAGE}");
                return 255;
            }
            host => hosts.push(host.to_string()),
        }
    }
    let cluster = super::cluster(&call.dir);
    if let Some(unknown) = hosts
        .iter()
        .find(|h| !cluster.nodes.iter().any(|n| &n.name == *h))
    {
        // lsb_perror(hosts[n]) for LSBE_BAD_HOST.
        eprintln!("{unknown}: Bad host name, host group name or cluster name");
        return 255;
    }
    let jobs = match query_jobs(call, None, true) {
        Ok((jobs, _)) => jobs,
        Err(super::QueryError::Timeout) => {
            print_timeout();
            return 255;
        }
        Err(super::QueryError::Unreachable) => return 255,
        Err(super::QueryError::Other(message)) => {
            eprintln!("{message}");
            return 255;
        }
    };
    let mut nodes: Vec<&crate::config::Node> = cluster
        .nodes
        .iter()
        .filter(|n| hosts.is_empty() || hosts.contains(&n.name))
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = format!(
        "{:<18} {:<width$} {:>5} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} \n",
        "HOST_NAME",
        "STATUS",
        "JL/U",
        "MAX",
        "NJOBS",
        "RUN",
        "SSUSP",
        "USUSP",
        "RSV",
        width = if wide { 14 } else { 11 }
    );
    for node in nodes {
        let slots: usize = jobs
            .iter()
            .filter(|job| job.run.state == JobState::Running)
            .flat_map(host_slots)
            .filter(|(host, _)| host == &node.name)
            .map(|(_, n)| n)
            .sum();
        // A host whose slots are all taken is closed (HOST_STAT_FULL); `-w` says why.
        let status = match (slots >= node.cpus as usize, wide) {
            (false, _) => "ok",
            (true, false) => "closed",
            (true, true) => "closed_Full",
        };
        out.push_str(&line(&node.name, status, node.cpus, slots, wide));
    }
    print!("{out}");
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_openlavas_widths() {
        assert_eq!(
            line("node01", "ok", 4, 1, false),
            "node01             ok              -      4      1      1      0      0      0\n"
        );
        assert_eq!(
            line("a-very-long-host-name-01", "closed", 2, 2, false),
            "a-very-long-host-n closed          -      2      2      2      0      0      0\n"
        );
        assert_eq!(
            line("a-very-long-host-name-01", "closed_Full", 2, 2, true),
            "a-very-long-host-name-01 closed_Full        -      2      2      2      0      0      0\n"
        );
    }
}
