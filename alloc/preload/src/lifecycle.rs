//! Library constructor and destructor: the first heap and the hooks are
//! set up before `main` (and before other threads exist), and
//! `HAKMEM_STATS=1` prints the counters on stderr when the process exits
//! (through `exit`, not `_exit` or a signal).

use core::fmt::Write;
use core::sync::atomic::{AtomicI32, AtomicU64, Ordering::Relaxed};

use hakmem::HakMem;

/// Where `HAKMEM_STATS=1` writes at exit: a duplicate of stderr taken at
/// load time (many programs — xz, coreutils — close stderr before they
/// exit), and the identity of the file it was, so that nothing is written
/// if the program has closed that descriptor and it now names another
/// file. -1: stats off.
static STATS_FD: AtomicI32 = AtomicI32::new(-1);
static STATS_DEV: AtomicU64 = AtomicU64::new(0);
static STATS_INO: AtomicU64 = AtomicU64::new(0);

/// The device and inode of the file `fd` names, if it is open.
fn file_id(fd: i32) -> Option<(u64, u64)> {
    // SAFETY: `stat` is plain old data; all zeroes is a valid value.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: fstat writes into `st`, which is ours.
    if unsafe { libc::fstat(fd, &mut st) } == 0 {
        Some((st.st_dev, st.st_ino))
    } else {
        None
    }
}

extern "C" fn on_load() {
    HakMem::init();
    // SAFETY: a NUL-terminated name; the result is NULL or a C string
    // that stays valid while nobody changes the environment (we read it
    // at once, before `main`).
    let v = unsafe { libc::getenv(c"HAKMEM_STATS".as_ptr()) };
    // SAFETY: a non-NULL result is a C string: reading its first byte is
    // fine.
    if v.is_null() || matches!(unsafe { *v } as u8, 0 | b'0') {
        return;
    }
    // SAFETY: duplicates fd 2 (if open) to a descriptor >= 3, closed on
    // exec (each program loads the library again and takes its own).
    let fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) };
    let fd = if fd >= 0 { fd } else { 2 };
    if let Some((dev, ino)) = file_id(fd) {
        STATS_DEV.store(dev, Relaxed);
        STATS_INO.store(ino, Relaxed);
        STATS_FD.store(fd, Relaxed);
    }
}

extern "C" fn on_exit() {
    let fd = STATS_FD.load(Relaxed);
    let id = (STATS_DEV.load(Relaxed), STATS_INO.load(Relaxed));
    if fd >= 0 && file_id(fd) == Some(id) {
        print_stats(fd);
    }
}

// Run by the dynamic loader when the library is loaded / by `exit()` via
// `_dl_fini`. (glibc passes argc, argv, envp to constructors; a function
// without parameters ignores them, as the C ABI allows.)
#[used]
#[link_section = ".init_array"]
static ON_LOAD: extern "C" fn() = on_load;
#[used]
#[link_section = ".fini_array"]
static ON_EXIT: extern "C" fn() = on_exit;

/// A fixed buffer that `core::fmt` writes into (nothing allocates);
/// output beyond its size is cut.
struct StackBuf {
    buf: [u8; 2048],
    len: usize,
}

impl Write for StackBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Writes `hakmem: stats Stats { ... }` (one field a line) to `fd`.
pub(crate) fn print_stats(fd: i32) {
    let stats = HakMem::allocator().stats();
    let mut out = StackBuf {
        buf: [0; 2048],
        len: 0,
    };
    let _ = writeln!(out, "hakmem: stats {stats:#?}");
    // SAFETY: writes our own buffer to a descriptor.
    unsafe { libc::write(fd, out.buf.as_ptr().cast(), out.len) };
}
