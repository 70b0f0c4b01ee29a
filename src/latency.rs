//! The latency monitor (`latency-monitor-threshold`): per-event time series of the
//! latency spikes at or above the threshold, one sample per second, the last
//! [`TS_LEN`] seconds kept, as upstream's latency.c.

use std::collections::HashMap;

/// Samples kept per event.
pub const TS_LEN: usize = 160;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// Unix seconds (0: an empty slot).
    pub time: i64,
    /// Milliseconds.
    pub latency: u64,
}

/// One event's history: a ring of samples, plus all-time max, sum and count.
#[derive(Debug)]
pub struct Series {
    pub idx: usize,
    pub max: u64,
    pub sum: u64,
    pub cnt: u64,
    pub samples: Box<[Sample; TS_LEN]>,
}

impl Series {
    fn new() -> Series {
        Series {
            idx: 0,
            max: 0,
            sum: 0,
            cnt: 0,
            samples: Box::new([Sample::default(); TS_LEN]),
        }
    }

    /// The newest sample.
    pub fn last(&self) -> Sample {
        self.samples[(self.idx + TS_LEN - 1) % TS_LEN]
    }

    /// Non-empty samples, oldest first.
    pub fn history(&self) -> impl Iterator<Item = Sample> + '_ {
        (0..TS_LEN)
            .map(move |j| self.samples[(self.idx + j) % TS_LEN])
            .filter(|s| s.time != 0)
    }
}

#[derive(Debug, Default)]
pub struct Latency {
    pub events: HashMap<&'static str, Series>,
    /// Per-command histograms (`latency-tracking`).
    pub commands: CommandHistograms,
}

impl Latency {
    /// Records `latency_ms` for `event`: within the same second only the highest sample
    /// is kept.
    pub fn add_sample(&mut self, event: &'static str, latency_ms: u64, now_secs: i64) {
        let ts = self.events.entry(event).or_insert_with(Series::new);
        ts.max = ts.max.max(latency_ms);
        ts.sum = ts.sum.saturating_add(latency_ms);
        ts.cnt = ts.cnt.saturating_add(1);
        let prev = (ts.idx + TS_LEN - 1) % TS_LEN;
        if ts.samples[prev].time == now_secs {
            if latency_ms > ts.samples[prev].latency {
                ts.samples[prev].latency = latency_ms;
            }
            return;
        }
        ts.samples[ts.idx] = Sample {
            time: now_secs,
            latency: latency_ms,
        };
        ts.idx = (ts.idx + 1) % TS_LEN;
    }

    /// Removes one event's data (`Some`) or all (`None`); returns how many were removed.
    pub fn reset(&mut self, event: Option<&[u8]>) -> usize {
        match event {
            None => {
                let n = self.events.len();
                self.events.clear();
                n
            }
            Some(e) => {
                let key = self.events.keys().find(|k| k.as_bytes() == e).copied();
                key.map_or(0, |k| usize::from(self.events.remove(k).is_some()))
            }
        }
    }

    pub fn get(&self, event: &[u8]) -> Option<&Series> {
        self.events
            .iter()
            .find(|(k, _)| k.as_bytes() == event)
            .map(|(_, v)| v)
    }

    /// LATENCY DOCTOR's report.
    pub fn report(&self, threshold: i64, now_secs: i64) -> String {
        if self.events.is_empty() && threshold == 0 {
            return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this \
                    Valkey instance. You may use \"CONFIG SET latency-monitor-threshold \
                    <milliseconds>.\" in order to enable it.\n"
                .to_string();
        }
        if self.events.is_empty() {
            return "No latency spike was observed during the lifetime of this Valkey instance, \
                    not in the slightest bit.\n"
                .to_string();
        }
        let mut names: Vec<&&str> = self.events.keys().collect();
        names.sort();
        let mut out = String::from("Latency spikes are observed in this Valkey instance.\n\n");
        for (i, name) in names.iter().enumerate() {
            let ts = &self.events[**name];
            let samples: Vec<Sample> = ts.history().filter(|s| s.latency > 0).collect();
            let n = samples.len().max(1) as u64;
            let avg = samples.iter().map(|s| s.latency).sum::<u64>() / n;
            let mad = samples.iter().map(|s| s.latency.abs_diff(avg)).sum::<u64>() / n;
            let first = samples.first().map_or(now_secs, |s| s.time);
            let period = now_secs.saturating_sub(first).max(0) as f64 / n as f64;
            out.push_str(&format!(
                "{}. {}: {} latency spikes (average {}ms, mean deviation {}ms, period {:.2} \
                 sec). Worst all time event {}ms.\n",
                i + 1,
                name,
                samples.len(),
                avg,
                mad,
                period,
                ts.max
            ));
        }
        out.push_str(
            "\nHere is some advice for you:\n\n- Check your Slow Log to understand what are \
             the commands you are running which are too slow to execute. Please check \
             https://valkey.io/commands/slowlog for more information.\n",
        );
        out
    }
}

