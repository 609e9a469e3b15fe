//! The storm's randomness: xorshift64* seeded from the command line, and the command line.

/// The seed when the command line names none.
pub const DEFAULT_SEED: u64 = 0x0bad_5eed_2024_0006;

/// At least this many requests.
pub const DEFAULT_REQUESTS: u64 = 100_000;

/// xorshift64* (Vigna): small, fast, good enough to pick requests.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced: xorshift has no zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 { DEFAULT_SEED } else { seed })
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // The top bits are the best ones of xorshift64*; (x * n) >> 32 < n, so it fits.
        let scaled = (u128::from(self.next() >> 32) * u128::from(n)) >> 32;
        u64::try_from(scaled).unwrap_or(0)
    }

    /// [`below`](Rng::below) for sizes.
    pub fn below_usize(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).unwrap_or(0)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A random element of `items` (`None` if empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        let i = usize::try_from(self.below(items.len() as u64)).ok()?;
        items.get(i).copied()
    }
}

/// `seed=N` and `requests=N` from the command line (decimal or `0x` hex).
pub fn parse_cmdline(cmdline: &str) -> (u64, u64) {
    let mut seed = DEFAULT_SEED;
    let mut requests = DEFAULT_REQUESTS;
    for word in cmdline.split_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        let parsed = match value.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => value.parse().ok(),
        };
        match (key, parsed) {
            ("seed", Some(v)) => seed = v,
            ("requests", Some(v)) => requests = v,
            _ => {}
        }
    }
    (seed, requests)
}
