//! Order statistics and human-readable durations.

use std::time::Duration;

/// Samples of one measurement, in nanoseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    values: Vec<f64>,
    sorted: bool,
}

impl Samples {
    /// No samples yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one duration.
    pub fn push(&mut self, d: Duration) {
        self.push_value(d.as_nanos() as f64);
    }

    /// Add one plain value (the unit is the caller's).
    pub fn push_value(&mut self, v: f64) {
        self.values.push(v);
        self.sorted = false;
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    fn sort(&mut self) {
        if !self.sorted {
            self.values.sort_by(f64::total_cmp);
            self.sorted = true;
        }
    }

    /// The `q`-quantile (0 to 1), nearest rank; NaN when empty.
    pub fn quantile(&mut self, q: f64) -> f64 {
        self.sort();
        if self.values.is_empty() {
            return f64::NAN;
        }
        let rank = (q * (self.values.len() - 1) as f64).round() as usize;
        self.values[rank.min(self.values.len() - 1)]
    }

    /// The median.
    pub fn median(&mut self) -> f64 {
        self.quantile(0.5)
    }

    /// The largest sample.
    pub fn max(&mut self) -> f64 {
        self.quantile(1.0)
    }
}

/// Nanoseconds as `812 ns`, `23.4 µs`, `1.52 ms` or `2.31 s` (negative values too).
pub fn ns(v: f64) -> String {
    let a = v.abs();
    if v.is_nan() {
        "n/a".into()
    } else if a < 1e3 {
        format!("{v:.0} ns")
    } else if a < 1e6 {
        format!("{:.1} µs", v / 1e3)
    } else if a < 1e9 {
        format!("{:.2} ms", v / 1e6)
    } else {
        format!("{:.2} s", v / 1e9)
    }
}

/// KiB as `512 KiB` or `12.3 MiB`.
pub fn kib(v: f64) -> String {
    if v < 1024.0 {
        format!("{v:.0} KiB")
    } else {
        format!("{:.1} MiB", v / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut s = Samples::new();
        assert!(s.median().is_nan());
        for v in [5.0, 1.0, 3.0, 2.0, 4.0] {
            s.push_value(v);
        }
        assert_eq!((s.quantile(0.0), s.median(), s.max()), (1.0, 3.0, 5.0));
        assert_eq!(s.quantile(0.9), 5.0);
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn units() {
        assert_eq!(ns(812.0), "812 ns");
        assert_eq!(ns(23_400.0), "23.4 µs");
        assert_eq!(ns(-21_276.0), "-21.3 µs");
        assert_eq!(ns(1.52e6), "1.52 ms");
        assert_eq!(kib(2048.0), "2.0 MiB");
    }
}
