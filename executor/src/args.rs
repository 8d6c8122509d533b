//! User-supplied scheduler parameters: shell-word splitting and the executor's own flags.
//!
//! A CI job asks for resources through a variable (by default `SCHEDULER_PARAMETERS`), e.g.
//! `-p gitlab-ci -t 10 -c 2`. The text is split with shell-word rules — no shell ever sees it —
//! and every word is parsed the way the scheduler's own `getopt_long` would parse it, against
//! that scheduler's option table. This catches what a plain string match misses: bundled short
//! options (`-vo file`), attached values (`-ofile`), `=` forms and unambiguous abbreviations of
//! long options (`--outp=/tmp/x` means `--output` to getopt).

use std::fmt;

/// Whether an option takes a value, as in `getopt_long`'s `has_arg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// `no_argument`
    Nothing,
    /// `required_argument`: `--opt=v`, `--opt v`, `-ov`, `-o v`
    Value,
    /// `optional_argument`: only `--opt=v` or `-ov`
    OptionalValue,
}

/// One option of a scheduler command.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// The one-letter form, if any.
    pub short: Option<char>,
    /// The long name without the leading `--`; empty for options with only a short form.
    pub long: &'static str,
    /// Whether a value follows.
    pub takes: Takes,
}

impl OptionSpec {
    /// An option with a short and a long form.
    pub const fn both(short: char, long: &'static str, takes: Takes) -> Self {
        OptionSpec {
            short: Some(short),
            long,
            takes,
        }
    }

    /// An option with only a long form.
    pub const fn long(long: &'static str, takes: Takes) -> Self {
        OptionSpec {
            short: None,
            long,
            takes,
        }
    }

    /// An option with only a short form.
    pub const fn short(short: char, takes: Takes) -> Self {
        OptionSpec {
            short: Some(short),
            long: "",
            takes,
        }
    }

    fn display(&self) -> String {
        match (self.short, self.long.is_empty()) {
            (Some(s), false) => format!("-{s}/--{}", self.long),
            (Some(s), true) => format!("-{s}"),
            (None, _) => format!("--{}", self.long),
        }
    }
}

/// How a command reads its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grammar {
    /// `getopt_long`: one-letter options that bundle and take attached values (`-vofile`),
    /// `--long` options with `=` values and unambiguous abbreviations.
    Getopt,
    /// Every option is one whole word after a single dash (`-oo file`, `-Is`, `-cwd dir`), its
    /// value the next word, as LSF's commands read them: no bundling, no `=`, no abbreviations.
    /// The options' names are their `long` names.
    WholeWords,
}

/// The command-line grammar of one scheduler command, and the options the executor sets itself.
#[derive(Debug, Clone, Copy)]
pub struct CommandOptions {
    /// The command, e.g. `sbatch`, for messages.
    pub program: &'static str,
    /// How it reads its options.
    pub grammar: Grammar,
    /// Every option the command accepts.
    pub options: &'static [OptionSpec],
    /// Options the executor controls, named by their long name (or `-x` for short-only ones).
    pub controlled: &'static [&'static str],
}

