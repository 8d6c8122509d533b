//! Property tests for the parsers: time strings, hostlists, memory sizes, file name patterns and
//! getopt-style argument handling.

use mock_cluster::cli::getopt::{self, HasArg, opt};
use mock_cluster::hostlist;
use mock_cluster::pattern::{self, PatternFields};
use mock_cluster::units::{self, TimeLimit};
use proptest::prelude::*;

proptest! {
    #[test]
    fn time_forms_agree(d in 0u64..30, h in 0u64..24, m in 0u64..60, s in 0u64..60) {
        let total = d * 86400 + h * 3600 + m * 60 + s;
        let expected = if total == 0 { TimeLimit::Unlimited } else { TimeLimit::Seconds(total.div_ceil(60) * 60) };
        prop_assert_eq!(units::parse_time_limit(&format!("{d}-{h}:{m}:{s}")), Ok(expected));
        let hms = h * 3600 + m * 60 + s;
        let expected = if hms == 0 { TimeLimit::Unlimited } else { TimeLimit::Seconds(hms.div_ceil(60) * 60) };
        prop_assert_eq!(units::parse_time_limit(&format!("{h}:{m}:{s}")), Ok(expected));
        let minutes = m + 1;
        prop_assert_eq!(units::parse_time_limit(&minutes.to_string()), Ok(TimeLimit::Seconds(minutes * 60)));
    }

    #[test]
    fn time_parser_never_panics(text in "\\PC{0,20}") {
        let _ = units::parse_time_limit(&text);
    }

    #[test]
    fn durations_round_trip_through_squeue_format(secs in 0u64..10_000_000) {
        let text = units::format_squeue_duration(secs);
        let back = match units::parse_time_limit(&text) {
            Ok(TimeLimit::Seconds(s)) => s,
            Ok(TimeLimit::Unlimited) => 0,
            Err(e) => return Err(TestCaseError::fail(format!("{text}: {e}"))),
        };
        prop_assert_eq!(back, secs.div_ceil(60) * 60);
    }

    #[test]
    fn memory_units(n in 0u64..100_000) {
        prop_assert_eq!(units::parse_memory_mb(&n.to_string()), Ok(n));
        prop_assert_eq!(units::parse_memory_mb(&format!("{n}M")), Ok(n));
        prop_assert_eq!(units::parse_memory_mb(&format!("{n}G")), Ok(n * 1024));
        prop_assert_eq!(units::parse_memory_mb(&format!("{n}K")), Ok(n.div_ceil(1024)));
        let bad = format!("{n}X");
        prop_assert!(units::parse_memory_mb(&bad).is_err());
    }

    #[test]
    fn hostlists_round_trip(prefix in "[a-z]{1,6}", start in 0u32..500, len in 1u32..40, width in 1usize..5) {
        let names: Vec<String> = (start..start + len).map(|n| format!("{prefix}{n:0width$}")).collect();
        let compressed = hostlist::compress(&names);
        prop_assert_eq!(hostlist::expand(&compressed).unwrap(), names);
    }

    #[test]
    fn hostlist_parser_never_panics(text in "[a-z0-9\\[\\],-]{0,30}") {
        let _ = hostlist::expand(&text);
    }

    #[test]
    fn patterns_expand_ids_with_padding(id in 1u32..1_000_000, width in 0usize..12, name in "[a-z]{1,8}") {
        let f = PatternFields { job_id: id, array_job_id: id, array_task_id: pattern::NO_ARRAY_TASK, job_name: &name, user: "u", node: "n", step: "batch" };
        let w = width.min(10);
        prop_assert_eq!(pattern::expand(&format!("x-%{width}j-%x-%%"), &f), format!("x-{id:0w$}-{name}-%"));
        prop_assert_eq!(pattern::expand(&format!("x-\\%{width}j"), &f), format!("x-%{width}j"));
    }

    #[test]
    fn pattern_expansion_never_panics(text in "\\PC{0,30}") {
        let f = PatternFields { job_id: 7, array_job_id: 7, array_task_id: 1, job_name: "j", user: "u", node: "n", step: "batch" };
        let _ = pattern::expand(&text, &f);
    }

    #[test]
    fn getopt_accepts_every_spelling_of_an_option(value in "[a-zA-Z0-9_./-]{1,12}") {
        let spec = [opt("job-name", Some('J'), HasArg::Required), opt("wait", Some('W'), HasArg::No)];
        let forms: Vec<Vec<String>> = vec![
            vec!["-J".into(), value.clone()],
            vec![format!("-J{value}")],
            vec![format!("--job-name={value}")],
            vec!["--job-name".into(), value.clone()],
            vec![format!("--job={value}")],
            vec!["-WJ".into(), value.clone()],
        ];
        for args in forms {
            let parsed = getopt::parse("sbatch", &args, &spec, true).unwrap();
            prop_assert_eq!(parsed.value("job-name"), Some(value.as_str()));
        }
    }

    #[test]
    fn getopt_stops_at_the_script_and_keeps_shell_words(args in proptest::collection::vec("[^\\x00]{0,10}", 0..5)) {
        let spec = [opt("wait", Some('W'), HasArg::No)];
        let mut argv = vec!["--wait".to_string(), "job.sh".to_string()];
        argv.extend(args.iter().cloned());
        let parsed = getopt::parse("sbatch", &argv, &spec, true).unwrap();
        prop_assert!(parsed.has("wait"));
        prop_assert_eq!(&parsed.operands[0], "job.sh");
        prop_assert_eq!(&parsed.operands[1..], &args[..]);
    }
}

#[test]
fn getopt_errors_are_gnu_messages() {
    let spec = [
        opt("job-name", Some('J'), HasArg::Required),
        opt("mem", None, HasArg::Required),
        opt("mem-per-cpu", None, HasArg::Required),
        opt("wait", None, HasArg::No),
    ];
    let err = |args: &[&str]| {
        getopt::parse(
            "sbatch",
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &spec,
            true,
        )
        .unwrap_err()
    };
    assert_eq!(err(&["--bogus"]), "sbatch: unrecognized option '--bogus'");
    assert_eq!(err(&["-Z"]), "sbatch: invalid option -- 'Z'");
    assert_eq!(err(&["-J"]), "sbatch: option requires an argument -- 'J'");
    assert_eq!(
        err(&["--job-name"]),
        "sbatch: option '--job-name' requires an argument"
    );
    assert_eq!(
        err(&["--wait=1"]),
        "sbatch: option '--wait' doesn't allow an argument"
    );
    assert_eq!(
        err(&["--me=1"]),
        "sbatch: option '--me' is ambiguous; possibilities: '--mem' '--mem-per-cpu'"
    );
}

#[test]
fn the_embedded_default_cluster_is_as_documented() {
    let c = mock_cluster::config::Cluster::embedded_default();
    assert_eq!(
        c.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        ["node01", "node02", "node03", "node04"]
    );
    assert!(c.nodes.iter().all(|n| n.cpus == 4 && n.memory_mb == 16000));
    assert_eq!(
        c.partitions
            .iter()
            .map(|p| (p.name.as_str(), p.default))
            .collect::<Vec<_>>(),
        [("debug", true), ("gitlab-ci", false)]
    );
}
