//! Figures and how they are shown: exact percentiles over the recorded samples, a table
//! for people and one JSON line per report for scripts.

use std::fmt::Write as _;

use serde_json::Value;

/// One scenario's (or one variant's) figures, in the order they were added.
#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: String,
    pub figures: Vec<(String, Value)>,
}

impl Report {
    pub fn new(scenario: &str) -> Self {
        Self {
            scenario: scenario.to_owned(),
            figures: Vec::new(),
        }
    }

    /// Adds a figure; floats are rounded to 2 decimals so the output stays readable.
    pub fn add(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        let value = match value.into() {
            Value::Number(n) if n.is_f64() => {
                let x = n.as_f64().unwrap_or(0.0);
                serde_json::json!((x * 100.0).round() / 100.0)
            }
            other => other,
        };
        self.figures.push((name.to_owned(), value));
        self
    }

    /// Adds `{prefix}_p50_ms`, `_p90_ms`, `_p99_ms`, `_p999_ms` and `_max_ms`.
    pub fn add_percentiles(&mut self, prefix: &str, p: &Percentiles) -> &mut Self {
        self.add(&format!("{prefix}_p50_ms"), p.p50_ms)
            .add(&format!("{prefix}_p90_ms"), p.p90_ms)
            .add(&format!("{prefix}_p99_ms"), p.p99_ms)
            .add(&format!("{prefix}_p999_ms"), p.p999_ms)
            .add(&format!("{prefix}_max_ms"), p.max_ms)
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.figures.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// `{"scenario": ..., ...figures}` on one line, keys in the order added.
    pub fn json_line(&self) -> String {
        let mut line = format!("{{\"scenario\":{}", Value::from(self.scenario.clone()));
        for (name, value) in &self.figures {
            let _ = write!(line, ",{}:{value}", Value::from(name.clone()));
        }
        line.push('}');
        line
    }

    /// The figures as a two-column table under the scenario's name.
    pub fn table(&self) -> String {
        let width = self.figures.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = format!("== {} ==\n", self.scenario);
        for (name, value) in &self.figures {
            let shown = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let _ = writeln!(out, "  {name:<width$}  {shown}");
        }
        out
    }
}

/// Exact percentiles of a set of durations given in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles (the sample count here is small enough to sort).
    pub fn of(mut samples_us: Vec<u64>) -> Self {
        if samples_us.is_empty() {
            return Self::default();
        }
        samples_us.sort_unstable();
        let n = samples_us.len();
        let rank = |q: f64| {
            let index = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
            samples_us[index] as f64 / 1000.0
        };
        Self {
            count: n,
            p50_ms: rank(0.50),
            p90_ms: rank(0.90),
            p99_ms: rank(0.99),
            p999_ms: rank(0.999),
            max_ms: samples_us[n - 1] as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let p = Percentiles::of((1..=100).map(|ms| ms * 1000).collect());
        assert_eq!(
            (p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms),
            (50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(Percentiles::of(Vec::new()).count, 0);
    }

    #[test]
    fn the_json_line_keeps_the_order_of_the_figures() {
        let mut report = Report::new("ingest");
        report.add("webhooks", 10).add("acks_per_s", 1234.5678);
        assert_eq!(
            report.json_line(),
            r#"{"scenario":"ingest","webhooks":10,"acks_per_s":1234.57}"#
        );
    }
}
