//! A small, fast, seedable PRNG (SplitMix64): every run with the same seed
//! makes the same choices, whatever the allocator underneath.

/// SplitMix64: one add, two multiply-xorshift rounds per number.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator for stream `stream` (e.g. a thread index) of `seed`.
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut rng = Rng {
            state: seed ^ stream.wrapping_mul(0xD605_BBB5_8C8A_BBFD),
        };
        rng.next_u64();
        rng
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n ≥ 1), by multiply-high (no division).
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A number in `lo..=hi`.
    #[inline]
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        debug_assert!(lo <= hi);
        lo + self.below(hi - lo + 1)
    }

    /// A number in `lo..=hi` whose logarithm is uniform (density ∝ 1/x):
    /// small sizes are common, large ones rare, as in real programs.
    #[inline]
    pub fn log_uniform(&mut self, lo: usize, hi: usize) -> usize {
        debug_assert!(1 <= lo && lo <= hi);
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let (l, h) = ((lo as f64).ln(), ((hi + 1) as f64).ln());
        ((l + unit * (h - l)).exp() as usize).clamp(lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_stream_repeat_the_sequence() {
        let (mut a, mut b) = (Rng::new(7, 1), Rng::new(7, 1));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(7, 1).next_u64(), Rng::new(7, 2).next_u64());
    }

    #[test]
    fn ranges_stay_inside_their_bounds() {
        let mut rng = Rng::new(1, 0);
        for _ in 0..10_000 {
            assert!((16..=1040).contains(&rng.range(16, 1040)));
            assert!((8192..=1 << 20).contains(&rng.log_uniform(8192, 1 << 20)));
            assert!(rng.below(3) < 3);
        }
    }
}
