//! Requests answered per minute by this process, for the overview's chart. Rejected
//! requests store nothing, so only the process that answered them can count them; it keeps
//! the last hour in a ring of one slot per minute.

use std::sync::Mutex;

/// Minutes kept: the overview's hour.
pub const MINUTES: usize = 60;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slot {
    minute: i64,
    accepted: u64,
    rejected: u64,
}

/// Accepted (2xx) and rejected (any other status) answers per minute, as the `Accepted`
/// and `Rejected` metrics count them in AWS.
#[derive(Debug)]
pub struct Throughput {
    slots: Mutex<[Slot; MINUTES]>,
}

impl Default for Throughput {
    fn default() -> Self {
        Throughput {
            slots: Mutex::new([Slot::default(); MINUTES]),
        }
    }
}

impl Throughput {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one answer given at `unix` seconds with HTTP `status`.
    pub fn record(&self, unix: i64, status: u16) {
        let minute = unix.div_euclid(60);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut slots[minute.rem_euclid(MINUTES as i64) as usize];
        if minute < slot.minute {
            return; // older than the hour this slot now holds
        }
        if slot.minute != minute {
            *slot = Slot {
                minute,
                ..Slot::default()
            };
        }
        if (200..300).contains(&status) {
            slot.accepted += 1;
        } else {
            slot.rejected += 1;
        }
    }

    /// (minute start in unix seconds, accepted, rejected) for the hour ending at `now`,
    /// oldest first; minutes without answers are zero.
    pub fn last_hour(&self, now: i64) -> Vec<(i64, u64, u64)> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let current = now.div_euclid(60);
        (current - MINUTES as i64 + 1..=current)
            .map(|minute| {
                let slot = slots[minute.rem_euclid(MINUTES as i64) as usize];
                if slot.minute == minute {
                    (minute * 60, slot.accepted, slot.rejected)
                } else {
                    (minute * 60, 0, 0)
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_minute_and_forgets_past_the_hour() {
        let t = Throughput::new();
        let now = 1_800_000_000;
        t.record(now, 200);
        t.record(now - 1, 401);
        t.record(now - 120, 202);
        t.record(now - 3_600, 200); // the same slot an hour ago: not this hour
        let hour = t.last_hour(now);
        assert_eq!(hour.len(), MINUTES);
        assert_eq!(hour.last().unwrap().0, now.div_euclid(60) * 60);
        let total: (u64, u64) = hour.iter().fold((0, 0), |a, s| (a.0 + s.1, a.1 + s.2));
        assert_eq!(total, (2, 1));
        assert_eq!(hour[MINUTES - 3], (now.div_euclid(60) * 60 - 120, 1, 0));
        // An hour later everything has aged out.
        assert!(t
            .last_hour(now + 3_600)
            .iter()
            .all(|s| s.1 == 0 && s.2 == 0));
    }
}
