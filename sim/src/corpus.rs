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
/// [`CORPUS_OPS`].
pub fn seed_inputs() -> Vec<SeedInput> {
    let mut out = Vec::new();
    for mix in Mix::ALL {
        for seed in CORPUS_SEEDS {
            for ops in CORPUS_OPS {
                let trace = generate(mix, seed, ops);
                let bytes = encode(&trace).unwrap_or_else(|| {
                    panic!("generate({mix}, {seed}, {ops}) made a trace the byte form cannot carry")
                });
                out.push(SeedInput {
                    name: format!("{mix}-s{seed}-n{ops}"),
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
            Mix::ALL.len() * CORPUS_SEEDS.len() * CORPUS_OPS.len()
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
            let mut parts = input.name.rsplitn(3, '-');
            let ops: usize = parts.next().unwrap()[1..].parse().unwrap();
            let seed: u64 = parts.next().unwrap()[1..].parse().unwrap();
            let mix: Mix = parts.next().unwrap().parse().unwrap();
            assert_eq!(
                decode(&input.bytes),
                generate(mix, seed, ops),
                "{}",
                input.name
            );
        }
    }
}
