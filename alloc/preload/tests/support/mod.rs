//! Shared by the preload tests: the freshly built `libhakmem.so`, C
//! programs compiled from `tests/c/`, and child processes run with a
//! timeout, with or without `LD_PRELOAD`.
#![allow(dead_code)] // each test binary uses its own part

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The target directory this test was built in (`target/tmp`'s parent).
pub fn target_dir() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR has a parent")
}

/// A scratch directory for this test binary's files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("hakmem-preload")
        .join(name);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// `libhakmem.so`, built by `cargo build --release -p hakmem-preload` into
/// this test's target directory (a no-op when `cargo test --release`
/// already built it), once per test binary.
pub fn libhakmem() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let status = Command::new(cargo)
            .current_dir(&workspace)
            .args(["build", "--release", "-p", "hakmem-preload"])
            .env("CARGO_TARGET_DIR", target_dir())
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "cargo build --release -p hakmem-preload failed"
        );
        let lib = target_dir().join("release/libhakmem.so");
        assert!(lib.exists(), "{} not built", lib.display());
        lib
    })
}

/// `tests/c/<name>.c` compiled with the system C compiler (`$CC` or
/// `cc`) into an executable, once per test binary.
pub fn c_program(name: &str) -> PathBuf {
    compile(name, &[], name)
}

/// `tests/c/<name>.c` compiled into a shared library `lib<name>.so`.
pub fn c_library(name: &str) -> PathBuf {
    compile(name, &["-shared", "-fPIC"], &format!("lib{name}.so"))
}

fn compile(name: &str, flags: &[&str], output: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(out) = built.get(output) {
        return out.clone();
    }
    let src_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c");
    let out = scratch_dir("c").join(output);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let result = Command::new(&cc)
        .args(["-O2", "-fno-builtin", "-pthread", "-Wall", "-Wextra"])
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(src_dir.join(format!("{name}.c")))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(
        result.status.success(),
        "{cc} {name}.c failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    built.insert(output.to_string(), out.clone());
    out
}

/// What a child process did.
pub struct Outcome {
    pub status: ExitStatus,
    /// stdout as bytes, and as text (invalid UTF-8 replaced).
    pub stdout_bytes: Vec<u8>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    /// The signal that killed the child, if one did.
    pub fn signal(&self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        self.status.signal()
    }

    /// Panics with the child's output unless it exited with status 0.
    pub fn assert_success(&self, what: &str) {
        assert!(
            self.status.success(),
            "{what}: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            tail(&self.stdout),
            tail(&self.stderr)
        );
    }
}

/// The end of a long output, for failure messages.
pub fn tail(s: &str) -> &str {
    let cut = s.len().saturating_sub(4000);
    let cut = (cut..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[cut..]
}

/// Runs `cmd` to the end with stdin closed and its output captured;
/// kills it and panics if it takes longer than `timeout` (a deadlock must
/// fail the test, not hang it).
pub fn run(cmd: &mut Command, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("piped stdout")));
    let err = reader(Box::new(child.stderr.take().expect("piped stderr")));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout_bytes = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    Outcome {
        status,
        stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
        stdout_bytes,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// A command with `libhakmem.so` preloaded.
pub fn preloaded(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("LD_PRELOAD", libhakmem());
    cmd
}
