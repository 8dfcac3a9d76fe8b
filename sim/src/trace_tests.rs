use super::*;
use proptest::prelude::*;

const EXAMPLE: &str = "\
# found-by: fuzz alloc_ops   violates: I1
t0 alloc p1 48
t0 alloc p2 48 align=64
t0 alloc p3 100 zeroed
t1 free p1        # remote free: p1 belongs to t0
t0 free p2+24
t0 free foreign
t0 realloc p3 300
t0 drain
t0 collect
t0 exit
trim
os fail map 1
os fail commit 2
check
";

fn example_ops() -> Vec<Op> {
    vec![
        Op::Alloc {
            t: 0,
            id: 1,
            size: 48,
            align: 16,
            zeroed: false,
        },
        Op::Alloc {
            t: 0,
            id: 2,
            size: 48,
            align: 64,
            zeroed: false,
        },
        Op::Alloc {
            t: 0,
            id: 3,
            size: 100,
            align: 16,
            zeroed: true,
        },
        Op::Free { t: 1, id: 1 },
        Op::FreeInterior {
            t: 0,
            id: 2,
            offset: 24,
        },
        Op::FreeForeign { t: 0 },
        Op::Realloc {
            t: 0,
            id: 3,
            size: 300,
        },
        Op::Drain { t: 0 },
        Op::Collect { t: 0 },
        Op::Exit { t: 0 },
        Op::Trim,
        Op::OsFail {
            what: OsFailKind::Map,
            count: 1,
        },
        Op::OsFail {
            what: OsFailKind::Commit,
            count: 2,
        },
        Op::Check,
    ]
}

#[test]
fn the_documented_example_parses_to_the_expected_ops() {
    let trace = Trace::parse(EXAMPLE).unwrap();
    assert_eq!(trace.ops, example_ops());
}

#[test]
fn display_prints_the_canonical_form_without_comments() {
    let trace = Trace::new(example_ops());
    let canonical: String = EXAMPLE
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.find('#') {
            Some(h) => format!("{}\n", l[..h].trim_end()),
            None => format!("{l}\n"),
        })
        .collect();
    assert_eq!(trace.to_string(), canonical);
    assert_eq!(Trace::parse(&trace.to_string()), Ok(trace));
}

#[test]
fn explicit_default_alignment_and_odd_spacing_parse() {
    let trace = Trace::parse("\n   t3   alloc\tp7  0 zeroed align=16   \n\n# end\n").unwrap();
    assert_eq!(
        trace.ops,
        vec![Op::Alloc {
            t: 3,
            id: 7,
            size: 0,
            align: 16,
            zeroed: true
        }]
    );
    assert_eq!(trace.to_string(), "t3 alloc p7 0 zeroed\n");
}

#[test]
fn an_empty_text_is_an_empty_trace() {
    assert_eq!(Trace::parse(""), Ok(Trace::default()));
    assert_eq!(Trace::parse("# only a comment\n\n"), Ok(Trace::default()));
    assert_eq!(Trace::default().to_string(), "");
}

#[test]
fn the_parser_leaves_semantics_to_the_runner() {
    // freeing a handle that was never allocated is syntactically fine
    let trace = Trace::parse("t0 free p9\nt0 realloc p9 10\n").unwrap();
    assert_eq!(trace.ops.len(), 2);
}

fn err(text: &str) -> ParseError {
    Trace::parse(text).expect_err(text)
}

#[track_caller]
fn assert_err(text: &str, line: usize, column: usize, reason: &str) {
    let e = err(text);
    assert_eq!((e.line, e.column), (line, column), "{text:?} gave {e}");
    assert!(
        e.reason.contains(reason),
        "{text:?}: reason {:?} lacks {reason:?}",
        e.reason
    );
}

