//! Runs one workload in a child process under one allocator, with a
//! timeout; a crash, a timeout or a corrupted block is a result, not a
//! driver failure.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cabi::{CORRUPT_EXIT_CODE, OOM_EXIT_CODE};
use crate::report::RunResult;

/// Why a run gave no result.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// killed by a signal (the allocator crashed or aborted)
    Crashed(String),
    /// still running at the deadline, then killed
    TimedOut(f64),
    /// a block's contents changed under it (the child's CORRUPT line)
    Corrupt(String),
    /// the allocator returned NULL
    OutOfMemory,
    /// any other nonzero exit, or no RESULT line
    Failed(String),
}

impl Failure {
    /// A short word for table cells.
    pub fn short(&self) -> &'static str {
        match self {
            Failure::Crashed(_) => "crash",
            Failure::TimedOut(_) => "timeout",
            Failure::Corrupt(_) => "CORRUPT",
            Failure::OutOfMemory => "oom",
            Failure::Failed(_) => "error",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Crashed(how) => write!(f, "crashed ({how})"),
            Failure::TimedOut(secs) => write!(f, "timed out after {secs:.0} s"),
            Failure::Corrupt(detail) => write!(f, "corrupted memory: {detail}"),
            Failure::OutOfMemory => write!(f, "out of memory (allocator returned NULL)"),
            Failure::Failed(detail) => write!(f, "failed: {detail}"),
        }
    }
}

/// Signal names for the usual suspects.
fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGILL => "SIGILL".into(),
        libc::SIGFPE => "SIGFPE".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGTRAP => "SIGTRAP".into(),
        other => format!("signal {other}"),
    }
}

/// Reads a pipe to its end on a thread of its own.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

/// The last few lines of `text`, on one line, for a failure message.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(3);
    lines[start..].join(" | ")
}

/// Runs `exe args...` with `LD_PRELOAD=preload` (or with no preload at all),
/// killing it after `timeout`.
pub fn run(
    exe: &Path,
    args: &[String],
    preload: Option<&Path>,
    timeout: Duration,
) -> Result<RunResult, Failure> {
    let mut command = Command::new(exe);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("LD_PRELOAD")
        .env("RUST_BACKTRACE", "0");
    if let Some(lib) = preload {
        command.env("LD_PRELOAD", lib);
    }
    let mut child = command
        .spawn()
        .map_err(|e| Failure::Failed(format!("cannot start {}: {e}", exe.display())))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() >= timeout => {
                // Our own child, by its handle: nothing else is touched.
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(Failure::Failed(format!("wait: {e}"))),
        }
    };
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    let Some(status) = status else {
        return Err(Failure::TimedOut(timeout.as_secs_f64()));
    };
    if let Some(signal) = status.signal() {
        return Err(Failure::Crashed(signal_name(signal)));
    }
    match status.code() {
        Some(0) => RunResult::parse_output(&out)
            .ok_or_else(|| Failure::Failed(format!("no RESULT line: {}", tail(&out)))),
        Some(CORRUPT_EXIT_CODE) => Err(Failure::Corrupt(tail(&err))),
        Some(OOM_EXIT_CODE) => Err(Failure::OutOfMemory),
        Some(code) => Err(Failure::Failed(format!("exit code {code}: {}", tail(&err)))),
        None => Err(Failure::Failed("no exit status".into())),
    }
}
