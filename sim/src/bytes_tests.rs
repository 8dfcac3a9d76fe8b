use super::*;
use proptest::prelude::*;

fn decode_text(bytes: &[u8]) -> String {
    decode(bytes).to_string()
}

#[test]
fn a_pinned_byte_string_decodes_to_the_pinned_trace() {
    // Pins format version 1: if this changes, the committed corpus rots.
    #[rustfmt::skip]
    let bytes = [
        1,                      // 2 threads
        0, 1, 5,                // alloc t1, size selector 5 = 32 - 1
        96, 0,                  // free live[0] by its owner
        247, 0, 0,              // double free recent[0] on t0
        80, 0, 130, 0x00, 0x04, 40, // alloc+flags t0, 1024, align ALIGNS[8] = 32, zeroed
        150, 0, 3,              // free remote live[0] on t(3 % 2)
        228,                    // check
        240, 5,                 // os fail map 1 + 5 % 3
        253, 1,                 // free foreign t1
        0, 0, 252, 0x00, 0x00, 0x10, // alloc t0 2^20 % (2^20 + 1)
        250, 0, 1, 20,          // free interior live[0] on t1 at 1 + 20
        178, 0, 254,            // realloc live[0] by its owner to 0
        0,                      // truncated alloc: dropped
    ];
    assert_eq!(
        decode_text(&bytes),
        "t1 alloc p1 31\n\
         t1 free p1\n\
         t0 free p1\n\
         t0 alloc p2 1024 align=32 zeroed\n\
         t1 free p2\n\
         check\n\
         os fail map 3\n\
         t1 free foreign\n\
         t0 alloc p3 1048576\n\
         t1 free p3+21\n\
         t0 realloc p3 0\n"
    );
    let trace = decode(&bytes);
    assert_eq!(decode(&encode(&trace).unwrap()), trace);
}

#[test]
fn empty_and_one_byte_inputs_are_empty_traces() {
    assert_eq!(decode(&[]), Trace::default());
    assert_eq!(decode(&[3]), Trace::default());
    assert_eq!(decode(&[7]).parked_heaps, Some(1));
    assert!(decode(&[7]).ops.is_empty());
    assert_eq!(encode(&Trace::default()), Some(vec![0]));
}

#[test]
fn ops_that_need_a_live_handle_are_skipped_when_none_is() {
    // free, remote free, realloc, double free, interior: nothing live
    let trace = decode(&[0, 96, 150, 178, 192, 247, 250, 228]);
    assert_eq!(trace.ops, vec![Op::Check]);
}

#[test]
fn every_opcode_byte_has_one_code_and_each_code_its_first_byte() {
    for code in Code::ALL {
        assert_eq!(Code::of(code.byte()), code);
        if code.byte() > 0 {
            assert_ne!(Code::of(code.byte() - 1), code, "{code:?} starts earlier");
        }
    }
}

#[test]
fn every_size_up_to_one_mib_has_a_shortest_encoding() {
    let sizes = (0..=70_000).chain((70_000..=MIB).step_by(997)).chain([MIB]);
    for size in sizes {
        let mut out = Vec::new();
        write_size(&mut out, size).unwrap();
        let mut r = Reader { data: &out, pos: 0 };
        assert_eq!(r.size(), Some(size));
        assert_eq!(r.pos, out.len());
        if (0..=255).any(|s| one_byte_size(s) == Some(size)) {
            assert_eq!(out.len(), 1, "size {size}");
        }
    }
    assert_eq!(write_size(&mut Vec::new(), MIB + 1), None);
}

#[test]
fn one_byte_sizes_hit_the_edges_of_tiny_geometry() {
    let sizes: Vec<usize> = (0..=255).filter_map(one_byte_size).collect();
    for must in [
        0, 1, 8, 15, 16, 17, 255, 256, 257, 2047, 2048, 2049, 4096, 65536,
    ] {
        assert!(sizes.contains(&must), "{must} missing");
    }
}

#[test]
fn every_power_of_two_alignment_up_to_64k_encodes() {
    for shift in 0..=16 {
        let trace = Trace::new(vec![Op::Alloc {
            t: 0,
            id: 1,
            size: 10,
            align: 1 << shift,
            zeroed: shift % 2 == 0,
        }]);
        assert_eq!(decode(&encode(&trace).unwrap()), trace);
    }
}

#[test]
fn encode_rejects_what_decode_cannot_produce() {
    let alloc = |t, id, size| Op::Alloc {
        t,
        id,
        size,
        align: DEFAULT_ALIGN,
        zeroed: false,
    };
    let rejects = |ops: Vec<Op>| assert_eq!(encode(&Trace::new(ops.clone())), None, "{ops:?}");
    rejects(vec![alloc(4, 1, 8)]); // a fifth thread
    rejects(vec![alloc(0, 2, 8)]); // not p1 first
    rejects(vec![alloc(0, 1, MIB + 1)]); // too big
    rejects(vec![Op::Free { t: 0, id: 1 }]); // never allocated
    rejects(vec![
        alloc(0, 1, 8),
        Op::FreeInterior {
            t: 0,
            id: 1,
            offset: 8,
        },
    ]);
    rejects(vec![
        alloc(0, 1, 1),
        Op::FreeInterior {
            t: 0,
            id: 1,
            offset: 1,
        },
    ]);
    rejects(vec![Op::OsFail {
        what: OsFailKind::Map,
        count: 4,
    }]);
    let mut ops: Vec<Op> = (1..=9).map(|id| alloc(0, id, 8)).collect();
    ops.extend((1..=9).map(|id| Op::Free { t: 0, id }));
    ops.push(Op::Free { t: 1, id: 1 }); // p1 is no longer among the last 8 freed
    rejects(ops.clone());
    ops.pop();
    ops.push(Op::Free { t: 1, id: 2 }); // p2 still is
    let trace = Trace::new(ops);
    assert_eq!(decode(&encode(&trace).unwrap()), trace);
}

