//! The records schedulers print about their nodes and queues, split into `key = value` fields
//! with the line each came from: Slurm's `Key=Value` records (`scontrol show`, one-line `-o`
//! form too) and PBS's `name` / `    attr = value` blocks (`pbsnodes -av`, `qstat -Qf`).

use super::ImportError;

/// One field of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    pub(crate) key: String,
    pub(crate) value: String,
    /// 1-based line of the field.
    pub(crate) line: usize,
}

/// One record: a node, a partition, a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// 1-based line where the record starts.
    pub(crate) line: usize,
    /// The PBS record's name line (`node01`, `Queue: workq` gives `workq`); empty for Slurm.
    pub(crate) name: String,
    pub(crate) fields: Vec<Field>,
}

impl Record {
    /// A field the record must have; its absence is an error naming `what` and the key as
    /// the scheduler writes it (`assign`: `=` for Slurm, ` = ` for PBS).
    pub(crate) fn required(
        &self,
        src: &super::Source,
        what: &str,
        key: &str,
        assign: &str,
    ) -> Result<&str, ImportError> {
        self.get(key)
            .ok_or_else(|| super::err(src, self.line, format!("{what}: no `{key}{assign}`")))
    }

    /// The value of the first field named `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.key == key)
            .map(|f| f.value.as_str())
    }

    /// The line of the field named `key`, else the record's first line.
    pub(crate) fn line_of(&self, key: &str) -> usize {
        self.fields
            .iter()
            .find(|f| f.key == key)
            .map_or(self.line, |f| f.line)
    }
}

/// Whether `token` starts a Slurm field: `Key=` with a key of letters, digits, `_` and `.`
/// beginning with a letter (`CPUTot=`, `OS=`, `CfgTRES=`).
fn slurm_key(token: &str) -> Option<(&str, &str)> {
    let (key, value) = token.split_once('=')?;
    let mut chars = key.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'))
    .then_some((key, value))
}

/// Splits `scontrol show nodes|partitions` output into records.
///
/// Both forms Slurm prints (`scontrol(1)`, `-o, --oneliner`): a record starts on a line that is
/// not indented; in the default form its further fields follow on indented lines and a blank
/// line ends it, in the `-o` form the whole record is one line. Fields are blank separated
/// `Key=Value`; a few values hold blanks (`OS=Linux 6.1.0 #1 SMP ...`, `Reason=Not
/// responding [slurm@...]`), so a word that is not `Key=...` continues the previous value.
pub(crate) fn slurm_records(text: &str, file: &str) -> Result<Vec<Record>, ImportError> {
    let mut records: Vec<Record> = Vec::new();
    let mut open = false;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        if raw.trim().is_empty() {
            open = false;
            continue;
        }
        let indented = raw.starts_with([' ', '\t']);
        if !indented {
            records.push(Record {
                line: line_no,
                name: String::new(),
                fields: Vec::new(),
            });
            open = true;
        } else if !open {
            return Err(ImportError::new(
                file,
                line_no,
                format!(
                    "an indented line outside a record: `{}`",
                    shorten(raw.trim())
                ),
            ));
        }
        let Some(record) = records.last_mut() else {
            continue;
        };
        for (i, token) in raw.split_whitespace().enumerate() {
            match slurm_key(token) {
                Some((key, value)) => record.fields.push(Field {
                    key: key.to_string(),
                    value: value.to_string(),
                    line: line_no,
                }),
                None if i > 0 => {
                    if let Some(last) = record.fields.last_mut() {
                        last.value.push(' ');
                        last.value.push_str(token);
                    }
                }
                None => {
                    return Err(ImportError::new(
                        file,
                        line_no,
                        format!("expected `Key=Value`, found `{}`", shorten(token)),
                    ));
                }
            }
        }
    }
    Ok(records)
}

