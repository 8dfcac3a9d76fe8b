//! The bug zoo's kept traces: each `repro/zoo/<bug>.trace` fails with its
//! `violates:` id when its bug (header `zoo:`) is switched on, and passes
//! when it is off. (The interleaving-only bug 7 is kept as shuttle
//! schedules under `repro/shuttle/zoo/`, replayed by `tests/shuttle_zoo.rs`.)
#![cfg(feature = "zoo")]

use std::path::PathBuf;

use hakmem::Bug;
use hakmem_sim::{headers, run, RunConfig, Trace};

#[test]
fn every_zoo_trace_fails_with_its_bug_and_passes_without() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../repro/zoo");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "trace"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "repro/zoo/ holds {} traces", files.len());
    let mut problems = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let h = headers(&text);
        let get = |k: &str| h.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let bug = get("zoo")
            .and_then(|n| Bug::from_name(&n))
            .unwrap_or_else(|| panic!("{}: no zoo header", path.display()));
        let want = get("violates").unwrap_or_default();
        let trace = Trace::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut on = RunConfig::tiny();
        on.alloc.zoo = on.alloc.zoo.with(bug);
        match run(&trace, &on) {
            Ok(_) => problems.push(format!("{}: passes with {} on", path.display(), bug.name())),
            Err(f) if f.id() != want => problems.push(format!(
                "{}: fails with {} instead of {want}",
                path.display(),
                f.id()
            )),
            Err(_) => {}
        }
        if let Err(f) = run(&trace, &RunConfig::tiny()) {
            problems.push(format!("{}: fails without the bug: {f}", path.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
