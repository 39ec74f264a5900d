//! What hookd's store writer did during a run, read from its `/metrics` histograms at the
//! end: how many group commits, how full, how long their `COMMIT`s took (a durable one
//! includes the WAL's fsync, a relaxed one none). The latency scenarios add it to their
//! report, so a tail can be matched with what the writer was doing.

use crate::report::Report;
use crate::server::Api;

/// One histogram of the exposition: cumulative counts by upper bound, with sum and count.
#[derive(Debug, Default)]
struct Histogram {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

impl Histogram {
    /// Reads `name` (with `labels` inside its braces, e.g. `durability="durable"`).
    fn read(text: &str, name: &str, labels: &str) -> Self {
        let mut histogram = Self::default();
        for line in text.lines() {
            let Some((key, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let Some(rest) = key.strip_prefix(name) else {
                continue;
            };
            let inner = |rest: &str| {
                rest.strip_prefix('{')
                    .and_then(|r| r.strip_suffix('}'))
                    .map(str::to_owned)
                    .unwrap_or_default()
            };
            if let Some(rest) = rest.strip_prefix("_bucket") {
                let inner = inner(rest);
                if !inner.contains(labels) {
                    continue;
                }
                let le = inner
                    .split("le=\"")
                    .nth(1)
                    .and_then(|v| v.split('"').next())
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(f64::INFINITY);
                histogram.buckets.push((le, value));
            } else if let Some(rest) = rest.strip_prefix("_sum") {
                if inner(rest).contains(labels) {
                    histogram.sum = value;
                }
            } else if let Some(rest) = rest.strip_prefix("_count")
                && inner(rest).contains(labels)
            {
                histogram.count = value;
            }
        }
        histogram
            .buckets
            .sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
        histogram
    }

    fn mean(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count
        } else {
            0.0
        }
    }

    /// The smallest bucket bound under which `quantile` of the observations fall.
    fn bound(&self, quantile: f64) -> f64 {
        let wanted = quantile * self.count;
        self.buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= wanted)
            .map_or(f64::INFINITY, |(le, _)| *le)
    }

    /// Share of the observations above `limit` (a bucket bound).
    fn above(&self, limit: f64) -> f64 {
        let under = self
            .buckets
            .iter()
            .find(|(le, _)| (*le - limit).abs() < 1e-12)
            .map_or(0.0, |(_, c)| *c);
        if self.count > 0.0 {
            1.0 - under / self.count
        } else {
            0.0
        }
    }
}

/// Adds the writer's figures of the whole run to `report` (nothing if `/metrics` failed).
pub async fn add_to(api: &Api, report: &mut Report) {
    let Ok(text) = api.metrics().await else {
        return;
    };
    let durable = Histogram::read(
        &text,
        "hookd_writer_commit_seconds",
        "durability=\"durable\"",
    );
    let relaxed = Histogram::read(
        &text,
        "hookd_writer_commit_seconds",
        "durability=\"relaxed\"",
    );
    let batch = Histogram::read(&text, "hookd_writer_batch_jobs", "");
    let waiting = Histogram::read(&text, "hookd_writer_waiting_jobs", "");
    let work = Histogram::read(&text, "hookd_writer_work_seconds", "");
    report
        .add("writer_durable_commits", durable.count)
        .add("writer_durable_commit_mean_ms", durable.mean() * 1000.0)
        .add(
            "writer_durable_commit_p99_under_ms",
            durable.bound(0.99) * 1000.0,
        )
        .add(
            "writer_durable_commits_over_5ms_pct",
            durable.above(0.005) * 100.0,
        )
        .add("writer_relaxed_commits", relaxed.count)
        .add("writer_relaxed_commit_mean_ms", relaxed.mean() * 1000.0)
        .add("writer_work_mean_ms", work.mean() * 1000.0)
        .add("writer_jobs_per_commit", batch.mean())
        .add("writer_waiting_mean", waiting.mean())
        .add("writer_waiting_p99_under", waiting.bound(0.99));
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE hookd_writer_commit_seconds histogram
hookd_writer_commit_seconds_bucket{durability=\"durable\",le=\"0.001\"} 90
hookd_writer_commit_seconds_bucket{durability=\"durable\",le=\"0.005\"} 99
hookd_writer_commit_seconds_bucket{durability=\"durable\",le=\"+Inf\"} 100
hookd_writer_commit_seconds_sum{durability=\"durable\"} 0.2
hookd_writer_commit_seconds_count{durability=\"durable\"} 100
hookd_writer_commit_seconds_bucket{durability=\"relaxed\",le=\"0.001\"} 10
hookd_writer_commit_seconds_sum{durability=\"relaxed\"} 0.001
hookd_writer_commit_seconds_count{durability=\"relaxed\"} 10
";

    #[test]
    fn a_histogram_is_read_by_its_labels_with_mean_bounds_and_tail_share() {
        let durable = Histogram::read(
            TEXT,
            "hookd_writer_commit_seconds",
            "durability=\"durable\"",
        );
        assert_eq!((durable.count, durable.buckets.len()), (100.0, 3));
        assert!((durable.mean() - 0.002).abs() < 1e-12);
        assert_eq!(durable.bound(0.9), 0.001);
        assert_eq!(durable.bound(0.99), 0.005);
        assert!((durable.above(0.005) - 0.01).abs() < 1e-12);
        let relaxed = Histogram::read(
            TEXT,
            "hookd_writer_commit_seconds",
            "durability=\"relaxed\"",
        );
        assert_eq!(relaxed.count, 10.0);
        assert!((relaxed.mean() - 0.0001).abs() < 1e-12);
    }
}
