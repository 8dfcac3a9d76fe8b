//! The committed fuzz corpora replay cleanly through the fuzz driver, and
//! the seeded files of `corpus/alloc_ops/` are exactly what
//! `hakmem_sim::corpus::seed_inputs` generates (so neither the byte format
//! nor the workload generator can drift away from the corpus silently).
//!
//! After a deliberate change of either, regenerate the seeds with
//! `HAKMEM_WRITE_CORPUS=1 cargo test -p hakmem-sim --test corpus` and
//! commit the result.

use std::fs;
use std::path::{Path, PathBuf};

use hakmem_sim::corpus::{seed_corpus, seed_inputs};
use hakmem_sim::fuzz::{crash_message, run_alloc_ops};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(target)
}

/// The regular files of `dir`, sorted; empty if `dir` does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn the_seeded_alloc_ops_corpus_matches_the_generator() {
    let dir = corpus_dir("alloc_ops");
    if std::env::var_os("HAKMEM_WRITE_CORPUS").is_some() {
        let written = seed_corpus(&dir).expect("write the seed corpus");
        eprintln!("wrote {} seed inputs to {}", written.len(), dir.display());
    }
    let mut problems = Vec::new();
    for input in seed_inputs() {
        let path = dir.join(&input.name);
        match fs::read(&path) {
            Ok(bytes) if bytes == input.bytes => {}
            Ok(bytes) => problems.push(format!(
                "{}: {} bytes on disk differ from the {} generated",
                input.name,
                bytes.len(),
                input.bytes.len()
            )),
            Err(e) => problems.push(format!("{}: {e}", input.name)),
        }
    }
    assert!(
        problems.is_empty(),
        "corpus/alloc_ops/ is out of date with the byte format or the generator:\n  {}\n\
         if the change is deliberate, regenerate with \
         HAKMEM_WRITE_CORPUS=1 cargo test -p hakmem-sim --test corpus",
        problems.join("\n  ")
    );
}

/// Every file of `corpus/<target>/` (seeded or merged in from a fuzzing
/// campaign) runs through the fuzz driver without a failure.
fn replay_corpus(target: &str) -> usize {
    let dir = corpus_dir(target);
    let mut failures = Vec::new();
    let paths = files(&dir);
    for path in &paths {
        let data = fs::read(path).expect("readable corpus file");
        let (trace, result) = run_alloc_ops(&data);
        if let Err(f) = result {
            failures.push(format!(
                "corpus/{target}/{}: {}",
                path.file_name().unwrap().to_string_lossy(),
                crash_message(&trace, &f)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus inputs fail:\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n")
    );
    paths.len()
}

#[test]
fn every_alloc_ops_corpus_input_replays_cleanly() {
    let n = replay_corpus("alloc_ops");
    assert!(
        n >= seed_inputs().len(),
        "corpus/alloc_ops/ holds {n} files"
    );
}

/// `corpus/alloc_sched/` (schedule fuzzing) has its own driver, which
/// `tests/shuttle.rs` runs on every file; here: every input replays cleanly
/// through that driver too, with no bug switched on.
#[test]
fn every_alloc_sched_corpus_input_replays_cleanly() {
    let dir = corpus_dir("alloc_sched");
    let paths = files(&dir);
    assert!(!paths.is_empty(), "corpus/alloc_sched/ is empty");
    for p in paths {
        let data = std::fs::read(&p).unwrap();
        if let Err(e) = hakmem_sim::shuttle::run_alloc_sched(&data, hakmem::Zoo::NONE) {
            panic!("{}: {e}", p.display());
        }
    }
}
