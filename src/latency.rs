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
}
