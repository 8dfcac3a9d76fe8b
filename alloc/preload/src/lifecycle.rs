//! Library constructor and destructor: the first heap and the hooks are
//! set up before `main` (and before other threads exist), and
//! `HAKMEM_STATS=1` prints the counters when the process exits.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

use hakmem::HakMem;

static STATS_AT_EXIT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_load() {
    HakMem::init();
    // SAFETY: a NUL-terminated name; the result is NULL or a C string
    // that stays valid while nobody changes the environment (we read it
    // at once, before `main`).
    let v = unsafe { libc::getenv(c"HAKMEM_STATS".as_ptr()) };
    // SAFETY: a non-NULL result is a C string: reading its first byte is
    // fine.
    if !v.is_null() && !matches!(unsafe { *v } as u8, 0 | b'0') {
        STATS_AT_EXIT.store(true, Relaxed);
    }
}

extern "C" fn on_exit() {
    if STATS_AT_EXIT.load(Relaxed) {
        print_stats();
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

/// Writes `hakmem: stats Stats { ... }` (one field a line) to stderr.
pub(crate) fn print_stats() {
    let stats = HakMem::allocator().stats();
    let mut out = StackBuf {
        buf: [0; 2048],
        len: 0,
    };
    let _ = writeln!(out, "hakmem: stats {stats:#?}");
    // SAFETY: writes our own buffer to fd 2.
    unsafe { libc::write(2, out.buf.as_ptr().cast(), out.len) };
}