/// Per-command latency histograms (`latency-tracking`), read by LATENCY HISTOGRAM and
/// INFO latencystats.
///
/// The layout is upstream's hdr_histogram configured for 1 ns .. 1000 s with two
/// significant figures, so the same recorded values fall into the same buckets and the
/// reported bucket bounds and percentiles are identical: values below 256 have their own
/// slot, then every power-of-two range is split into 128 equal slots. Recording is one
/// index computation and one increment; the array is allocated on a command's first call.
pub mod hist {
    /// Sub-buckets per power-of-two range (half of upstream's sub_bucket_count 256).
    const HALF_MAG: u32 = 7;
    const HALF: usize = 1 << HALF_MAG;
    const MASK: u64 = (2 * HALF as u64) - 1;
    /// Ranges needed to cover [`MAX_NS`] (sub-bucket count 256 doubled 32 times).
    const RANGES: usize = 33;
    /// Slots in the counts array.
    pub const LEN: usize = (RANGES + 1) * HALF;
    pub const MIN_NS: u64 = 1;
    pub const MAX_NS: u64 = 1_000_000_000_000;

    /// The power-of-two range of `v` (0 for values below 256).
    #[inline]
    fn range_of(v: u64) -> u32 {
        // 64 - clz(v | 255) is at least 8.
        (64 - (v | MASK).leading_zeros()) - (HALF_MAG + 1)
    }

    #[inline]
    pub fn index_of(v: u64) -> usize {
        let r = range_of(v);
        let sub = (v >> r) as usize;
        ((r as usize + 1) << HALF_MAG) + sub - HALF
    }

    /// The lowest value that falls into slot `idx`.
    pub fn value_at(idx: usize) -> u64 {
        let mut range = (idx >> HALF_MAG) as i64 - 1;
        let mut sub = (idx & (HALF - 1)) + HALF;
        if range < 0 {
            sub -= HALF;
            range = 0;
        }
        (sub as u64) << range
    }

    pub fn lowest_equivalent(v: u64) -> u64 {
        let r = range_of(v);
        (v >> r) << r
    }

    pub fn highest_equivalent(v: u64) -> u64 {
        let r = range_of(v);
        ((v >> r) << r) + (1u64 << r) - 1
    }

    #[derive(Debug)]
    pub struct Histogram {
        pub total: u64,
        counts: Box<[u64]>,
    }

    impl Default for Histogram {
        fn default() -> Self {
            Histogram {
                total: 0,
                counts: vec![0; LEN].into_boxed_slice(),
            }
        }
    }

    impl Histogram {
        /// Records a duration in nanoseconds, clamped to the tracked range.
        #[inline]
        pub fn record_ns(&mut self, ns: u64) {
            let v = ns.clamp(MIN_NS, MAX_NS);
            if let Some(c) = self.counts.get_mut(index_of(v)) {
                *c += 1;
                self.total += 1;
            }
        }

