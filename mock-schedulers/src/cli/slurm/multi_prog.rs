//! `srun --multi-prog CONFIG [ARGS...]`: a program and arguments per task rank, from a
//! configuration file. Follows Slurm 22.05: srun checks the file (`verify_multi_name()` in
//! `src/srun/libsrun/multi_prog.c`), slurmstepd picks each task's line
//! (`multi_prog_get_argv()` in `src/slurmd/slurmstepd/multi_prog.c`).
//!
//! A line is `RANKS PROGRAM [ARGS...]`: `RANKS` is `*`, or a comma list of ranks and
//! `low-high` ranges; `%t` in the arguments is the task's rank, `%o` its offset within the
//! line's ranks; `'...'` quotes, `\` escapes a character; whole-line `#` comments and blank
//! lines are skipped. The arguments after CONFIG on srun's command line follow each task's.

/// A checked configuration file.
#[derive(Debug, Clone)]
pub struct MultiProg {
    /// `(ranks, the rest of the line)` of each line that names a program, in file order.
    lines: Vec<(String, String)>,
    /// srun's arguments after the file's name.
    extra: Vec<String>,
}

/// Reads and checks `path` for a step of `ntasks` tasks (`None`: not set, so the file's highest
/// rank sets it); the file and the task count, or srun's error lines.
pub fn load(
    path: &str,
    extra: &[String],
    ntasks: Option<u32>,
) -> Result<(MultiProg, u32), Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|_| vec![format!("Could not open multi_prog config file {path}")])?;
    let mut tasks = Tasks {
        count: ntasks.unwrap_or(1).max(1),
        count_set: ntasks.is_some(),
        raised: false,
        covered: vec![false; ntasks.unwrap_or(1).max(1) as usize],
    };
    let mut asterisk = false;
    let mut lines = Vec::new();
    let invalid = |number: usize| format!("Line {number} of configuration file {path} invalid");
    for (index, line) in logical_lines(&text) {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') || trimmed.trim().is_empty() {
            continue;
        }
        let mut words = trimmed.split_whitespace();
        let (Some(ranks), Some(_program)) = (words.next(), words.next()) else {
            return Err(vec![invalid(index)]);
        };
        let checked = if ranks == "*" {
            asterisk = true;
            tasks.count_set = true;
            tasks.mark(0, tasks.count - 1, true)
        } else {
            ranks.split(',').try_for_each(|range| {
                if asterisk {
                    return Err("Task range specification with asterisk must be last".into());
                }
                match parse_range(range) {
                    Some((low, high)) => tasks.mark(low, high, false),
                    None if range.contains('-') => Err("Invalid task range specification".into()),
                    None => Err(format!("Invalid task range specification ({range})")),
                }
            })
        };
        if let Err(error) = checked {
            return Err(vec![error, invalid(index)]);
        }
        let rest = trimmed[ranks.len()..].trim_start().to_string();
        lines.push((ranks.to_string(), rest));
    }
    let (count, covered) = (tasks.count, tasks.covered);
    if let Some(missing) = covered.iter().position(|seen| !seen) {
        return Err(vec![format!(
            "Configuration file {path} invalid, no record for task id {missing}"
        )]);
    }
    Ok((
        MultiProg {
            lines,
            extra: extra.to_vec(),
        },
        count,
    ))
}

/// More tasks than any step the simulated cluster can run.
const MAX_RANKS: u32 = 1_000_000;

/// The task count and the ranks the lines have named so far (22.05 `_update_task_mask()`).
struct Tasks {
    count: u32,
    /// A count given (`-n`, the job's) or fixed by a `*` line may not grow...
    count_set: bool,
    /// ... unless the file itself set it (`i_set_ntasks`).
    raised: bool,
    covered: Vec<bool>,
}

impl Tasks {
    fn mark(&mut self, low: u32, high: u32, ignore_duplicates: bool) -> Result<(), String> {
        if low > high {
            return Err(format!("Invalid task range, {low}-{high}"));
        }
        if high >= self.count {
            // A rank no cluster could run (`0-4000000000`) is refused before a flag per rank
            // is kept, in the words srun uses for a rank past the task count.
            if (self.count_set && !self.raised) || high >= MAX_RANKS {
                return Err(format!("Invalid task id, {high} >= ntasks"));
            }
            self.count = high + 1;
            self.count_set = true;
            self.raised = true;
            self.covered.resize(self.count as usize, false);
        }
        for rank in low..=high {
            let seen = &mut self.covered[rank as usize];
            if *seen && !ignore_duplicates {
                return Err(format!("Duplicate record for task {rank}"));
            }
            *seen = true;
        }
        Ok(())
    }
}

/// The file's lines numbered from 1, a line ending in `\` joined with the next.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut continued = false;
    for (index, line) in text.lines().enumerate() {
        if continued && let Some((_, last)) = out.last_mut() {
            last.push('\n');
            last.push_str(line);
        } else {
            out.push((index + 1, line.to_string()));
        }
        continued = line.ends_with('\\');
    }
    out
}