/// Why user parameters were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParameterError {
    /// The text is not valid shell words (e.g. an unclosed quote).
    #[error("cannot split {variable}: {reason}")]
    Split {
        /// The variable the text came from.
        variable: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An option the executor sets itself.
    #[error(
        "{variable}: {flag} is set by batchci and cannot be given{written} (a site can permit it with allow_illegal_args = true in its batch settings)"
    )]
    Controlled {
        /// The variable the text came from.
        variable: String,
        /// The option, as `-o/--output`.
        flag: String,
        /// How the user wrote it, when that differs from the canonical form.
        written: Written,
    },
    /// Not an option of the command.
    #[error("{variable}: {word:?} is not an option of {program}")]
    Unknown {
        /// The variable the text came from.
        variable: String,
        /// The scheduler command.
        program: String,
        /// The offending word.
        word: String,
    },
    /// A long option abbreviation matching several options.
    #[error("{variable}: {word:?} is ambiguous for {program} (it could be {candidates})")]
    Ambiguous {
        /// The variable the text came from.
        variable: String,
        /// The scheduler command.
        program: String,
        /// The offending word.
        word: String,
        /// The options it could mean.
        candidates: String,
    },
    /// An option that needs a value came last.
    #[error("{variable}: {flag} needs a value")]
    MissingValue {
        /// The variable the text came from.
        variable: String,
        /// The option.
        flag: String,
    },
    /// A value given to an option that takes none.
    #[error("{variable}: {flag} takes no value (got {word:?})")]
    UnexpectedValue {
        /// The variable the text came from.
        variable: String,
        /// The option.
        flag: String,
        /// The word holding the value.
        word: String,
    },
    /// A word that is not an option: it would become the job script or its arguments.
    #[error("{variable}: {word:?} is not an option; only options may be given")]
    Positional {
        /// The variable the text came from.
        variable: String,
        /// The word.
        word: String,
    },
}

/// How a controlled option was written, when not in its canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written(pub Option<String>);

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(word) => write!(f, " (written as {word:?})"),
            None => Ok(()),
        }
    }
}

/// Splits `text` (the value of `variable`) with shell-word rules.
pub fn split_words(variable: &str, text: &str) -> Result<Vec<String>, ParameterError> {
    shell_words::split(text).map_err(|e| ParameterError::Split {
        variable: variable.to_string(),
        reason: e.to_string(),
    })
}

/// Splits and checks user parameters for `command`, returning the argv words to append.
///
/// With `allow_controlled`, options the executor controls are let through (the site chose
/// `allow_illegal_args`); everything else is still checked.
pub fn user_parameters(
    command: &CommandOptions,
    variable: &str,
    text: &str,
    allow_controlled: bool,
) -> Result<Vec<String>, ParameterError> {
    let words = split_words(variable, text)?;
    check(command, variable, &words, allow_controlled)?;
    Ok(words)
}

/// Checks already split words against `command`'s grammar.
pub fn check(
    command: &CommandOptions,
    variable: &str,
    words: &[String],
    allow_controlled: bool,
) -> Result<(), ParameterError> {
    options_in(command, variable, words, allow_controlled).map(drop)
}

/// The long names of the options that `words` give, in order, for a backend that completes
/// what the user left out (Flux needs a size). Words that do not check give none.
pub fn given_options(command: &CommandOptions, words: &[String]) -> Vec<&'static str> {
    options_in(command, "", words, true)
        .map(|specs| specs.iter().map(|spec| spec.long).collect())
        .unwrap_or_default()
}

/// Walks `words` with `command`'s grammar: the options given, or why they do not check.
fn options_in(
    command: &CommandOptions,
    variable: &str,
    words: &[String],
    allow_controlled: bool,
) -> Result<Vec<&'static OptionSpec>, ParameterError> {
    let checker = Checker {
        command,
        variable,
        allow_controlled,
    };
    if command.grammar == Grammar::WholeWords {
        return checker.whole_words(words);
    }
    let mut given = Vec::new();
    let mut index = 0;
    while index < words.len() {
        let word = &words[index];
        index += 1;
        if let Some(body) = word.strip_prefix("--") {
            if body.is_empty() {
                return Err(checker.positional(word));
            }
            let (name, value) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (body, None),
            };
            let spec = checker.long(name, word)?;
            checker.allowed(spec, word, name != spec.long)?;
            given.push(spec);
            match (spec.takes, value) {
                (Takes::Nothing, Some(_)) => {
                    return Err(ParameterError::UnexpectedValue {
                        variable: variable.to_string(),
                        flag: checker.display(spec),
                        word: word.clone(),
                    });
                }
                (Takes::Value, None) => {
                    if index >= words.len() {
                        return Err(checker.missing(spec));
                    }
                    index += 1;
                }
                _ => {}
            }
        } else if let Some(cluster) = word.strip_prefix('-').filter(|c| !c.is_empty()) {
            for (at, letter) in cluster.char_indices() {
                let spec = checker.short(letter, word)?;
                checker.allowed(spec, word, cluster.len() > 1 || spec.long.is_empty())?;
                given.push(spec);
                let rest = &cluster[at + letter.len_utf8()..];
                match spec.takes {
                    Takes::Nothing => continue,
                    Takes::OptionalValue => break,
                    Takes::Value => {
                        if rest.is_empty() {
                            if index >= words.len() {
                                return Err(checker.missing(spec));
                            }
                            index += 1;
                        }
                        break;
                    }
                }
            }
        } else {
            return Err(checker.positional(word));
        }
    }
    Ok(given)
}