/// Splits PBS full-listing output into records: a name line (`node01` for `pbsnodes -av`,
/// `Queue: workq` for `qstat -Qf`, so `header` is `""` or `"Queue: "`), then indented
/// `attr = value` or `attr.resource = value` lines. A long value is continued on lines that
/// start with a tab (`qstat.c` `prt_attr` breaks lines at 80 characters); `pbsnodes.c`
/// `prt_node` indents by five blanks, `qstat` by four.
pub(crate) fn pbs_records(
    text: &str,
    file: &str,
    header: &str,
) -> Result<Vec<Record>, ImportError> {
    let mut records: Vec<Record> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        if raw.starts_with('\t') {
            // A continuation of the previous value.
            match records.last_mut().and_then(|r| r.fields.last_mut()) {
                Some(field) => field.value.push_str(raw.trim()),
                None => {
                    return Err(ImportError::new(
                        file,
                        line_no,
                        format!(
                            "a continued value outside a record: `{}`",
                            shorten(raw.trim())
                        ),
                    ));
                }
            }
            continue;
        }
        if raw.starts_with(' ') {
            let Some(record) = records.last_mut() else {
                return Err(ImportError::new(
                    file,
                    line_no,
                    format!("an attribute outside a record: `{}`", shorten(raw.trim())),
                ));
            };
            let Some((key, value)) = raw.split_once(" = ") else {
                return Err(ImportError::new(
                    file,
                    line_no,
                    format!(
                        "expected `attribute = value`, found `{}`",
                        shorten(raw.trim())
                    ),
                ));
            };
            let key = key.trim();
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(ImportError::new(
                    file,
                    line_no,
                    format!(
                        "expected `attribute = value`, found `{}`",
                        shorten(raw.trim())
                    ),
                ));
            }
            record.fields.push(Field {
                key: key.to_string(),
                value: value.trim().to_string(),
                line: line_no,
            });
            continue;
        }
        let name = match raw.strip_prefix(header) {
            Some(name) if !name.trim().is_empty() && !name.trim().contains(char::is_whitespace) => {
                name.trim()
            }
            _ => {
                let expected = if header.is_empty() {
                    "a node name".to_string()
                } else {
                    format!("`{header}<name>`")
                };
                return Err(ImportError::new(
                    file,
                    line_no,
                    format!("expected {expected}, found `{}`", shorten(raw.trim())),
                ));
            }
        };
        records.push(Record {
            line: line_no,
            name: name.to_string(),
            fields: Vec::new(),
        });
    }
    Ok(records)
}

/// At most 60 characters of `s`, for error messages about garbage.
pub(crate) fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if s.chars().nth(60).is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn both_scontrol_forms_give_the_same_fields() {
        let multi = "NodeName=n1 Arch=x86_64 CoresPerSocket=1 \n   CPUAlloc=0 CPUTot=2\n   OS=Linux 6.1.0 #1 SMP \n\nNodeName=n2 CPUTot=4\n";
        let one = "NodeName=n1 Arch=x86_64 CoresPerSocket=1  CPUAlloc=0 CPUTot=2 OS=Linux 6.1.0 #1 SMP \nNodeName=n2 CPUTot=4\n";
        let a = slurm_records(multi, "m").unwrap();
        let b = slurm_records(one, "o").unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].get("OS"), Some("Linux 6.1.0 #1 SMP"));
        assert_eq!(a[0].line_of("CPUTot"), 2);
        assert_eq!(a[1].line, 5);
        let strip = |r: &[Record]| -> Vec<Vec<(String, String)>> {
            r.iter()
                .map(|r| {
                    r.fields
                        .iter()
                        .map(|f| (f.key.clone(), f.value.clone()))
                        .collect()
                })
                .collect()
        };
        assert_eq!(strip(&a), strip(&b));
    }

    #[test]
    fn garbage_is_refused_with_its_line() {
        assert_eq!(
            slurm_records("NodeName=a\nhello world\n", "f")
                .unwrap_err()
                .to_string(),
            "f:2: expected `Key=Value`, found `hello`"
        );
        assert_eq!(
            slurm_records("\n   CPUTot=2\n", "f")
                .unwrap_err()
                .to_string(),
            "f:2: an indented line outside a record: `CPUTot=2`"
        );
        assert_eq!(
            pbs_records("Queue: q\n    enabled True\n", "f", "Queue: ")
                .unwrap_err()
                .to_string(),
            "f:2: expected `attribute = value`, found `enabled True`"
        );
    }

    #[test]
    fn pbs_values_continue_on_tab_lines() {
        let text = "Queue: workq\n    queue_type = Execution\n    acl_users = alice,bob,\n\tcarol\n\nQueue: q2\n    enabled = True\n";
        let r = pbs_records(text, "f", "Queue: ").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].name, "workq");
        assert_eq!(r[0].get("acl_users"), Some("alice,bob,carol"));
        assert_eq!(r[1].line_of("enabled"), 7);
    }

    proptest! {
        #[test]
        fn no_input_panics(text in "(?s).{0,400}") {
            let _ = slurm_records(&text, "f");
            let _ = pbs_records(&text, "f", "");
            let _ = pbs_records(&text, "f", "Queue: ");
        }

        #[test]
        fn no_record_like_input_panics(lines in proptest::collection::vec(
            "( {0,5}|\t)?[A-Za-z.:_ ]{0,12}(=| = )?[A-Za-z0-9=:\\[\\], -]{0,20}", 0..20)) {
            let text = lines.join("\n");
            let _ = slurm_records(&text, "f");
            let _ = pbs_records(&text, "f", "Queue: ");
        }
    }
}
