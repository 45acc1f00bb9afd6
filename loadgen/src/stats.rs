//! Summaries of measured samples.

use std::fmt;

/// Milliseconds: median, p99, max and the sample count.
pub struct Summary {
    pub count: usize,
    pub mean: f64,
    pub median: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(mut samples: Vec<f64>) -> Summary {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if samples.is_empty() {
                f64::NAN
            } else {
                samples[((samples.len() - 1) as f64 * q).round() as usize]
            }
        };
        Summary {
            count: samples.len(),
            mean: samples.iter().sum::<f64>() / samples.len().max(1) as f64,
            median: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mean {:.2} ms, median {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
            self.mean, self.median, self.p99, self.max, self.count
        )
    }
}

/// Milliseconds since the Unix epoch, with sub-millisecond precision.
pub fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let summary = Summary::of((1..=100).map(f64::from).collect());
        assert_eq!(summary.median, 51.0);
        assert_eq!(summary.p99, 99.0);
        assert_eq!(summary.max, 100.0);
        assert_eq!(summary.mean, 50.5);
        assert!(Summary::of(Vec::new()).p99.is_nan());
    }
}