#[test]
fn each_parse_error_names_its_line_and_column() {
    assert_err(
        "t0 alloc x1 48",
        1,
        10,
        "expected a handle like p12, found 'x1'",
    );
    assert_err(
        "check\nt0 alloc p1 48 align=48",
        2,
        22,
        "alignment 48 is not a power of two",
    );
    assert_err("t17 drain", 1, 1, "thread t17 out of range (max t15)");
    assert_err("\n\n  t1 frobnicate", 3, 6, "unknown op 'frobnicate'");
    assert_err("t0 alloc p1", 1, 12, "expected a size in bytes after 'p1'");
    assert_err(
        "t0 alloc p1 4k",
        1,
        13,
        "expected a size in bytes, found '4k'",
    );
    assert_err("t0 alloc p1 1099511627777", 1, 13, "too large");
    assert_err("t0 alloc p1 8 zeroed zeroed", 1, 22, "duplicate 'zeroed'");
    assert_err(
        "t0 alloc p1 8 align=16 align=32",
        1,
        24,
        "duplicate 'align='",
    );
    assert_err(
        "t0 alloc p1 8 aligned",
        1,
        15,
        "unknown alloc option 'aligned'",
    );
    assert_err(
        "t0 alloc p1 8 align=x",
        1,
        21,
        "expected an alignment in bytes, found 'x'",
    );
    assert_err("t0 free p2+0", 1, 12, "interior offset must be positive");
    assert_err(
        "t0 free p2+q",
        1,
        12,
        "expected an offset in bytes after '+'",
    );
    assert_err("t0 free +4", 1, 9, "expected a handle like p12, found ''");
    assert_err(
        "t0 free",
        1,
        8,
        "expected a handle like p1, p1+8 or 'foreign' after 'free'",
    );
    assert_err(
        "t0 free p4294967296",
        1,
        9,
        "handle p4294967296 out of range",
    );
    assert_err("t0 drain now  # comment", 1, 10, "unexpected 'now'");
    assert_err("trim 3", 1, 6, "unexpected '3'");
    assert_err(
        "os fail disk 1",
        1,
        9,
        "expected 'map' or 'commit' after 'os fail', found 'disk'",
    );
    assert_err("os fail map", 1, 12, "expected a count after 'map'");
    assert_err(
        "os fail map -1",
        1,
        13,
        "expected a count from 0 to 4294967295",
    );
    assert_err(
        "os crash",
        1,
        4,
        "expected 'fail' after 'os', found 'crash'",
    );
    assert_err("alloc p1 8", 1, 1, "unknown op 'alloc'");
    assert_err(
        "tx alloc p1 8",
        1,
        1,
        "expected a thread like t0, found 'tx'",
    );
    assert_err("t0", 1, 3, "expected an op");
    assert_err(
        "t0 realloc p1",
        1,
        14,
        "expected a size in bytes after 'p1'",
    );
}

