//! Credit distribution: how one accounting period's CPU time is shared among the domains that
//! compete for it.
//!
//! Each competitor has a weight and a peak (the most it can use: its active vCPUs for the whole
//! period, or less under a cap). Shares are proportional to weight, except that nobody gets more
//! than its peak; what a saturated competitor cannot use goes to the others, again by weight
//! ("water filling"). Xen's `csched_acct` approximates the same result in one pass over the
//! domains; here it is computed exactly.

use alloc::vec;
use alloc::vec::Vec;
use core::cmp::Ordering;

/// One competitor for credit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Claim {
    /// Relative weight (0 receives nothing).
    pub(super) weight: u64,
    /// Most it can use this period.
    pub(super) peak: u64,
}

/// Splits `total` among `claims`: the returned grants (in the order of `claims`) are at most
/// each claim's peak, sum to at most `total`, and are proportional to weight among the claims
/// that did not reach their peak.
pub(super) fn distribute(total: u64, claims: &[Claim]) -> Vec<u64> {
    let mut grants = vec![0u64; claims.len()];
    let mut order: Vec<usize> = (0..claims.len())
        .filter(|&i| claims.get(i).is_some_and(|c| c.weight > 0))
        .collect();
    // Most constrained first: ascending peak / weight, compared without division.
    order.sort_by(|&a, &b| match (claims.get(a), claims.get(b)) {
        (Some(x), Some(y)) => (u128::from(x.peak) * u128::from(y.weight))
            .cmp(&(u128::from(y.peak) * u128::from(x.weight))),
        _ => Ordering::Equal,
    });
    let mut left = u128::from(total);
    let mut weight_left: u128 = order
        .iter()
        .filter_map(|&i| claims.get(i))
        .map(|c| u128::from(c.weight))
        .sum();
    for i in order {
        let (Some(claim), Some(grant)) = (claims.get(i), grants.get_mut(i)) else {
            continue;
        };
        if weight_left == 0 {
            break;
        }
        let fair = left * u128::from(claim.weight) / weight_left;
        let given = fair.min(u128::from(claim.peak));
        *grant = u64::try_from(given).unwrap_or(u64::MAX);
        left = left.saturating_sub(given);
        weight_left = weight_left.saturating_sub(u128::from(claim.weight));
    }
    grants
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(weight: u64, peak: u64) -> Claim {
        Claim { weight, peak }
    }

    #[test]
    fn proportional_when_nobody_saturates() {
        assert_eq!(distribute(300, &[c(256, 300), c(512, 300)]), [100, 200]);
        assert_eq!(
            distribute(90, &[c(1, 90), c(1, 90), c(1, 90)]),
            [30, 30, 30]
        );
    }

    #[test]
    fn saturated_share_goes_to_the_others() {
        // The first can use at most 50; the rest of its fair 150 goes to the second.
        assert_eq!(distribute(300, &[c(256, 50), c(256, 300)]), [50, 250]);
        // Cascading: two saturate, the third takes what is left.
        assert_eq!(
            distribute(300, &[c(100, 10), c(100, 20), c(100, 1000)]),
            [10, 20, 270]
        );
    }

    #[test]
    fn never_exceeds_total_or_peaks() {
        let claims = [c(3, 7), c(65535, 1 << 40), c(1, 0), c(7, 123), c(0, 999)];
        for total in [0u64, 1, 17, 1000, 1 << 41, u64::MAX] {
            let g = distribute(total, &claims);
            let sum: u128 = g.iter().map(|&x| u128::from(x)).sum();
            assert!(sum <= u128::from(total));
            for (grant, claim) in g.iter().zip(&claims) {
                assert!(*grant <= claim.peak);
            }
            assert_eq!(g[4], 0, "zero weight gets nothing");
        }
    }

    #[test]
    fn everyone_saturated_leaves_the_rest_unused() {
        assert_eq!(distribute(1000, &[c(1, 10), c(5, 20)]), [10, 20]);
    }

    #[test]
    fn empty_and_degenerate() {
        assert!(distribute(100, &[]).is_empty());
        assert_eq!(distribute(100, &[c(0, 100)]), [0]);
        assert_eq!(distribute(0, &[c(1, 100)]), [0]);
    }
}
