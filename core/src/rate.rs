//! Token buckets for the server's per-session command limits.
//!
//! Time is passed in (the core reads no clock). A bucket holds up to `burst`
//! tokens and gains one every `60 000 / per_minute` ms; each command of its
//! kind takes one. The level is kept as time credit in milliseconds, so the
//! arithmetic is integer and saturating.

use crate::time::Instant;

/// A rate: `per_minute` tokens a minute, at most `burst` saved up.
/// `per_minute == 0` means unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Rate {
    /// Tokens gained per minute (0: no limit).
    pub per_minute: u32,
    /// Most tokens saved up (at least 1 is used).
    pub burst: u32,
}

impl Rate {
    /// No limit.
    pub const UNLIMITED: Rate = Rate {
        per_minute: 0,
        burst: 0,
    };

    /// `per_minute` with a burst of `burst`.
    pub const fn new(per_minute: u32, burst: u32) -> Self {
        Rate { per_minute, burst }
    }

    /// Milliseconds of credit one token costs.
    const fn cost_ms(&self) -> u64 {
        match 60_000u64.checked_div(self.per_minute as u64) {
            Some(ms) => ms,
            None => 0,
        }
    }

    const fn capacity_ms(&self) -> u64 {
        let burst = if self.burst == 0 {
            1
        } else {
            self.burst as u64
        };
        self.cost_ms().saturating_mul(burst)
    }
}

/// One token bucket; starts full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenBucket {
    /// Credit spent, in ms (0: full). Refills with elapsed time.
    debt_ms: u64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket.
    pub const fn new() -> Self {
        TokenBucket {
            debt_ms: 0,
            last: None,
        }
    }

    /// The credit spent at `now`, in ms (0: full): what another process
    /// (a node of a cluster) needs to continue this bucket
    /// ([`Self::with_debt`]), since instants are each process's own.
    pub fn debt_at(&self, now: Instant) -> u64 {
        let elapsed = self.last.map_or(0, |l| now.since(l).as_millis());
        self.debt_ms.saturating_sub(elapsed)
    }

    /// A bucket with `debt_ms` of credit spent at `now` (see [`Self::debt_at`]).
    pub const fn with_debt(debt_ms: u64, now: Instant) -> Self {
        TokenBucket {
            debt_ms,
            last: Some(now),
        }
    }

    /// Takes one token at `now` if there is one.
    pub fn take(&mut self, rate: &Rate, now: Instant) -> bool {
        let cost = rate.cost_ms();
        if cost == 0 {
            return true;
        }
        let elapsed = self.last.map_or(0, |l| now.since(l).as_millis());
        self.last = Some(now);
        self.debt_ms = self.debt_ms.saturating_sub(elapsed);
        let after = self.debt_ms.saturating_add(cost);
        if after <= rate.capacity_ms() {
            self.debt_ms = after;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let rate = Rate::new(60, 3); // one a second, three saved up
        let mut b = TokenBucket::new();
        let t = Instant::from_millis(1_000);
        assert!(b.take(&rate, t));
        assert!(b.take(&rate, t));
        assert!(b.take(&rate, t));
        assert!(!b.take(&rate, t));
        assert!(!b.take(&rate, Instant::from_millis(1_999)));
        assert!(b.take(&rate, Instant::from_millis(2_000)));
        assert!(!b.take(&rate, Instant::from_millis(2_000)));
        // A long pause refills up to the burst, not more.
        let later = Instant::from_millis(100_000);
        for _ in 0..3 {
            assert!(b.take(&rate, later));
        }
        assert!(!b.take(&rate, later));
    }

    #[test]
    fn unlimited() {
        let mut b = TokenBucket::new();
        for _ in 0..10_000 {
            assert!(b.take(&Rate::UNLIMITED, Instant::ZERO));
        }
    }
}