#[test]
fn parse_error_display_is_line_column_reason() {
    let e = err("check\n\nt0 alloc x1 48");
    assert_eq!(
        e.to_string(),
        "line 3, column 10: expected a handle like p12, found 'x1'"
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    // 'é' is two bytes but one column
    assert_err("t0 alloc p1 8 é", 1, 15, "unknown alloc option 'é'");
}

#[test]
fn headers_read_the_pairs_at_the_top_only() {
    let text = "# found-by: fuzz alloc_ops   violates: I1\n\
                #\n\
                # a free-form remark\n\
                # fixed-by: 0123abcd    seed: 42\n\
                t0 alloc p1 8\n\
                # late: ignored\n";
    assert_eq!(
        headers(text),
        vec![
            ("found-by".to_string(), "fuzz alloc_ops".to_string()),
            ("violates".to_string(), "I1".to_string()),
            ("fixed-by".to_string(), "0123abcd".to_string()),
            ("seed".to_string(), "42".to_string()),
        ]
    );
    assert_eq!(headers("t0 drain\n# found-by: x\n"), vec![]);
    assert_eq!(
        headers("#note: a b  c\n"),
        vec![("note".to_string(), "a b  c".to_string())]
    );
}

#[test]
fn with_headers_round_trips() {
    let h = vec![
        ("found-by".to_string(), "gen larson seed 7".to_string()),
        ("violates".to_string(), "I3".to_string()),
    ];
    let trace = Trace::new(example_ops());
    let text = with_headers(&h, &trace);
    assert_eq!(headers(&text), h);
    assert_eq!(Trace::parse(&text), Ok(trace));
}

#[test]
fn validate_names_the_first_op_out_of_text_bounds() {
    let mut trace = Trace::new(example_ops());
    assert_eq!(trace.validate(), Ok(()));
    trace.ops.push(Op::Drain { t: 16 });
    assert_eq!(
        trace.validate(),
        Err((14, "thread t16 out of range (max t15)".to_string()))
    );
}

fn any_op() -> impl Strategy<Value = Op> {
    let t = 0..MAX_THREADS as u8;
    let size = prop_oneof![0..4096usize, 0..=MAX_TEXT_SIZE];
    let align = (0..=40u32).prop_map(|s| 1usize << s);
    prop_oneof![
        (t.clone(), any::<u32>(), size.clone(), align, any::<bool>()).prop_map(
            |(t, id, size, align, zeroed)| Op::Alloc {
                t,
                id,
                size,
                align,
                zeroed
            }
        ),
        (t.clone(), any::<u32>()).prop_map(|(t, id)| Op::Free { t, id }),
        (t.clone(), any::<u32>(), 1..=MAX_TEXT_SIZE).prop_map(|(t, id, offset)| Op::FreeInterior {
            t,
            id,
            offset
        }),
        t.clone().prop_map(|t| Op::FreeForeign { t }),
        (t.clone(), any::<u32>(), size).prop_map(|(t, id, size)| Op::Realloc { t, id, size }),
        t.clone().prop_map(|t| Op::Drain { t }),
        t.clone().prop_map(|t| Op::Collect { t }),
        t.prop_map(|t| Op::Exit { t }),
        Just(Op::Trim),
        Just(Op::Check),
        (any::<bool>(), any::<u32>()).prop_map(|(map, count)| Op::OsFail {
            what: if map {
                OsFailKind::Map
            } else {
                OsFailKind::Commit
            },
            count
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::test_cases()))]

    #[test]
    fn every_valid_trace_survives_the_text_round_trip(
        ops in proptest::collection::vec(any_op(), 0..40)
    ) {
        let trace = Trace::new(ops);
        prop_assert_eq!(trace.validate(), Ok(()));
        prop_assert_eq!(Trace::parse(&trace.to_string()), Ok(trace));
    }

    #[test]
    fn the_parser_never_panics(
        text in prop_oneof!["[tp0-9a-z =+#:\n\t]{0,200}", "\\PC{0,100}"]
    ) {
        let _ = Trace::parse(&text);
        let _ = headers(&text);
    }
}

#[test]
fn a_setting_before_the_first_op_round_trips() {
    let text = "# found-by: test\nset parked-heaps 1   # one heap\nt0 alloc p1 16\nt0 exit\n";
    let trace = Trace::parse(text).unwrap();
    assert_eq!(trace.parked_heaps, Some(1));
    assert_eq!(trace.ops.len(), 2);
    assert_eq!(
        trace.to_string(),
        "set parked-heaps 1\nt0 alloc p1 16\nt0 exit\n"
    );
    assert_eq!(Trace::parse(&trace.to_string()), Ok(trace.clone()));
    // headers stop at the setting, which is not a comment
    let with = crate::trace::with_headers(&[("fixed-by".into(), "x".into())], &trace);
    assert_eq!(Trace::parse(&with), Ok(trace));
    assert_eq!(
        Trace::parse("set parked-heaps 0\n").unwrap().parked_heaps,
        Some(0)
    );
    assert_eq!(Trace::parse("t0 drain\n").unwrap().parked_heaps, None);
}

#[test]
fn a_bad_setting_names_its_line_column_and_fault() {
    for (text, line, column, reason) in [
        (
            "t0 drain\nset parked-heaps 1\n",
            2,
            1,
            "before the first op",
        ),
        (
            "set parked-heaps 1\nset parked-heaps 2\n",
            2,
            5,
            "set twice",
        ),
        ("set heaps 1\n", 1, 5, "unknown setting 'heaps'"),
        ("set parked-heaps 17\n", 1, 18, "from 0 to 16"),
        ("set parked-heaps x\n", 1, 18, "from 0 to 16"),
        ("set parked-heaps\n", 1, 17, "expected a number of heaps"),
        ("set parked-heaps 1 2\n", 1, 20, "unexpected '2'"),
    ] {
        assert_err(text, line, column, reason);
    }
    let big = Trace {
        parked_heaps: Some(MAX_PARKED_HEAPS + 1),
        ..Trace::default()
    };
    assert!(big.validate().unwrap_err().1.contains("too large"));
}