struct Checker<'a> {
    command: &'a CommandOptions,
    variable: &'a str,
    allow_controlled: bool,
}

impl Checker<'_> {
    /// An option as the command spells it, for messages.
    fn display(&self, spec: &OptionSpec) -> String {
        match self.command.grammar {
            Grammar::Getopt => spec.display(),
            Grammar::WholeWords => format!("-{}", spec.long),
        }
    }

    /// Checks words against a [`Grammar::WholeWords`] command.
    fn whole_words(&self, words: &[String]) -> Result<Vec<&'static OptionSpec>, ParameterError> {
        let mut given = Vec::new();
        let mut index = 0;
        while index < words.len() {
            let word = &words[index];
            index += 1;
            let Some(name) = word.strip_prefix('-').filter(|n| !n.is_empty()) else {
                return Err(self.positional(word));
            };
            let spec = self
                .command
                .options
                .iter()
                .find(|o| o.long == name)
                .ok_or_else(|| ParameterError::Unknown {
                    variable: self.variable.to_string(),
                    program: self.command.program.to_string(),
                    word: word.to_string(),
                })?;
            self.allowed(spec, word, false)?;
            given.push(spec);
            if spec.takes == Takes::Value {
                if index >= words.len() {
                    return Err(self.missing(spec));
                }
                index += 1;
            }
        }
        Ok(given)
    }

    fn long(&self, name: &str, word: &str) -> Result<&'static OptionSpec, ParameterError> {
        let options = self.command.options;
        if let Some(spec) = options
            .iter()
            .find(|o| !o.long.is_empty() && o.long == name)
        {
            return Ok(spec);
        }
        let candidates: Vec<&'static OptionSpec> = options
            .iter()
            .filter(|o| !o.long.is_empty() && !name.is_empty() && o.long.starts_with(name))
            .collect();
        match candidates.as_slice() {
            [one] => Ok(one),
            [] => Err(ParameterError::Unknown {
                variable: self.variable.to_string(),
                program: self.command.program.to_string(),
                word: word.to_string(),
            }),
            many => {
                // An abbreviation that could mean a controlled option is refused as such, so
                // the message names the real problem.
                if let Some(controlled) = many.iter().find(|o| self.is_controlled(o))
                    && !self.allow_controlled
                {
                    return Err(self.controlled(controlled, word, true));
                }
                Err(ParameterError::Ambiguous {
                    variable: self.variable.to_string(),
                    program: self.command.program.to_string(),
                    word: word.to_string(),
                    candidates: many
                        .iter()
                        .map(|o| format!("--{}", o.long))
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        }
    }

    fn short(&self, letter: char, word: &str) -> Result<&'static OptionSpec, ParameterError> {
        self.command
            .options
            .iter()
            .find(|o| o.short == Some(letter))
            .ok_or_else(|| ParameterError::Unknown {
                variable: self.variable.to_string(),
                program: self.command.program.to_string(),
                word: if word.len() > 2 {
                    format!("-{letter} (in {word:?})")
                } else {
                    word.to_string()
                },
            })
    }

    fn is_controlled(&self, spec: &OptionSpec) -> bool {
        self.command.controlled.iter().any(|c| {
            (!spec.long.is_empty() && *c == spec.long)
                || spec
                    .short
                    .is_some_and(|s| c.strip_prefix('-') == Some(&s.to_string()))
        })
    }

    fn allowed(
        &self,
        spec: &OptionSpec,
        word: &str,
        unusual_spelling: bool,
    ) -> Result<(), ParameterError> {
        if self.allow_controlled || !self.is_controlled(spec) {
            return Ok(());
        }
        Err(self.controlled(spec, word, unusual_spelling))
    }

    fn controlled(&self, spec: &OptionSpec, word: &str, unusual: bool) -> ParameterError {
        ParameterError::Controlled {
            variable: self.variable.to_string(),
            flag: self.display(spec),
            written: Written(unusual.then(|| word.to_string())),
        }
    }

    fn missing(&self, spec: &OptionSpec) -> ParameterError {
        ParameterError::MissingValue {
            variable: self.variable.to_string(),
            flag: self.display(spec),
        }
    }

    fn positional(&self, word: &str) -> ParameterError {
        ParameterError::Positional {
            variable: self.variable.to_string(),
            word: word.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[OptionSpec] = &[
        OptionSpec::both('o', "output", Takes::Value),
        OptionSpec::long("open-mode", Takes::Value),
        OptionSpec::both('p', "partition", Takes::Value),
        OptionSpec::both('v', "verbose", Takes::Nothing),
        OptionSpec::both('W', "wait", Takes::Nothing),
        OptionSpec::long("wrap", Takes::Value),
        OptionSpec::long("wckey", Takes::Value),
        OptionSpec::long("export", Takes::OptionalValue),
    ];
    const COMMAND: CommandOptions = CommandOptions {
        program: "sbatch",
        grammar: Grammar::Getopt,
        options: OPTIONS,
        controlled: &["output", "wait", "wrap"],
    };

    fn checked(text: &str) -> Result<Vec<String>, String> {
        user_parameters(&COMMAND, "SCHEDULER_PARAMETERS", text, false).map_err(|e| e.to_string())
    }

    #[test]
    fn ordinary_parameters_pass_unchanged() {
        assert_eq!(
            checked("-p gitlab-ci --wckey=x -v --export=ALL,FOO='a b' -pdebug").unwrap(),
            [
                "-p",
                "gitlab-ci",
                "--wckey=x",
                "-v",
                "--export=ALL,FOO=a b",
                "-pdebug"
            ]
        );
    }

    #[test]
    fn controlled_options_are_refused_in_every_spelling() {
        let refused = [
            (
                "-o out.txt",
                "-o/--output is set by batchci and cannot be given",
            ),
            (
                "--output=x",
                "-o/--output is set by batchci and cannot be given",
            ),
            ("--outp x", "(written as \"--outp\")"),
            ("-vofile", "(written as \"-vofile\")"),
            ("-W", "-W/--wait is set by batchci"),
            ("--wa", "-W/--wait is set by batchci"),
            ("--wrap='rm -rf /'", "--wrap is set by batchci"),
            ("--w x", "is set by batchci"),
        ];
        for (text, expected) in refused {
            let error = checked(text).unwrap_err();
            assert!(error.contains(expected), "{text:?} gave {error:?}");
            assert!(error.starts_with("SCHEDULER_PARAMETERS: "), "{error}");
        }
    }

    #[test]
    fn values_that_look_like_controlled_options_are_values() {
        assert!(checked("-p -o").is_ok());
        assert!(checked("--partition --wrap").is_ok());
        assert!(checked("-pW").is_ok());
    }

    #[test]
    fn words_that_are_not_options_are_refused() {
        assert_eq!(
            checked("-p debug evil.sh").unwrap_err(),
            "SCHEDULER_PARAMETERS: \"evil.sh\" is not an option; only options may be given"
        );
        assert!(
            checked("-- x")
                .unwrap_err()
                .contains("\"--\" is not an option")
        );
        assert!(checked("-").unwrap_err().contains("\"-\" is not an option"));
    }

    #[test]
    fn grammar_errors_are_named() {
        assert_eq!(
            checked("--bogus").unwrap_err(),
            "SCHEDULER_PARAMETERS: \"--bogus\" is not an option of sbatch"
        );
        assert_eq!(
            checked("-p").unwrap_err(),
            "SCHEDULER_PARAMETERS: -p/--partition needs a value"
        );
        assert_eq!(
            checked("--verbose=3").unwrap_err(),
            "SCHEDULER_PARAMETERS: -v/--verbose takes no value (got \"--verbose=3\")"
        );
        assert_eq!(
            checked("--wc x --o y").unwrap_err(),
            "SCHEDULER_PARAMETERS: -o/--output is set by batchci and cannot be given (written as \"--o\") (a site can permit it with allow_illegal_args = true in its batch settings)"
        );
        assert!(
            checked("-p 'unclosed")
                .unwrap_err()
                .starts_with("cannot split SCHEDULER_PARAMETERS")
        );
    }

    #[test]
    fn allow_illegal_args_lets_controlled_options_through() {
        let words = user_parameters(&COMMAND, "SCHEDULER_PARAMETERS", "-o x --wait", true).unwrap();
        assert_eq!(words, ["-o", "x", "--wait"]);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    const OPTIONS: &[OptionSpec] = &[
        OptionSpec::both('o', "output", Takes::Value),
        OptionSpec::both('p', "partition", Takes::Value),
        OptionSpec::both('v', "verbose", Takes::Nothing),
        OptionSpec::both('W', "wait", Takes::Nothing),
        OptionSpec::both('t', "time", Takes::Value),
    ];
    const COMMAND: CommandOptions = CommandOptions {
        program: "sbatch",
        grammar: Grammar::Getopt,
        options: OPTIONS,
        controlled: &["output", "wait"],
    };

    /// Renders option `index` with `value` in one of the spellings getopt accepts.
    fn spell(index: usize, spelling: u8, value: &str) -> Vec<String> {
        let spec = OPTIONS[index];
        let short = spec.short.unwrap_or('?');
        match (spec.takes, spelling % 4) {
            (Takes::Nothing, 0 | 2) => vec![format!("--{}", spec.long)],
            (Takes::Nothing, _) => vec![format!("-{short}")],
            (_, 0) => vec![format!("--{}={value}", spec.long)],
            (_, 1) => vec![format!("--{}", spec.long), value.to_string()],
            (_, 2) => vec![format!("-{short}{value}")],
            (_, _) => vec![format!("-{short}"), value.to_string()],
        }
    }

    proptest! {
        /// However options and their values are spelled — values included that look like
        /// controlled options — the check refuses exactly the lists holding a controlled option.
        #[test]
        fn refuses_exactly_the_controlled_options(
            items in proptest::collection::vec((0usize..5, any::<u8>(), "-?[a-zW]{1,4}"), 0..8),
        ) {
            let words: Vec<String> = items
                .iter()
                .flat_map(|(index, spelling, value)| spell(*index, *spelling, value))
                .collect();
            let has_controlled = items.iter().any(|(index, _, _)| matches!(OPTIONS[*index].long, "output" | "wait"));
            let result = check(&COMMAND, "V", &words, false);
            match result {
                Ok(()) => prop_assert!(!has_controlled, "{words:?} passed"),
                Err(ParameterError::Controlled { .. }) => prop_assert!(has_controlled, "{words:?}"),
                Err(other) => prop_assert!(false, "{words:?}: unexpected {other}"),
            }
            prop_assert!(check(&COMMAND, "V", &words, true).is_ok());
        }

        /// Splitting never panics, whatever the text.
        #[test]
        fn splitting_any_text_never_panics(text in any::<String>()) {
            let _ = user_parameters(&COMMAND, "V", &text, false);
        }
    }
}