/// `N` or `LOW-HIGH`, digits only.
fn parse_range(range: &str) -> Option<(u32, u32)> {
    let digits = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match range.split_once('-') {
        None => digits(range).map(|n| (n, n)),
        Some((low, high)) => Some((digits(low)?, digits(high)?)),
    }
}

impl MultiProg {
    /// The program and arguments of task `rank`: its line's, then srun's extra arguments.
    pub fn argv(&self, rank: u32) -> Option<Vec<String>> {
        let (offset, rest) = self
            .lines
            .iter()
            .find_map(|(ranks, rest)| offset_in(ranks, rank).map(|o| (o, rest)))?;
        let mut argv = split_arguments(rest, rank, offset);
        argv.extend(self.extra.iter().cloned());
        (!argv.is_empty()).then_some(argv)
    }
}

/// The offset of `rank` within a line's ranks (`*`: the rank itself).
fn offset_in(ranks: &str, rank: u32) -> Option<u32> {
    if ranks == "*" {
        return Some(rank);
    }
    let mut passed = 0;
    for range in ranks.split(',') {
        let (low, high) = parse_range(range)?;
        if (low..=high).contains(&rank) {
            return Some(passed + rank - low);
        }
        passed += high - low + 1;
    }
    None
}

/// slurmstepd's splitting of a line's program and arguments: white space separates, `'...'`
/// keeps everything, `\` takes the next character (or joins the next line), `%t` and `%o`
/// are the rank and the offset (another `%x` is dropped).
fn split_arguments(spec: &str, rank: u32, offset: u32) -> Vec<String> {
    let mut argv = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                let current = word.get_or_insert_with(String::new);
                match chars.next() {
                    Some('t') => current.push_str(&rank.to_string()),
                    Some('o') => current.push_str(&offset.to_string()),
                    _ => {}
                }
            }
            '\\' => {
                let current = word.get_or_insert_with(String::new);
                match chars.next() {
                    Some('\n') | None => {}
                    Some(next) => current.push(next),
                }
            }
            '\'' => {
                let current = word.get_or_insert_with(String::new);
                for quoted in chars.by_ref() {
                    if quoted == '\'' {
                        break;
                    }
                    if quoted != '\\' && quoted != '\n' {
                        current.push(quoted);
                    }
                }
            }
            c if c.is_whitespace() => {
                if let Some(done) = word.take() {
                    argv.push(done);
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    argv.extend(word);
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn each_rank_gets_its_lines_program_with_rank_and_offset() {
        let f = file(
            "# a comment\n0 echo first %t\n1-2,4 echo range %t %o\n\n* echo rest '%t quoted' a\\ b\n",
        );
        let path = f.path().display().to_string();
        let (mp, count) = load(&path, &["tail".into()], Some(6)).unwrap();
        assert_eq!(count, 6);
        let argv = |rank| mp.argv(rank).unwrap().join("|");
        assert_eq!(argv(0), "echo|first|0|tail");
        assert_eq!(argv(2), "echo|range|2|1|tail");
        assert_eq!(argv(4), "echo|range|4|2|tail");
        assert_eq!(argv(3), "echo|rest|%t quoted|a b|tail");
        assert_eq!(argv(5), "echo|rest|%t quoted|a b|tail");
    }

    #[test]
    fn without_a_task_count_the_highest_rank_sets_it() {
        let f = file("0-2 hostname\n3 date\n4,5 true\n");
        let (_, count) = load(&f.path().display().to_string(), &[], None).unwrap();
        assert_eq!(count, 6);
    }

    #[test]
    fn srun_refuses_files_as_slurm_does() {
        let cases = [
            ("0 true\n", Some(2), "no record for task id 1"),
            ("0-3 true\n", Some(2), "Invalid task id, 3 >= ntasks"),
            ("0 true\n0 false\n", Some(1), "Duplicate record for task 0"),
            ("* true\n0 false\n", Some(1), "with asterisk must be last"),
            ("x true\n", Some(1), "Invalid task range specification (x)"),
            ("2-1 true\n", Some(3), "Invalid task range, 2-1"),
            ("0\n", Some(1), "Line 1 of configuration file"),
            (
                "0-4000000000 true\n",
                None,
                "Invalid task id, 4000000000 >= ntasks",
            ),
        ];
        for (text, ntasks, wanted) in cases {
            let f = file(text);
            let errors = load(&f.path().display().to_string(), &[], ntasks).unwrap_err();
            assert!(errors.join("\n").contains(wanted), "{text:?}: {errors:?}");
        }
        let missing = load("/nonexistent/mp.conf", &[], Some(1)).unwrap_err();
        assert_eq!(
            missing,
            ["Could not open multi_prog config file /nonexistent/mp.conf"]
        );
    }
}
