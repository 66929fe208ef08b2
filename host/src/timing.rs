//! Samples of a duration and their summary, for the offline benchmark
//! commands (`sandboxd plugin bench`, `sandboxd store bench`).

use std::time::Duration;

/// Measured durations of one operation.
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn new(mut samples: Vec<Duration>) -> Samples {
        samples.sort();
        Samples(samples)
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        self.0[((self.0.len() as f64 - 1.0) * p).round() as usize]
    }

    fn mean(&self) -> Duration {
        self.0.iter().sum::<Duration>() / u32::try_from(self.0.len().max(1)).unwrap_or(u32::MAX)
    }

    /// Print the summary: one JSON line (`iterations`, `mean_us`, `p50_us`,
    /// `p99_us`), or two lines of text headed by `what`.
    pub fn print(&self, what: &str, json: bool) {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let (mean, p50, p99) = (self.mean(), self.percentile(0.5), self.percentile(0.99));
        if json {
            println!(
                "{}",
                serde_json::json!({"iterations": self.0.len(), "mean_us": us(mean), "p50_us": us(p50), "p99_us": us(p99)})
            );
        } else {
            println!("{what}, {} iterations:", self.0.len());
            println!(
                "  mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs",
                us(mean),
                us(p50),
                us(p99)
            );
        }
    }
}
