//! Running a trace in a forked child, so a bug that crashes (a segfault on
//! memory SimOs made inaccessible, an abort) is a `Failure` like any other
//! instead of the end of the process. Used by the minimizer and explore.

use std::io::Read;
use std::os::fd::FromRawFd;

use crate::runner::{run, Failure, FailureKind, RunConfig};
use crate::trace::Trace;

/// The outcome of an isolated run: `Ok(ops)` or the failure.
pub type Outcome = Result<usize, Failure>;

/// Runs `trace` in a forked child process. The child writes one line —
/// `OK <ops>` or `FAIL <op or -> <id>\t<detail>` — to a pipe and exits;
/// death by a signal becomes `FailureKind::Crash`.
pub fn run_isolated(trace: &Trace, cfg: &RunConfig) -> Outcome {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return run(trace, cfg).map(|r| r.ops);
    }
    // SAFETY: the child only runs the simulation (single-threaded code
    // using the system allocator, which is fork-safe in glibc) and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: our pipe's ends.
        unsafe { libc::close(fds[0]) };
        quiet_panics();
        let line = match run(trace, cfg) {
            Ok(r) => format!("OK {}\n", r.ops),
            Err(f) => format!(
                "FAIL {} {}\t{}\n",
                f.op_index.map_or("-".to_string(), |i| i.to_string()),
                f.id(),
                f.detail.replace('\n', " ")
            ),
        };
        // SAFETY: writing our buffer to our pipe, then leaving without
        // running destructors or atexit handlers of the parent's state.
        unsafe {
            libc::write(fds[1], line.as_ptr().cast(), line.len());
            libc::_exit(0);
        }
    }
    // SAFETY: the write end belongs to the child now.
    unsafe { libc::close(fds[1]) };
    if pid < 0 {
        // SAFETY: our read end.
        unsafe { libc::close(fds[0]) };
        return run(trace, cfg).map(|r| r.ops);
    }
    let mut out = String::new();
    // SAFETY: the read end of the pipe we made; the File owns and closes it.
    let mut f = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    let _ = f.read_to_string(&mut out);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFSIGNALED(status) {
        return Err(Failure {
            op_index: None,
            op: None,
            kind: FailureKind::Crash {
                signal: libc::WTERMSIG(status),
            },
            detail: format!("the run died from signal {}", libc::WTERMSIG(status)),
        });
    }
    parse_line(&out)
}

fn parse_line(line: &str) -> Outcome {
    let line = line.trim_end();
    if let Some(n) = line.strip_prefix("OK ") {
        return Ok(n.parse().unwrap_or(0));
    }
    let rest = line.strip_prefix("FAIL ").unwrap_or(line);
    let (head, detail) = rest.split_once('\t').unwrap_or((rest, ""));
    let (op, id) = head.split_once(' ').unwrap_or(("-", head));
    Err(Failure::from_id(op.parse().ok(), id, detail.to_string()))
}

/// Silences the default panic message in a child whose panics are
/// reported through the pipe anyway.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

/// Runs `f` in a forked child and returns the line it produced, or the
/// signal that killed it. For tools that may crash on a buggy allocator.
pub fn in_child(f: impl FnOnce() -> String) -> Result<String, i32> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Ok(f());
    }
    // SAFETY: the child runs `f` and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: our pipe's ends.
        unsafe { libc::close(fds[0]) };
        quiet_panics();
        let line = f();
        // SAFETY: writing our buffer to our pipe, then leaving without the
        // parent's destructors.
        unsafe {
            libc::write(fds[1], line.as_ptr().cast(), line.len());
            libc::_exit(0);
        }
    }
    // SAFETY: the write end is the child's.
    unsafe { libc::close(fds[1]) };
    // SAFETY: our read end, owned by the File from here.
    let mut file = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    let mut out = String::new();
    let _ = file.read_to_string(&mut out);
    let mut status = 0;
    // SAFETY: our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFSIGNALED(status) {
        Err(libc::WTERMSIG(status))
    } else {
        Ok(out)
    }
}
