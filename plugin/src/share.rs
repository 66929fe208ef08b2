//! Shares of the background work: which sandboxes and deliveries a host's
//! background call acts on, when several hosts share one store.
//!
//! The rule is the contract's (`share` in `wit/types.wit`), so that every plugin
//! build agrees on it: a sandbox's bucket is FNV-1a 64 of its id modulo `of`, a
//! delivery's the same of its delivery id. Buckets split the work without gaps
//! or overlaps as long as the hosts' shares do.

/// The buckets one call acts on, out of `of`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    of: u16,
    held: Vec<bool>,
}

impl Share {
    /// `buckets` of `of` (those out of range are ignored; `of` of 0 is 1).
    pub fn new(of: u16, buckets: &[u16]) -> Share {
        let of = of.max(1);
        let mut held = vec![false; usize::from(of)];
        for &b in buckets {
            if let Some(slot) = held.get_mut(usize::from(b)) {
                *slot = true;
            }
        }
        Share { of, held }
    }

    /// Everything: what a lone host passes.
    pub fn all() -> Share {
        Share {
            of: 1,
            held: vec![true],
        }
    }

    /// Whether the sandbox (or delivery) with this id is in the share.
    pub fn holds(&self, id: &str) -> bool {
        let bucket = fnv1a(id.as_bytes()) % u64::from(self.of);
        self.held
            .get(usize::try_from(bucket).unwrap_or(usize::MAX))
            .copied()
            .unwrap_or(false)
    }

    /// Whether this share is all of the work.
    pub fn is_all(&self) -> bool {
        self.held.iter().all(|h| *h)
    }
}

/// FNV-1a, 64 bits: tiny, stable, and the same in every language a host or a
/// plugin is written in.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_published_function() {
        // Test vectors of the FNV reference.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn shares_of_disjoint_buckets_split_ids_without_gap_or_overlap() {
        let a = Share::new(4, &[0, 2]);
        let b = Share::new(4, &[1]);
        let c = Share::new(4, &[3, 9]);
        for i in 0..1000 {
            let id = format!("sandbox-{i}");
            let holders = [&a, &b, &c].iter().filter(|s| s.holds(&id)).count();
            assert_eq!(holders, 1, "{id}");
        }
        assert!(Share::all().holds("anything") && Share::all().is_all());
        assert!(!a.is_all() && Share::new(2, &[0, 1]).is_all());
        assert!(!Share::new(0, &[]).holds("x"), "no buckets, no work");
    }
}
