//! A lock-free latency histogram in microseconds, shared by every subscriber task: exact below
//! 1 ms, then 64 buckets per power of two (under 1.6 % error), so recording is one atomic add.

use std::sync::atomic::{AtomicU64, Ordering};

const LINEAR: u64 = 1024;
const SUB_BUCKETS: u64 = 64;
const OCTAVES: u64 = 28;

pub struct Histogram {
    buckets: Vec<AtomicU64>,
    max: AtomicU64,
    count: AtomicU64,
}

/// p50 / p99 / max in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

fn index(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let octave = 63 - u64::from(us.leading_zeros()); // >= 10
    let shift = octave - 6;
    let sub = (us >> shift) - SUB_BUCKETS; // 0..64
    let i = LINEAR + (octave - 10) * SUB_BUCKETS + sub;
    i.min(LINEAR + OCTAVES * SUB_BUCKETS - 1) as usize
}

/// The upper bound of bucket `i` (what a percentile falling in it reports).
fn value(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let rel = i - LINEAR;
    let octave = rel / SUB_BUCKETS + 10;
    let sub = rel % SUB_BUCKETS;
    ((SUB_BUCKETS + sub + 1) << (octave - 6)) - 1
}

impl Histogram {
    pub fn new() -> Self {
        Self {
            buckets: (0..LINEAR + OCTAVES * SUB_BUCKETS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            max: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn record(&self, us: u64) {
        self.buckets[index(us)].fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
        self.max.store(0, Ordering::Relaxed);
        self.count.store(0, Ordering::Relaxed);
    }

    pub fn summary(&self) -> Summary {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count: u64 = counts.iter().sum();
        let quantile = |q: f64| {
            let rank = ((count as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return value(i);
                }
            }
            0
        };
        let max = self.max.load(Ordering::Relaxed);
        Summary {
            p50_us: quantile(0.50).min(max),
            p99_us: quantile(0.99).min(max),
            max_us: max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_below_a_millisecond_and_within_two_percent_above() {
        for us in [0, 1, 999, 1023] {
            assert_eq!(value(index(us)), us);
        }
        for us in [1024, 1500, 4000, 40_000, 1_234_567, 90_000_000] {
            let got = value(index(us));
            assert!(
                got >= us && (got - us) as f64 <= us as f64 * 0.016,
                "{us} -> {got}"
            );
        }
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let h = Histogram::new();
        for us in 1..=1000 {
            h.record(us);
        }
        let s = h.summary();
        assert_eq!((s.p50_us, s.p99_us, s.max_us), (500, 990, 1000));
    }
}
