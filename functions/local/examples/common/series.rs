//! Latency records of the load generator: percentiles of a run, and a latency-over-time
//! series (100 ms buckets) beside the size of a watched file, e.g. the SQLite WAL, so a
//! periodic stall and what the store was doing at the time show on one plot.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Width of one line of the series.
const BUCKET: Duration = Duration::from_millis(100);

/// One answered request: when it was due or sent (from the run's start) and how long it took.
pub struct Sample {
    pub at: Duration,
    pub latency: Duration,
}

/// Sorted latencies of a run or a bucket.
pub struct Summary {
    pub count: usize,
    sorted: Vec<Duration>,
}

impl Summary {
    pub fn of(mut latencies: Vec<Duration>) -> Self {
        latencies.sort_unstable();
        Summary {
            count: latencies.len(),
            sorted: latencies,
        }
    }

    /// The `p` quantile (0..=1) in milliseconds, nearest rank; 0 when empty.
    pub fn ms(&self, p: f64) -> f64 {
        if self.sorted.is_empty() {
            return 0.0;
        }
        let rank = (self.sorted.len() as f64 * p).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1].as_secs_f64() * 1_000.0
    }

    pub fn line(&self) -> String {
        format!(
            "p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} p999_ms={:.2} max_ms={:.2}",
            self.ms(0.50),
            self.ms(0.90),
            self.ms(0.99),
            self.ms(0.999),
            self.ms(1.0)
        )
    }
}

/// What the watched file looked like at one moment.
#[derive(Clone, Copy, Default)]
pub struct Watched {
    pub bytes: u64,
    /// For a `-wal` file, from its `-shm` index: frames in the log (`mxFrame`) and frames
    /// already copied into the database (`nBackfill`); a rewind sets both back to 0.
    pub frames: u32,
    pub backfilled: u32,
}

/// `path` every `BUCKET` until `until` (zeros while it does not exist).
pub async fn watch(path: PathBuf, until: Instant) -> Vec<(Duration, Watched)> {
    let started = Instant::now();
    let shm = path
        .to_str()
        .and_then(|p| p.strip_suffix("-wal"))
        .map(|db| PathBuf::from(format!("{db}-shm")));
    let mut seen = Vec::new();
    let mut tick = tokio::time::interval(BUCKET);
    while Instant::now() < until {
        tick.tick().await;
        let mut now = Watched {
            bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            ..Watched::default()
        };
        if let Some(Ok(index)) = shm.as_ref().map(header) {
            // The wal-index header (native byte order): mxFrame at 16, nBackfill at 96.
            let word = |at: usize| {
                index
                    .get(at..at + 4)
                    .map_or(0, |b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
            };
            (now.frames, now.backfilled) = (word(16), word(96));
        }
        seen.push((started.elapsed(), now));
    }
    seen
}

/// The first bytes of the wal-index (`-shm`): its header and checkpoint info.
fn header(shm: &PathBuf) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = vec![0; 100];
    std::fs::File::open(shm)?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// `t_s,requests,p50_ms,p99_ms,max_ms,watched_bytes,wal_frames,backfilled`, one line per
/// bucket.
pub fn write(
    path: &Path,
    samples: &[Sample],
    sizes: &[(Duration, Watched)],
) -> std::io::Result<()> {
    let buckets = samples
        .iter()
        .map(|s| bucket_of(s.at))
        .chain(sizes.iter().map(|(at, _)| bucket_of(*at)))
        .max()
        .map_or(0, |b| b + 1);
    let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); buckets];
    for s in samples {
        latencies[bucket_of(s.at)].push(s.latency);
    }
    let mut watched = vec![None; buckets];
    for (at, size) in sizes {
        watched[bucket_of(*at)] = Some(*size);
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        out,
        "t_s,requests,p50_ms,p99_ms,max_ms,watched_bytes,wal_frames,backfilled"
    )?;
    for (i, bucket) in latencies.into_iter().enumerate() {
        let summary = Summary::of(bucket);
        let size = watched[i]
            .map(|w: Watched| format!("{},{},{}", w.bytes, w.frames, w.backfilled))
            .unwrap_or_else(|| ",,".into());
        writeln!(
            out,
            "{:.1},{},{:.3},{:.3},{:.3},{size}",
            i as f64 * BUCKET.as_secs_f64(),
            summary.count,
            summary.ms(0.5),
            summary.ms(0.99),
            summary.ms(1.0)
        )?;
    }
    out.flush()
}

fn bucket_of(at: Duration) -> usize {
    (at.as_millis() / BUCKET.as_millis()) as usize
}
