//! Summaries of repeated measurements: median and spread, never a single run.
//!
//! [`Samples`] keeps every observation and answers order statistics (nearest-rank percentiles,
//! no interpolation: every number reported was observed). The machine is shared and noisy, so
//! the report shows the median with p10–p90 (or min–max for few runs), and latency
//! distributions with p50/p99/p99.9.

use std::time::Duration;

/// Observations of one quantity, in its unit.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    values: Vec<f64>,
    sorted: bool,
}

impl Samples {
    pub fn new() -> Samples {
        Samples::default()
    }

    pub fn from_values(values: impl IntoIterator<Item = f64>) -> Samples {
        let mut s = Samples::new();
        s.extend(values);
        s
    }

    /// Durations in milliseconds.
    pub fn millis(values: impl IntoIterator<Item = Duration>) -> Samples {
        Samples::from_values(values.into_iter().map(|d| d.as_secs_f64() * 1e3))
    }

    /// Durations in microseconds.
    pub fn micros(values: impl IntoIterator<Item = Duration>) -> Samples {
        Samples::from_values(values.into_iter().map(|d| d.as_secs_f64() * 1e6))
    }

    pub fn push(&mut self, value: f64) {
        self.values.push(value);
        self.sorted = false;
    }

    pub fn extend(&mut self, values: impl IntoIterator<Item = f64>) {
        self.values.extend(values);
        self.sorted = false;
    }

    /// Every observation, in no particular order.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn sort(&mut self) {
        if !self.sorted {
            self.values.sort_by(f64::total_cmp);
            self.sorted = true;
        }
    }

    /// The nearest-rank `p`-th percentile (`0.0..=100.0`); `NaN` when empty.
    pub fn percentile(&mut self, p: f64) -> f64 {
        if self.values.is_empty() {
            return f64::NAN;
        }
        self.sort();
        let n = self.values.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.values[rank.clamp(1, n) - 1]
    }

    pub fn median(&mut self) -> f64 {
        if self.values.is_empty() {
            return f64::NAN;
        }
        self.sort();
        let n = self.values.len();
        if n % 2 == 1 {
            self.values[n / 2]
        } else {
            (self.values[n / 2 - 1] + self.values[n / 2]) / 2.0
        }
    }

    pub fn min(&mut self) -> f64 {
        self.percentile(0.0)
    }

    pub fn max(&mut self) -> f64 {
        self.percentile(100.0)
    }

    /// The spread reported next to the median: p10–p90 with 10 or more runs, else min–max.
    pub fn spread(&mut self) -> (f64, f64, &'static str) {
        if self.values.len() >= 10 {
            (self.percentile(10.0), self.percentile(90.0), "p10–p90")
        } else {
            (self.min(), self.max(), "min–max")
        }
    }
}

/// A number with a sensible number of significant digits and thousands separators.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let abs = x.abs();
    let decimals = if abs >= 100.0 {
        0
    } else if abs >= 10.0 {
        1
    } else if abs >= 1.0 {
        2
    } else {
        3
    };
    let text = format!("{x:.decimals$}");
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i.to_owned(), Some(f.to_owned())),
        None => (text, None),
    };
    let (sign, digits) = match int.strip_prefix('-') {
        Some(d) => ("-", d.to_owned()),
        None => ("", int),
    };
    let mut grouped = String::new();
    for (k, ch) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// A rate (per second) in millions when large.
pub fn fmt_rate(per_second: f64) -> String {
    if per_second >= 1e6 {
        format!("{} M/s", fmt_num(per_second / 1e6))
    } else {
        format!("{}/s", fmt_num(per_second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_statistics() {
        let mut s = Samples::from_values([5.0, 1.0, 4.0, 2.0, 3.0]);
        assert_eq!(s.median(), 3.0);
        assert_eq!(s.min(), 1.0);
        assert_eq!(s.max(), 5.0);
        assert_eq!(s.spread(), (1.0, 5.0, "min–max"));
        let mut many = Samples::from_values((1..=100).map(f64::from));
        assert_eq!(many.percentile(99.0), 99.0);
        assert_eq!(many.percentile(50.0), 50.0);
        assert_eq!(many.spread(), (10.0, 90.0, "p10–p90"));
        assert_eq!(Samples::from_values([1.0, 2.0]).median(), 1.5);
        assert!(Samples::new().median().is_nan());
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_num(1234567.0), "1,234,567");
        assert_eq!(fmt_num(12.345), "12.3");
        assert_eq!(fmt_num(0.01234), "0.012");
        assert_eq!(fmt_num(-1500.0), "-1,500");
        assert_eq!(fmt_rate(7_250_000.0), "7.25 M/s");
        assert_eq!(fmt_rate(5000.0), "5,000/s");
    }
}
