//! Requests answered per minute by this process, per source, for the overview's chart and
//! its suspension-risk table. Rejected requests store nothing, so only the process that
//! answered them can count them; it keeps the last hour in a ring of one slot per minute.

use std::sync::Mutex;

use webhook_core::Source;

/// Minutes kept: the overview's hour.
pub const MINUTES: usize = 60;

const SOURCES: usize = Source::ALL.len();

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slot {
    minute: i64,
    /// Per source, in `Source::ALL` order.
    accepted: [u64; SOURCES],
    rejected: [u64; SOURCES],
}

/// One source's answers over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answers {
    pub answered: u64,
    /// Any status but 2xx.
    pub failed: u64,
}

/// Accepted (2xx) and rejected (any other status) answers per minute and source, as the
/// `Accepted` and `Rejected` metrics count them in AWS.
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

fn index(source: Source) -> usize {
    Source::ALL
        .iter()
        .position(|s| *s == source)
        .expect("every source is in Source::ALL")
}

impl Throughput {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one answer `source` gave at `unix` seconds with HTTP `status`.
    pub fn record(&self, unix: i64, source: Source, status: u16) {
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
        let counter = match (200..300).contains(&status) {
            true => &mut slot.accepted,
            false => &mut slot.rejected,
        };
        counter[index(source)] += 1;
    }

    /// The slots of the `minutes` ending with the one holding `now`, oldest first (a
    /// minute without answers is all zero).
    fn window(&self, now: i64, minutes: usize) -> Vec<Slot> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let current = now.div_euclid(60);
        (current - minutes.min(MINUTES) as i64 + 1..=current)
            .map(|minute| {
                let slot = slots[minute.rem_euclid(MINUTES as i64) as usize];
                match slot.minute == minute {
                    true => slot,
                    false => Slot {
                        minute,
                        ..Slot::default()
                    },
                }
            })
            .collect()
    }

    /// (minute start in unix seconds, accepted, rejected) of every source together for the
    /// hour ending at `now`, oldest first; minutes without answers are zero.
    pub fn last_hour(&self, now: i64) -> Vec<(i64, u64, u64)> {
        self.window(now, MINUTES)
            .into_iter()
            .map(|s| {
                (
                    s.minute * 60,
                    s.accepted.iter().sum(),
                    s.rejected.iter().sum(),
                )
            })
            .collect()
    }

    /// Each source's answers over the `minutes` ending at `now` (at most an hour).
    pub fn per_source(&self, now: i64, minutes: usize) -> Vec<(Source, Answers)> {
        let window = self.window(now, minutes);
        Source::ALL
            .into_iter()
            .enumerate()
            .map(|(i, source)| {
                let failed: u64 = window.iter().map(|s| s.rejected[i]).sum();
                let ok: u64 = window.iter().map(|s| s.accepted[i]).sum();
                let answered = ok + failed;
                (source, Answers { answered, failed })
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
        t.record(now, Source::Abaha, 200);
        t.record(now - 1, Source::Invoice, 401);
        t.record(now - 120, Source::Abaha, 202);
        t.record(now - 3_600, Source::Abaha, 200); // the same slot an hour ago: not this hour
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

    #[test]
    fn per_source_counts_only_the_window() {
        let t = Throughput::new();
        let now = 1_800_000_030; // half a minute in
        for _ in 0..3 {
            t.record(now, Source::Pancake, 500);
        }
        t.record(now - 60, Source::Pancake, 200);
        t.record(now - 30 * 60, Source::Pancake, 401); // 30 minutes ago: outside
        let of = |minutes| {
            t.per_source(now, minutes)
                .into_iter()
                .find(|(s, _)| *s == Source::Pancake)
                .unwrap()
                .1
        };
        assert_eq!(
            of(30),
            Answers {
                answered: 4,
                failed: 3
            }
        );
        assert_eq!(
            of(31),
            Answers {
                answered: 5,
                failed: 4
            }
        );
        let others = t.per_source(now, 30);
        assert!(others
            .iter()
            .filter(|(s, _)| *s != Source::Pancake)
            .all(|(_, a)| *a == Answers::default()));
    }
}
