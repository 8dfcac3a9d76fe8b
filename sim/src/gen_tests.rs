use std::collections::HashMap;

use super::*;
use crate::bytes::{decode, encode};

/// Replays the trace's semantics: ids sequential, frees and reallocs of
/// live handles only, no misuse. Returns (remote frees, all frees, the
/// smallest live count after the first alloc).
fn check_valid(trace: &Trace) -> (usize, usize, usize) {
    let mut owner: HashMap<u32, u8> = HashMap::new();
    let mut next = 1;
    let (mut remote, mut frees, mut min_live) = (0, 0, usize::MAX);
    for (i, op) in trace.ops.iter().enumerate() {
        match *op {
            Op::Alloc {
                t, id, size, align, ..
            } => {
                assert_eq!(id, next, "op {i}: {op}");
                next += 1;
                assert!(size <= 1 << 20 && align.is_power_of_two() && align <= 65536);
                owner.insert(id, t);
            }
            Op::Free { t, id } => {
                let o = owner
                    .remove(&id)
                    .unwrap_or_else(|| panic!("op {i}: {op} of a dead handle"));
                frees += 1;
                remote += usize::from(o != t);
            }
            Op::Realloc { t, id, .. } => {
                assert!(
                    owner.insert(id, t).is_some(),
                    "op {i}: {op} of a dead handle"
                );
            }
            Op::FreeInterior { .. } | Op::FreeForeign { .. } => panic!("op {i}: misuse {op}"),
            Op::OsFail { count, .. } => assert!((1..=3).contains(&count)),
            _ => {}
        }
        if let Some(t) = op.thread() {
            assert!(t < 4, "op {i}: {op}");
        }
        if next > 1 {
            min_live = min_live.min(owner.len());
        }
    }
    (remote, frees, min_live)
}

#[test]
fn mixes_parse_from_their_names() {
    for mix in Mix::ALL {
        assert_eq!(mix.name().parse::<Mix>(), Ok(mix));
        assert_eq!(mix.to_string(), mix.name());
    }
    assert!("larsen"
        .parse::<Mix>()
        .unwrap_err()
        .contains("unknown mix 'larsen'"));
}

#[test]
fn every_mix_is_deterministic_valid_and_exactly_as_long_as_asked() {
    for mix in Mix::ALL {
        for seed in 0..4 {
            for ops in [0, 1, 7, 300, 3000] {
                let trace = generate(mix, seed, ops);
                assert_eq!(trace.ops.len(), ops, "{mix} seed {seed}");
                assert_eq!(trace, generate(mix, seed, ops));
                check_valid(&trace);
            }
        }
        assert_ne!(generate(mix, 1, 500), generate(mix, 2, 500), "{mix}");
    }
}

#[test]
fn a_shorter_trace_is_a_prefix_of_a_longer_one_except_for_slab_churn() {
    // slab-churn sizes its cycles to fit the budget, so it is not prefix-stable
    for mix in [Mix::Random, Mix::Larson, Mix::ProducerConsumer] {
        let long = generate(mix, 9, 2000);
        let short = generate(mix, 9, 700);
        assert!(short.ops[..] == long.ops[..700], "{mix}");
    }
}

#[test]
fn every_mix_encodes_to_bytes_and_back() {
    for mix in Mix::ALL {
        for seed in 0..4 {
            let trace = generate(mix, seed, 4000);
            let bytes =
                encode(&trace).unwrap_or_else(|| panic!("{mix} seed {seed} does not encode"));
            assert_eq!(decode(&bytes), trace, "{mix} seed {seed}");
            assert_eq!(Trace::parse(&trace.to_string()), Ok(trace));
        }
    }
}

#[test]
fn producer_consumer_frees_are_mostly_remote() {
    for seed in 0..4 {
        let (remote, frees, _) = check_valid(&generate(Mix::ProducerConsumer, seed, 5000));
        assert!(remote * 3 > frees * 2, "seed {seed}: {remote} of {frees}");
    }
}

#[test]
fn larson_hands_blocks_between_threads() {
    for seed in 0..4 {
        let trace = generate(Mix::Larson, seed, 5000);
        let (remote, frees, _) = check_valid(&trace);
        assert!(remote * 10 > frees, "seed {seed}: {remote} of {frees}");
        let threads: std::collections::BTreeSet<u8> =
            trace.ops.iter().filter_map(Op::thread).collect();
        assert!(threads.len() >= 2);
    }
}

#[test]
fn slab_churn_empties_everything_and_trims_repeatedly() {
    for seed in 0..4 {
        let trace = generate(Mix::SlabChurn, seed, 20_000);
        let (remote, frees, min_live) = check_valid(&trace);
        assert_eq!(min_live, 0, "seed {seed}");
        assert!(remote > 0);
        let trims = trace.ops.iter().filter(|o| **o == Op::Trim).count();
        assert!(trims >= 2, "seed {seed}: {trims} cycles");
        assert!(frees > 2 * 4096 / 2048, "seed {seed}");
    }
    // even a short budget completes one cycle: fill, free, trim
    let short = generate(Mix::SlabChurn, 3, 40);
    assert!(short.ops.contains(&Op::Trim));
}

#[test]
fn random_uses_every_kind_of_valid_op() {
    let trace = generate(Mix::Random, 5, 20_000);
    let has = |f: &dyn Fn(&Op) -> bool| trace.ops.iter().any(f);
    assert!(has(&|o| matches!(o, Op::Realloc { .. })));
    assert!(has(&|o| matches!(o, Op::Drain { .. })));
    assert!(has(&|o| matches!(o, Op::Collect { .. })));
    assert!(has(&|o| matches!(o, Op::Exit { .. })));
    assert!(has(&|o| matches!(o, Op::Trim)));
    assert!(has(&|o| matches!(o, Op::Check)));
    assert!(has(&|o| matches!(
        o,
        Op::OsFail {
            what: OsFailKind::Map,
            ..
        }
    )));
    assert!(has(&|o| matches!(
        o,
        Op::OsFail {
            what: OsFailKind::Commit,
            ..
        }
    )));
    assert!(has(
        &|o| matches!(o, Op::Alloc { align, .. } if *align > 4096)
    ));
    assert!(has(&|o| matches!(o, Op::Alloc { zeroed: true, .. })));
    assert!(has(
        &|o| matches!(o, Op::Alloc { size, .. } if *size > 65536)
    ));
    assert!(has(&|o| matches!(o, Op::Alloc { size: 0, .. })));
}

#[test]
fn splitmix_matches_the_reference_sequence() {
    // first outputs of the reference splitmix64 for seed 1234567
    let mut r = SplitMix64::new(1234567);
    assert_eq!(r.next_u64(), 6457827717110365317);
    assert_eq!(r.next_u64(), 3203168211198807973);
}
