//! hakmem-sim: the deterministic harness.
