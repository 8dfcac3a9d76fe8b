//! The workloads' marks catch an allocator that hands out a live block
//! twice: a run under such an allocator exits with `CORRUPT_EXIT_CODE` and
//! says which block lost its mark, and the same run under the same
//! allocator with the fault switched off passes.
//!
//! The allocator is `tests/shim/aliasing_malloc.c`, compiled here with the
//! system C compiler and put under the workload with `LD_PRELOAD`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `cabi::CORRUPT_EXIT_CODE` (the package has no library target to import
/// it from; the README documents the code too).
const CORRUPT_EXIT_CODE: i32 = 86;

fn shim(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/shim/aliasing_malloc.c");
    let lib = dir.join("libaliasing_malloc.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(
        out.status.success(),
        "{cc} failed on {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

/// `hakmem-bench run random-mixed` with every size in the shim's window.
fn run(lib: &Path, aliasing: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hakmem-bench"));
    cmd.args([
        "run",
        "random-mixed",
        "--min",
        "3000",
        "--max",
        "3100",
        "--iters",
        "200000",
    ])
    .env("LD_PRELOAD", lib);
    if !aliasing {
        cmd.env("ALIASING_OFF", "1");
    }
    cmd.output().expect("cannot run hakmem-bench")
}

#[test]
fn a_live_block_handed_out_twice_is_caught_and_the_control_passes() {
    let dir = std::env::temp_dir().join(format!("hakmem-bench-harness-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lib = shim(&dir);

    let control = run(&lib, false);
    assert!(
        control.status.success(),
        "the control run (no aliasing) failed: {:?}\n{}",
        control.status,
        String::from_utf8_lossy(&control.stderr)
    );
    let stdout = String::from_utf8_lossy(&control.stdout);
    assert!(
        stdout.contains("malloc_from=libaliasing_malloc.so"),
        "the shim did not take effect:\n{stdout}"
    );

    let broken = run(&lib, true);
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert_eq!(
        broken.status.code(),
        Some(CORRUPT_EXIT_CODE),
        "an allocator that aliases live blocks was not caught:\n{stderr}"
    );
    assert!(
        stderr.contains("CORRUPT churn: block 0x") && stderr.contains("lost its mark"),
        "the report does not name the block:\n{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
