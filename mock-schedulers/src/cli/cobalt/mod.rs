//! The fake Cobalt commands (`qsub`, `qstat`, `qdel`; reference section 5, ALCF Cobalt 1.0.33).
//! Each command lives in its own file; this module holds what they share: the usage and error
//! texts of Cobalt's option parser, `Util.print_tabular`/`print_vertical`, and how a failed
//! call to a Cobalt component is reported.

pub mod optparse;
pub mod qdel;
pub mod qstat;
pub mod qsub;

use super::Call;
use crate::client::Unreachable;

pub use optparse::py_repr;

/// The commands, by the name each is called as.
pub const COMMANDS: &[&str] = &["qsub", "qstat", "qdel"];

/// Prefixes of the variables Cobalt's commands read, kept in call records.
pub const ENV_PREFIXES: &[&str] = &["COBALT_", "QSTAT_HEADER", "CQSTAT_HEADER"];

/// Runs the Cobalt command `prog`; `None` when it is not one.
pub fn run(prog: &str, call: &mut Call) -> Option<i32> {
    Some(match prog {
        "qsub" => qsub::main(call),
        "qstat" => qstat::main(call),
        "qdel" => qdel::main(call),
        _ => return None,
    })
}

/// A command's usage as optparse keeps it (after its leading `Usage: `), and its help lines.
pub struct Usage {
    /// The program.
    pub prog: &'static str,
    /// The usage text with `%prog`.
    pub text: &'static str,
    /// `$Revision$` of the client (its `--version`).
    pub revision: &'static str,
    /// Option spellings and help, in the order `--help` lists them.
    pub help: &'static [(&'static str, &'static str)],
}

impl Usage {
    /// optparse's `get_usage()`.
    fn get_usage(&self) -> String {
        format!("Usage: {}\n", self.text.replace("%prog", self.prog))
    }

    /// `client_utils.print_usage`: the usage on stdout, the message on stderr; exit 1.
    pub fn print_with_error(&self, message: &str) -> i32 {
        println!("{}", self.get_usage());
        eprintln!("{message}\n");
        1
    }

    /// optparse's `error()`: the usage and `<prog>: error: <msg>` on stderr, exit 2.
    pub fn parse_error(&self, message: &str) -> i32 {
        eprintln!("{}", self.get_usage());
        eprintln!("{}: error: {message}", self.prog);
        2
    }

    /// optparse's `--help` (on stdout, exit 0).
    pub fn print_help(&self) -> i32 {
        let mut text = self.get_usage();
        text.push('\n');
        text.push_str("Options:\n");
        let mut lines: Vec<(&str, &str)> = vec![
            ("--version", "show program's version number and exit"),
            ("--help", "show this help message and exit"),
        ];
        lines.extend(self.help.iter().copied());
        for (opts, help) in lines {
            if opts.len() <= 20 {
                text.push_str(&format!("  {opts:<22}{help}\n"));
            } else {
                text.push_str(&format!("  {opts}\n{:24}{help}\n", ""));
            }
        }
        print!("{text}");
        0
    }

    /// optparse's `--version`: the client's version line as its source has it.
    pub fn print_version(&self) -> i32 {
        println!(
            "version: \"{} \" + $Revision: {} $ + , Cobalt  + $Version$",
            self.prog, self.revision
        );
        0
    }
}

/// `Util.print_tabular`: columns left-justified to their widest cell and each followed by two
/// spaces, then a row of `=` as wide as all of that, then the data rows.
pub fn tabular(rows: &[Vec<String>]) -> String {
    let Some(header) = rows.first() else {
        return String::new();
    };
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |row: &Vec<String>| {
        let mut s = String::new();
        for (i, w) in widths.iter().enumerate() {
            let cell = row.get(i).map_or("", String::as_str);
            s.push_str(&format!("{cell:<w$}  "));
        }
        s.push('\n');
        s
    };
    let mut out = line(header);
    out.push_str(&"=".repeat(widths.iter().sum::<usize>() + 2 * widths.len()));
    out.push('\n');
    for row in &rows[1..] {
        out.push_str(&line(row));
    }
    out
}

/// `Util.print_vertical`: per row `<first header>: <value>`, then `    <header><pad>: <value>`
/// with the headers padded to the longest plus one, then an empty line.
pub fn vertical(rows: &[Vec<String>]) -> String {
    let Some(header) = rows.first() else {
        return String::new();
    };
    let hmax = header.iter().map(|h| h.chars().count()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for row in &rows[1..] {
        for (i, value) in row.iter().enumerate() {
            let name = header.get(i).map_or("", String::as_str);
            if i == 0 {
                out.push_str(&format!("{name}: {value}\n"));
            } else {
                out.push_str(&format!("    {name:<hmax$}: {value}\n"));
            }
        }
        out.push('\n');
    }
    out
}

/// `client_utils.get_timeformat`: `HH:MM:SS` of whole seconds, hours not wrapped into days.
pub fn elapsed(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 {
        secs.floor() as u64
    } else {
        0
    };
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// `client_utils.component_call` failing with a fault of the component: the fault as
/// `xmlrpclib.Fault` prints itself, on stderr, exit 1.
pub fn fault_error(code: u32, message: &str, component: &str, method: &str) -> i32 {
    eprintln!(
        "component error: XMLRPC failure <Fault {code}: {}> in {component}.{method}\n",
        py_repr(message)
    );
    1
}

/// `client_utils.component_call` when the component does not answer in time (the injected
/// status timeout): the exception's text `timed out` on stderr, nothing on stdout, exit 1.
pub fn timed_out(component: &str, method: &str) -> i32 {
    eprintln!(
        "component error: Following exception occurred while trying to execute {component}.{method}: timed out\n"
    );
    1
}

/// `client_utils.component_call` when the component cannot be reached, after the line that
/// names the socket the simulated cluster tried.
pub fn unreachable(call: &Call, e: &Unreachable, component: &str) -> i32 {
    call.unreachable(
        e,
        &format!("component error: Failed to connect to {component}: {component}\n"),
    );
    1
}

/// The answer of a daemon that says something unexpected.
pub fn unexpected(call: &Call, component: &str, method: &str) -> i32 {
    eprintln!(
        "component error: Following exception occurred while trying to execute {component}.{method}: {}: unexpected answer from the mock-cluster daemon\n",
        call.prog
    );
    1
}

/// The caller's user name (`pwd.getpwuid(os.getuid())[0]`).
pub fn user() -> String {
    super::slurm::identity().0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(r: &[&[&str]]) -> Vec<Vec<String>> {
        r.iter()
            .map(|row| row.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    #[test]
    fn tabular_pads_every_column_and_rules_the_width() {
        let t = tabular(&rows(&[&["JobID", "User"], &["7", "alice"]]));
        assert_eq!(t, "JobID  User   \n==============\n7      alice  \n");
    }

    #[test]
    fn vertical_pads_headers_to_the_longest_plus_one() {
        let t = vertical(&rows(&[&["Jobid", "State"], &["12", "running"]]));
        assert_eq!(t, "Jobid: 12\n    State : running\n\n");
    }

    #[test]
    fn elapsed_keeps_hours_past_a_day() {
        assert_eq!(elapsed(0.0), "00:00:00");
        assert_eq!(elapsed(3725.9), "01:02:05");
        assert_eq!(elapsed(30.0 * 3600.0), "30:00:00");
    }
}