#[test]
fn many_live_handles_use_wider_handle_operands() {
    let mut ops = Vec::new();
    for id in 1..=70_000u32 {
        ops.push(Op::Alloc {
            t: (id % 3) as u8,
            id,
            size: (id as usize * 7) % 3000,
            align: DEFAULT_ALIGN,
            zeroed: false,
        });
    }
    // free in an order unrelated to the live vector's
    for k in 0..70_000u32 {
        let id = 1 + (k * 7919) % 70_000;
        ops.push(Op::Free {
            t: (k % 4) as u8,
            id,
        });
    }
    let trace = Trace::new(ops);
    let bytes = encode(&trace).unwrap();
    assert_eq!(decode(&bytes), trace);
}

/// A fixed pseudo-random byte string (xorshift), for distribution checks.
fn noise(len: usize, mut x: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

#[test]
fn random_bytes_give_mostly_allocs_and_frees_and_a_little_misuse() {
    let trace = decode(&noise(400_000, 0x9e37_79b9_7f4a_7c15));
    let n = trace.ops.len() as f64;
    let count = |f: &dyn Fn(&Op) -> bool| trace.ops.iter().filter(|o| f(o)).count() as f64 / n;
    let mut freed = std::collections::HashSet::new();
    let mut double = 0usize;
    for op in &trace.ops {
        if let Op::Free { id, .. } = op {
            if !freed.insert(*id) {
                double += 1;
            }
        }
    }
    let alloc_free = count(&|o| matches!(o, Op::Alloc { .. } | Op::Free { .. }));
    let interior = count(&|o| matches!(o, Op::FreeInterior { .. }));
    let foreign = count(&|o| matches!(o, Op::FreeForeign { .. }));
    let double = double as f64 / n;
    assert!((0.6..0.8).contains(&alloc_free), "alloc+free {alloc_free}");
    for (what, f) in [
        ("interior", interior),
        ("foreign", foreign),
        ("double", double),
    ] {
        assert!((0.005..0.02).contains(&f), "{what} {f}");
    }
    let sizes: Vec<usize> = trace
        .ops
        .iter()
        .filter_map(|o| match o {
            Op::Alloc { size, .. } => Some(*size),
            _ => None,
        })
        .collect();
    let frac = |f: &dyn Fn(usize) -> bool| {
        sizes.iter().filter(|&&s| f(s)).count() as f64 / sizes.len() as f64
    };
    assert!(frac(&|s| s <= 256) > 0.4);
    assert!((0.05..0.2).contains(&frac(&|s| s > 2048)));
    assert!(frac(&|s| s > 65536) > 0.0);
    assert!(frac(&|s| s == 0) > 0.0);
    let aligned = count(&|o| matches!(o, Op::Alloc { align, .. } if *align > 16));
    assert!(aligned > 0.01, "aligned {aligned}");
}

#[test]
fn arbitrary_take_rest_decodes_the_whole_input() {
    use arbitrary::{Arbitrary, Unstructured};
    let bytes = noise(300, 1);
    let t = Trace::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
    assert_eq!(t, decode(&bytes));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::test_cases()))]

    #[test]
    fn encode_inverts_decode(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let trace = decode(&bytes);
        let again = encode(&trace).expect("every decoded trace encodes");
        prop_assert_eq!(decode(&again), trace);
    }

    #[test]
    fn decoded_traces_survive_the_text_round_trip(
        bytes in proptest::collection::vec(any::<u8>(), 0..600)
    ) {
        let trace = decode(&bytes);
        prop_assert_eq!(Trace::parse(&trace.to_string()), Ok(trace));
    }
}

#[test]
fn bit_2_of_the_first_byte_parks_a_heap() {
    let plain = decode(&[1, 0, 0, 0]);
    assert_eq!(plain.parked_heaps, None);
    let parked = decode(&[1 | 4, 0, 0, 0]);
    assert_eq!(parked.parked_heaps, Some(1));
    assert_eq!(parked.ops, plain.ops, "the bit changes the setting only");
    assert_eq!(decode(&[4]).parked_heaps, Some(1));
    assert_eq!(
        encode(&parked),
        Some(vec![4, 0, 0, 0]),
        "t0 only: one thread"
    );
    assert_eq!(decode(&encode(&parked).unwrap()), parked);
    for n in [0, 2] {
        let t = Trace {
            parked_heaps: Some(n),
            ..plain.clone()
        };
        assert_eq!(encode(&t), None, "parked-heaps {n} has no byte form");
    }
}
