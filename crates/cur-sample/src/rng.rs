//! The PRNG: SplitMix64, its mixing function (also used to derive seeds and ids), and weighted
//! choices.

pub(crate) const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output function: a bijection on `u64` with good avalanche, used both to draw
/// numbers and to derive seeds and ids.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64: tiny, fast and identical on every platform, which is all synthetic data needs.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is far below what matters here).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    pub(crate) fn per_mille(&mut self, chance: u64) -> bool {
        self.below(1000) < chance
    }
}

/// A weighted choice among a few options.
pub(crate) struct Weighted {
    cumulative: Vec<u64>,
}

impl Weighted {
    pub(crate) fn new(weights: impl IntoIterator<Item = u32>) -> Self {
        let cumulative = weights
            .into_iter()
            .scan(0_u64, |sum, w| {
                *sum += u64::from(w);
                Some(*sum)
            })
            .collect();
        Self { cumulative }
    }

    pub(crate) fn pick(&self, rng: &mut Rng) -> usize {
        let x = rng.below(*self.cumulative.last().expect("non-empty weights"));
        self.cumulative.partition_point(|&c| c <= x)
    }
}