        /// The value at `percentile` (0..=100) in nanoseconds, as upstream's
        /// hdr_value_at_percentile: the highest value equivalent to the slot holding the
        /// requested rank (the lowest for the 0th percentile).
        pub fn value_at_percentile(&self, percentile: f64) -> u64 {
            let p = percentile.min(100.0);
            let rank = (((p / 100.0) * self.total as f64) + 0.5) as u64;
            let rank = rank.max(1);
            let mut seen = 0u64;
            let mut v = 0;
            for (idx, &n) in self.counts.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    v = value_at(idx);
                    break;
                }
            }
            if percentile == 0.0 {
                lowest_equivalent(v)
            } else {
                highest_equivalent(v)
            }
        }

        /// The cumulative distribution LATENCY HISTOGRAM replies: (bucket in
        /// microseconds, calls up to it), one pair per power-of-two step starting at
        /// 1024 ns, skipping steps that add nothing. This walks the slots as upstream's
        /// logarithmic iterator does, so each step reports the highest value of the slot
        /// where it stopped and counts that slot too.
        pub fn cdf(&self) -> Vec<(u64, u64)> {
            let mut out = Vec::new();
            let mut idx: i64 = -1;
            let mut value = 0u64;
            let mut highest = 0u64;
            let mut cumulative = 0u64;
            let mut level: u64 = 1024;
            let mut level_low = lowest_equivalent(level);
            let mut previous = 0u64;
            loop {
                let in_array = idx < LEN as i64;
                let more = cumulative < self.total || value_at((idx + 1) as usize) > level_low;
                if !(in_array && more) {
                    break;
                }
                loop {
                    if value >= level_low {
                        level = level.saturating_mul(2);
                        level_low = lowest_equivalent(level);
                        break;
                    }
                    idx += 1;
                    let Some(&n) = self.counts.get(idx as usize) else {
                        break;
                    };
                    cumulative += n;
                    value = value_at(idx as usize);
                    highest = highest_equivalent(value);
                }
                if cumulative > previous {
                    out.push((highest / 1000, cumulative));
                }
                previous = cumulative;
            }
            out
        }
    }
}

/// Width of LATENCY GRAPH's drawing, in samples per band.
const GRAPH_COLS: usize = 80;
/// Text rows of the drawing; each row has three levels.
const GRAPH_ROWS: usize = 4;

/// LATENCY GRAPH's text for one event: a header, a rule, then a filled ASCII sparkline
/// of the samples (oldest first), each labelled vertically with its age, as upstream's
/// latency.c and sparkline.c draw it.
pub fn graph(event: &str, ts: &Series, now_secs: i64) -> String {
    let samples: Vec<(f64, String)> = ts
        .history()
        .map(|s| {
            let elapsed = now_secs.saturating_sub(s.time);
            let label = if elapsed < 60 {
                format!("{}s", elapsed)
            } else if elapsed < 3600 {
                format!("{}m", elapsed / 60)
            } else if elapsed < 86400 {
                format!("{}h", elapsed / 3600)
            } else {
                format!("{}d", elapsed / 86400)
            };
            (s.latency as f64, label)
        })
        .collect();
    let hist: Vec<u64> = ts.history().map(|s| s.latency).collect();
    let high = hist.iter().copied().max().unwrap_or(0);
    let low = hist.iter().copied().min().unwrap_or(0);
    let mut out = format!(
        "{} - high {} ms, low {} ms (all time high {} ms)\n",
        event, high, low, ts.max
    );
    out.push_str(&"-".repeat(GRAPH_COLS));
    out.push('\n');
    sparkline(&mut out, &samples, GRAPH_COLS, GRAPH_ROWS);
    out
}

/// Draws `samples` in bands of `columns`, `rows` text rows high (filled style).
fn sparkline(out: &mut String, samples: &[(f64, String)], columns: usize, rows: usize) {
    const LEVELS: &[u8] = b"_o#";
    let Some(first) = samples.first() else {
        return;
    };
    // Minimum and maximum as the sequence tracks them while samples are added.
    let (mut min, mut max) = (first.0, first.0);
    for (v, _) in &samples[1..] {
        if *v < min {
            min = *v;
        } else if *v > max {
            max = *v;
        }
    }
    let span = if max - min == 0.0 { 1.0 } else { max - min };
    let steps = (LEVELS.len() * rows) as i64;
    for (band, chunk) in samples.chunks(columns).enumerate() {
        if band != 0 {
            out.push('\n');
        }
        let mut row = 0usize;
        let mut line = vec![b' '; chunk.len()];
        loop {
            let mut more = false;
            line.fill(b' ');
            for (j, (v, label)) in chunk.iter().enumerate() {
                let step = (((((v - min) * steps as f64) as i64) as f64 / span) as i64)
                    .clamp(0, steps - 1);
                if row < rows {
                    more = true;
                    let idx = step - ((rows - row - 1) * LEVELS.len()) as i64;
                    if (0..LEVELS.len() as i64).contains(&idx) {
                        line[j] = LEVELS[idx as usize];
                    } else if idx >= LEVELS.len() as i64 {
                        line[j] = b'|';
                    }
                } else {
                    // One blank row between the drawing and the labels.
                    if row - rows < 1 {
                        more = true;
                        break;
                    }
                    let k = row - rows - 1;
                    if let Some(&ch) = label.as_bytes().get(k) {
                        more = true;
                        line[j] = ch;
                    }
                }
            }
            if !more {
                break;
            }
            row += 1;
            out.push_str(&String::from_utf8_lossy(&line));
            out.push('\n');
        }
    }
}

