//! `DistinctHosts`: how many different hosts a crawl fetched from in one interval, in
//! bounded memory.
//!
//! Exact up to [`EXACT_MAX`] hosts (a set of 64-bit hashes, 16 KiB at most), then a
//! HyperLogLog of 2^12 one-byte registers (4 KiB, standard error about 1.6%). A crawl
//! that touches a million hosts an interval costs the same 4 KiB as one that touches
//! two thousand, and the small counts an operator reads most often stay exact.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

/// Hosts counted exactly before switching to the estimate.
pub const EXACT_MAX: usize = 1024;
/// Register index bits of the HyperLogLog.
const P: u32 = 12;
const M: usize = 1 << P;

/// A distinct count of host names.
#[derive(Debug, Clone)]
pub enum DistinctHosts {
    /// Hashes of every host seen, while there are few.
    Exact(HashSet<u64>),
    /// HyperLogLog registers.
    Estimate(Box<[u8; M]>),
}

impl Default for DistinctHosts {
    fn default() -> Self {
        DistinctHosts::Exact(HashSet::new())
    }
}

fn hash(host: &str) -> u64 {
    // SipHash with fixed keys: the same host hashes the same for the process's life,
    // which is all a count per interval needs.
    let mut h = std::hash::DefaultHasher::new();
    host.hash(&mut h);
    h.finish()
}

fn add_to_registers(r: &mut [u8; M], h: u64) {
    let idx = (h >> (64 - P)) as usize;
    let rest = h << P;
    let rank = (rest.leading_zeros() + 1).min(64 - P + 1) as u8;
    if let Some(slot) = r.get_mut(idx)
        && rank > *slot
    {
        *slot = rank;
    }
}

impl DistinctHosts {
    /// Counts `host` (already lowercased).
    pub fn insert(&mut self, host: &str) {
        let h = hash(host);
        match self {
            DistinctHosts::Exact(set) => {
                set.insert(h);
                if set.len() > EXACT_MAX {
                    let mut r = Box::new([0u8; M]);
                    for &x in set.iter() {
                        add_to_registers(&mut r, x);
                    }
                    *self = DistinctHosts::Estimate(r);
                }
            }
            DistinctHosts::Estimate(r) => add_to_registers(r, h),
        }
    }

    /// The count: exact while at most [`EXACT_MAX`], else the HyperLogLog estimate.
    pub fn count(&self) -> u64 {
        match self {
            DistinctHosts::Exact(set) => set.len() as u64,
            DistinctHosts::Estimate(r) => {
                let m = M as f64;
                let alpha = 0.7213 / (1.0 + 1.079 / m);
                let sum: f64 = r.iter().map(|&v| 2f64.powi(-i32::from(v))).sum();
                let zeros = r.iter().filter(|&&v| v == 0).count();
                let raw = alpha * m * m / sum;
                let est = if raw <= 2.5 * m && zeros > 0 {
                    // Linear counting is the better estimate while many registers are empty.
                    m * (m / zeros as f64).ln()
                } else {
                    raw
                };
                est.round() as u64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_while_small() {
        let mut d = DistinctHosts::default();
        for i in 0..EXACT_MAX {
            d.insert(&format!("host-{}.example", i % 700));
        }
        assert_eq!(d.count(), 700);
        assert!(matches!(d, DistinctHosts::Exact(_)));
    }

    #[test]
    fn estimate_within_a_few_percent_in_bounded_memory() {
        for n in [5_000u64, 200_000] {
            let mut d = DistinctHosts::default();
            for i in 0..n {
                d.insert(&format!("www.site{i}.example"));
                d.insert(&format!("www.site{}.example", i / 2));
            }
            assert!(matches!(d, DistinctHosts::Estimate(_)));
            let got = d.count() as f64;
            let err = (got - n as f64).abs() / n as f64;
            assert!(err < 0.05, "{n} hosts counted as {got}");
        }
    }
}
