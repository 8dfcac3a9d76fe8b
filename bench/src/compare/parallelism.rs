//! The scaling check run before measuring: the same CPU-bound loop on one
//! thread, then on two at once. Two real cores give about 2×; this
//! machine's 2 vCPUs sometimes give about 1× (DESIGN §6).

use std::hint::black_box;
use std::time::Instant;

/// Iterations of the loop per thread (about 0.2–0.4 s on one core).
const SPIN_ITERS: u64 = 150_000_000;

/// A dependent chain of multiplies that no compiler can shorten.
fn spin(iters: u64) -> u64 {
    let mut x = black_box(0x1234_5678_9ABC_DEF0u64);
    for i in 0..iters {
        x = x.wrapping_mul(0x5851_F42D_4C95_7F2D).wrapping_add(i);
        x ^= x >> 29;
    }
    black_box(x)
}

/// The measured scaling.
pub struct Scaling {
    /// seconds for one thread's loop
    pub one_thread: f64,
    /// seconds for two threads running the same loop each
    pub two_threads: f64,
}

impl Scaling {
    /// Throughput of two threads over one: 2.0 is two full cores.
    pub fn speedup(&self) -> f64 {
        2.0 * self.one_thread / self.two_threads.max(1e-9)
    }
}

/// Runs the check.
pub fn measure() -> Scaling {
    spin(SPIN_ITERS / 20); // warm up the core's clock
    let start = Instant::now();
    spin(SPIN_ITERS);
    let one_thread = start.elapsed().as_secs_f64();
    let start = Instant::now();
    std::thread::scope(|scope| {
        let other = scope.spawn(|| spin(SPIN_ITERS));
        spin(SPIN_ITERS);
        other.join().expect("spin thread panicked");
    });
    let two_threads = start.elapsed().as_secs_f64();
    Scaling {
        one_thread,
        two_threads,
    }
}