/// The histograms of all commands, by command id.
#[derive(Debug, Default)]
pub struct CommandHistograms {
    pub by_id: Vec<Option<hist::Histogram>>,
}

impl CommandHistograms {
    /// Records a call of command `id` that took `usec` microseconds.
    #[inline]
    pub fn record(&mut self, id: usize, usec: u64) {
        if id >= self.by_id.len() {
            self.by_id.resize_with(id + 1, || None);
        }
        if let Some(slot) = self.by_id.get_mut(id) {
            slot.get_or_insert_with(hist::Histogram::default)
                .record_ns(usec.saturating_mul(1000));
        }
    }

    pub fn get(&self, id: usize) -> Option<&hist::Histogram> {
        self.by_id.get(id).and_then(|h| h.as_ref())
    }

    /// CONFIG RESETSTAT drops them all.
    pub fn clear(&mut self) {
        self.by_id.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_second_keeps_max_and_ring_wraps() {
        let mut l = Latency::default();
        l.add_sample("command", 10, 100);
        l.add_sample("command", 30, 100);
        l.add_sample("command", 20, 100);
        let ts = l.get(b"command").unwrap();
        assert_eq!(ts.history().count(), 1);
        assert_eq!(ts.last().latency, 30);
        assert_eq!((ts.max, ts.sum, ts.cnt), (30, 60, 3));
        for t in 0..200 {
            l.add_sample("command", 5, 1000 + t);
        }
        let ts = l.get(b"command").unwrap();
        let h: Vec<Sample> = ts.history().collect();
        assert_eq!(h.len(), TS_LEN);
        assert_eq!(h[0].time, 1040);
        assert_eq!(h[TS_LEN - 1].time, 1199);
        assert_eq!(l.reset(Some(b"nope")), 0);
        assert_eq!(l.reset(Some(b"command")), 1);
        assert_eq!(l.reset(None), 0);
    }

    #[test]
    fn histogram_slots_match_hdr_layout() {
        use hist::*;
        // Exact below 256, then 128 slots per power of two.
        assert_eq!(index_of(0), 0);
        assert_eq!(index_of(255), 255);
        assert_eq!(index_of(256), 256);
        assert_eq!(index_of(257), 256);
        assert_eq!(index_of(511), 383);
        assert_eq!(index_of(512), 384);
        assert!(index_of(MAX_NS) < LEN);
        for v in [1u64, 200, 1000, 1031, 1032, 123_456, 99_999_999, MAX_NS] {
            let i = index_of(v);
            assert!(
                value_at(i) <= v && v <= highest_equivalent(value_at(i)),
                "{}",
                v
            );
            assert_eq!(lowest_equivalent(v), value_at(i));
        }
        assert_eq!(highest_equivalent(1024), 1031);
        assert_eq!(highest_equivalent(1 << 26), 67_633_151);
    }

    #[test]
    fn histogram_cdf_and_percentiles() {
        let mut h = hist::Histogram::default();
        assert!(h.cdf().is_empty());
        for us in [0u64, 1, 1, 3, 45_000, 45_000] {
            h.record_ns(us * 1000);
        }
        assert_eq!(h.total, 6);
        // 0 and 1 us fall in the first step (1024 ns), 3 us in the 4096 ns step.
        assert_eq!(h.cdf(), vec![(1, 3), (4, 4), (67_633, 6)]);
        assert_eq!(h.value_at_percentile(50.0), 1_003);
        assert_eq!(h.value_at_percentile(0.0), 1);
        assert_eq!(h.value_at_percentile(100.0), 45_088_767);
        // Out of range values are clamped, not dropped.
        h.record_ns(u64::MAX);
        assert_eq!(h.total, 7);
    }

    #[test]
    fn sparkline_rows_and_labels() {
        let mut l = Latency::default();
        l.add_sample("command", 10, 100);
        l.add_sample("command", 20, 101);
        l.add_sample("command", 40, 102);
        let ts = l.get(b"command").unwrap();
        let g = graph("command", ts, 102);
        let lines: Vec<&str> = g.split('\n').collect();
        assert_eq!(
            lines[0],
            "command - high 40 ms, low 10 ms (all time high 40 ms)"
        );
        assert_eq!(lines[1], "-".repeat(80));
        assert_eq!(
            &lines[2..],
            &["  #", "  |", " o|", "_||", "   ", "210", "sss", ""]
        );
    }
}
