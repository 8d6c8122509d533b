//! Output file name patterns as slurmstepd expands them (`%j`, `%x`, `%4j`, `%%`, ...).

/// Array task id Slurm reports for jobs that are not part of an array (`NO_VAL`).
pub const NO_ARRAY_TASK: u32 = 4_294_967_294;

/// What a pattern can refer to.
#[derive(Debug, Clone)]
pub struct PatternFields<'a> {
    /// Job id (`%j`).
    pub job_id: u32,
    /// Array master id (`%A`), the job id for non-array jobs.
    pub array_job_id: u32,
    /// Array task id (`%a`), [`NO_ARRAY_TASK`] for non-array jobs.
    pub array_task_id: u32,
    /// Job name (`%x`).
    pub job_name: &'a str,
    /// User name (`%u`).
    pub user: &'a str,
    /// First node of the allocation (`%N`).
    pub node: &'a str,
    /// Step id text for `%s` and `%J` (`batch` for the batch step).
    pub step: &'a str,
}

/// Expands a file name pattern. A backslash anywhere disables expansion (and is removed), as in
/// Slurm. Codes Slurm does not know are kept literally.
pub fn expand(pattern: &str, f: &PatternFields<'_>) -> String {
    expand_for_task(pattern, f, 0, 0)
}

/// [`expand`] for one task of a step: `%t` is the task's rank and `%n` the relative number of
/// its node (both 0 for a batch script).
pub fn expand_for_task(pattern: &str, f: &PatternFields<'_>, task: u32, node: u32) -> String {
    if pattern.contains('\\') {
        return pattern.replace('\\', "");
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let mut width_text = String::new();
        while j < chars.len() && chars[j].is_ascii_digit() {
            width_text.push(chars[j]);
            j += 1;
        }
        let Some(&code) = chars.get(j) else {
            out.extend(&chars[i..]);
            break;
        };
        // Slurm caps the width at 10 digits.
        let width = width_text.parse::<usize>().unwrap_or(0).min(10);
        let num = |n: u64| format!("{n:0width$}");
        let text = match code {
            '%' => Some("%".to_string()),
            'j' => Some(num(f.job_id.into())),
            'A' => Some(num(f.array_job_id.into())),
            'a' => Some(num(f.array_task_id.into())),
            'J' => Some(if f.step == "batch" {
                num(f.job_id.into())
            } else {
                format!("{}.{}", num(f.job_id.into()), f.step)
            }),
            's' => Some(f.step.to_string()),
            't' => Some(num(task.into())),
            'n' => Some(num(node.into())),
            'x' => Some(f.job_name.to_string()),
            'u' => Some(f.user.to_string()),
            'N' => Some(f.node.to_string()),
            _ => None,
        };
        match text {
            Some(t) => out.push_str(&t),
            None => out.extend(&chars[i..=j]),
        }
        i = j + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> PatternFields<'static> {
        PatternFields {
            job_id: 128,
            array_job_id: 128,
            array_task_id: NO_ARRAY_TASK,
            job_name: "build",
            user: "alice",
            node: "node01",
            step: "batch",
        }
    }

    #[test]
    fn expands_codes_and_widths() {
        assert_eq!(expand("slurm-%j.out", &fields()), "slurm-128.out");
        assert_eq!(
            expand("%4j-%x-%u-%N-%%", &fields()),
            "0128-build-alice-node01-%"
        );
        assert_eq!(expand("a\\%j", &fields()), "a%j");
        assert_eq!(expand("%q%", &fields()), "%q%");
    }
}
