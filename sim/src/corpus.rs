//! The seed corpus of the `alloc_ops` fuzz target: generated workloads in
//! the byte form ([`encode`]), one small file per mix, seed and length.
//!
//! `corpus/alloc_ops/` at the top of the repository is committed and holds
//! exactly [`seed_inputs`] (plus whatever inputs a fuzzing campaign was
//! merged in, if any). `sim/tests/corpus.rs` replays every file and checks
//! that the seeded files are byte for byte what this module generates, so
//! the byte format ([`FORMAT_VERSION`](crate::bytes::FORMAT_VERSION)) cannot
//! drift away from the corpus silently. Regenerate after a deliberate change
//! with `HAKMEM_WRITE_CORPUS=1 cargo test -p hakmem-sim --test corpus`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::bytes::encode;
use crate::gen::{generate, Mix};

/// Seeds of [`generate`] used for every mix.
pub const CORPUS_SEEDS: [u64; 3] = [1, 2, 3];

/// Trace lengths (ops) used for every mix and seed: a short input that
/// mutates quickly and a longer one that reaches slab and segment churn.
pub const CORPUS_OPS: [usize; 2] = [100, 400];

/// One seed input: its file name and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedInput {
    /// `<mix>-s<seed>-n<ops>`, e.g. `larson-s3-n400`.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The seed inputs, in a fixed order: every [`Mix`] × [`CORPUS_SEEDS`] ×
/// [`CORPUS_OPS`], then the same for seed 1 with `set parked-heaps 1`
/// (named `...-parked`), so that the fuzzer starts from inputs whose
/// exiting threads park their heaps as well as from ones whose heaps are
/// flushed and abandoned.
pub fn seed_inputs() -> Vec<SeedInput> {
    let mut out = Vec::new();
    let variants = CORPUS_SEEDS
        .iter()
        .map(|&s| (s, None))
        .chain([(CORPUS_SEEDS[0], Some(1))]);
    for (seed, parked) in variants {
        for mix in Mix::ALL {
            for ops in CORPUS_OPS {
                let mut trace = generate(mix, seed, ops);
                trace.parked_heaps = parked;
                let bytes = encode(&trace).unwrap_or_else(|| {
                    panic!("generate({mix}, {seed}, {ops}) made a trace the byte form cannot carry")
                });
                let suffix = if parked.is_some() { "-parked" } else { "" };
                out.push(SeedInput {
                    name: format!("{mix}-s{seed}-n{ops}{suffix}"),
                    bytes,
                });
            }
        }
    }
    out
}

/// Writes every seed input into `dir` (created if missing), overwriting
/// files of the same name and leaving any other file alone. Returns the
/// paths written.
pub fn seed_corpus(dir: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for input in seed_inputs() {
        let path = dir.join(&input.name);
        fs::write(&path, &input.bytes)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::decode;

    #[test]
    fn seed_names_are_unique_and_inputs_small() {
        let inputs = seed_inputs();
        assert_eq!(
            inputs.len(),
            Mix::ALL.len() * (CORPUS_SEEDS.len() + 1) * CORPUS_OPS.len()
        );
        assert_eq!(
            inputs
                .iter()
                .filter(|i| decode(&i.bytes).parked_heaps == Some(1))
                .count(),
            Mix::ALL.len() * CORPUS_OPS.len(),
            "one parked variant per mix and length"
        );
        let mut names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), inputs.len());
        for input in &inputs {
            assert!(
                input.bytes.len() <= 4096,
                "{} is {} bytes: above libFuzzer's default max_len",
                input.name,
                input.bytes.len()
            );
        }
    }

    #[test]
    fn every_seed_input_decodes_to_its_generated_trace() {
        for input in seed_inputs() {
            let (name, parked) = match input.name.strip_suffix("-parked") {
                Some(n) => (n, Some(1)),
                None => (input.name.as_str(), None),
            };
            let mut parts = name.rsplitn(3, '-');
            let ops: usize = parts.next().unwrap()[1..].parse().unwrap();
            let seed: u64 = parts.next().unwrap()[1..].parse().unwrap();
            let mix: Mix = parts.next().unwrap().parse().unwrap();
            let mut expected = generate(mix, seed, ops);
            expected.parked_heaps = parked;
            assert_eq!(decode(&input.bytes), expected, "{}", input.name);
        }
    }
}
