//! A double free and a free of a foreign pointer are typed errors the
//! runner records at the op that made them (`RunReport::misuse`), not a
//! crash and not a failure; the run goes on and ends quiescent.

use hakmem::FreeError;
use hakmem_sim::{run, RunConfig, RunReport, Trace};

fn replay(text: &str, cfg: &RunConfig) -> RunReport {
    let trace = Trace::parse(text).expect("the trace parses");
    run(&trace, cfg).unwrap_or_else(|f| panic!("misuse must not fail the run: {f}\n{trace}"))
}

#[test]
fn a_double_free_is_reported_as_a_typed_error_at_its_op() {
    for cfg in [RunConfig::tiny(), RunConfig::production()] {
        let r = replay(
            "t0 alloc p1 48\n\
             t0 alloc p2 48\n\
             t0 free p1\n\
             t0 free p1      # op 3 (0-based): the double free\n\
             t0 free p2\n\
             t0 drain\n",
            &cfg,
        );
        assert_eq!(r.misuse.len(), 1, "{:?}", r.misuse);
        let (op, err) = r.misuse[0];
        assert_eq!(op, 3);
        assert!(matches!(err, FreeError::DoubleFree { .. }), "{err:?}");
    }
}

#[test]
fn a_remote_double_free_after_a_drain_is_reported_too() {
    // The block is back on its slab's free list (not in a cache) when the
    // second free, from another thread, comes; p2 keeps the slab in use.
    let r = replay(
        "t0 alloc p1 300\n\
         t0 alloc p2 300\n\
         t0 free p1\n\
         t0 drain\n\
         t1 free p1\n",
        &RunConfig::tiny(),
    );
    assert_eq!(r.misuse.len(), 1, "{:?}", r.misuse);
    assert_eq!(r.misuse[0].0, 4);
    assert!(
        matches!(r.misuse[0].1, FreeError::DoubleFree { .. }),
        "{:?}",
        r.misuse[0].1
    );
}

#[test]
fn a_free_into_a_retired_slab_is_reported_as_not_allocated() {
    // The drain empties and retires the slab: p1 no longer is a block.
    let r = replay(
        "t0 alloc p1 300\n\
         t0 free p1\n\
         t0 drain\n\
         t1 free p1\n",
        &RunConfig::tiny(),
    );
    assert_eq!(r.misuse.len(), 1, "{:?}", r.misuse);
    assert_eq!(r.misuse[0].0, 3);
    assert!(
        matches!(r.misuse[0].1, FreeError::NotAllocated { .. }),
        "{:?}",
        r.misuse[0].1
    );
}

#[test]
fn a_foreign_free_is_reported_as_not_owned_at_its_op() {
    let r = replay(
        "t0 alloc p1 48\n\
         t1 free foreign\n\
         t0 free foreign\n\
         t0 free p1\n",
        &RunConfig::tiny(),
    );
    let ops: Vec<usize> = r.misuse.iter().map(|&(op, _)| op).collect();
    assert_eq!(ops, [1, 2]);
    for (_, err) in &r.misuse {
        assert!(matches!(err, FreeError::NotOwned { .. }), "{err:?}");
    }
}

#[test]
fn an_interior_free_names_the_block_it_points_into() {
    let r = replay(
        "t0 alloc p1 100\nt0 free p1+24\nt0 free p1\n",
        &RunConfig::tiny(),
    );
    assert_eq!(r.misuse.len(), 1, "{:?}", r.misuse);
    let (op, err) = r.misuse[0];
    assert_eq!(op, 1);
    match err {
        FreeError::Interior { ptr, block } => assert_eq!(ptr, block + 24),
        other => panic!("expected Interior, got {other:?}"),
    }
}
