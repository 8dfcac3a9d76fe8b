//! Every regression trace in `repro/` replays cleanly: a fixed bug stays
//! fixed. See `repro/README.md` for the format and where the files come
//! from.
//!
//! Only `repro/*.trace` is replayed here; the subdirectories
//! (`repro/zoo/`, `repro/shuttle/`) have their own tests.

use std::fs;
use std::path::{Path, PathBuf};

use hakmem_sim::{headers, run, RunConfig, Trace};

/// The headers every repro file carries.
const REQUIRED_HEADERS: [&str; 3] = ["found-by", "violates", "fixed-by"];

fn repro_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../repro")
}

/// `repro/*.trace`, sorted.
fn repro_files() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(repro_dir())
        .expect("repro/ exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "trace"))
        .collect();
    out.sort();
    out
}

/// Replays one repro file; `Err` says why it does not pass.
fn replay(path: &Path) -> Result<(), String> {
    let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
    let headers = headers(&text);
    let missing: Vec<&str> = REQUIRED_HEADERS
        .into_iter()
        .filter(|h| !headers.iter().any(|(k, v)| k == h && !v.is_empty()))
        .collect();
    if !missing.is_empty() {
        return Err(format!("missing header(s): {}", missing.join(", ")));
    }
    let cfg = RunConfig::for_headers(&headers)?;
    let trace = Trace::parse(&text).map_err(|e| format!("does not parse: {e}"))?;
    if trace.ops.is_empty() {
        return Err("holds no op".into());
    }
    run(&trace, &cfg).map(|_| ()).map_err(|f| f.to_string())
}

#[test]
fn every_repro_trace_replays_cleanly() {
    let files = repro_files();
    assert!(!files.is_empty(), "repro/ holds no .trace file");
    let failures: Vec<String> = files
        .iter()
        .filter_map(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            replay(p).err().map(|e| format!("repro/{name}: {e}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} repro files fail (replay one with `hakmem-sim replay FILE`):\n  {}",
        failures.len(),
        files.len(),
        failures.join("\n  ")
    );
}

#[test]
fn a_repro_file_without_its_headers_is_rejected() {
    let dir = std::env::temp_dir().join(format!("hakmem-repro-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bare.trace");
    fs::write(&path, "# found-by: hand\nt0 alloc p1 16\n").unwrap();
    let err = replay(&path).unwrap_err();
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(err, "missing header(s): violates, fixed-by");
}
