//! The Prometheus text exposition format (version 0.0.4): `# HELP`, `# TYPE`, then one line per
//! sample, label values escaped. Only what `/metrics` writes: counters, gauges, histograms.

use std::fmt::Write;

/// The `Content-Type` of the format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A page of metric families being written.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts the family `name` (its samples follow with [`sample`](Self::sample)).
    pub(crate) fn family(&mut self, name: &str, help: &str, kind: Kind) -> &mut Self {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample of `name` with `labels` (name, value), in that order.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
        self
    }

    /// The samples of one histogram: cumulative `_bucket`s (upper bounds `bounds`, then `+Inf`),
    /// `_sum` and `_count`.
    pub(crate) fn histogram(&mut self, name: &str, bounds: &[f64], snapshot: &HistogramSnapshot) -> &mut Self {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for (bound, n) in bounds.iter().zip(&snapshot.buckets) {
            cumulative += n;
            self.sample(&bucket, &[("le", &number(*bound))], cumulative as f64);
        }
        self.sample(&bucket, &[("le", "+Inf")], snapshot.count as f64);
        self.sample(&format!("{name}_sum"), &[], snapshot.sum);
        self.sample(&format!("{name}_count"), &[], snapshot.count as f64)
    }

    /// The page.
    pub(crate) fn finish(self) -> String {
        self.out
    }
}

/// What a histogram holds at one instant: per bucket the observations that fell in it (not
/// cumulative), and over all of them their sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HistogramSnapshot {
    pub buckets: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A sample value as Prometheus writes it: integers without a fraction, `+Inf`, `NaN`.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_histograms_are_written_in_the_text_format() {
        let mut page = Exposition::default();
        page.family("dualkey_x_total", "Things.\nCounted \\ here.", Kind::Counter);
        page.sample("dualkey_x_total", &[("channel", "a\"b\\c\nd"), ("outcome", "ok")], 3.0);
        page.family("dualkey_age_seconds", "Age.", Kind::Gauge).sample("dualkey_age_seconds", &[], 1.5);
        page.family("dualkey_wait_seconds", "Wait.", Kind::Histogram);
        let snapshot = HistogramSnapshot { buckets: vec![1, 0, 2], sum: 12.5, count: 4 };
        page.histogram("dualkey_wait_seconds", &[1.0, 2.5, 10.0], &snapshot);
        assert_eq!(
            page.finish(),
            "# HELP dualkey_x_total Things.\\nCounted \\\\ here.\n\
             # TYPE dualkey_x_total counter\n\
             dualkey_x_total{channel=\"a\\\"b\\\\c\\nd\",outcome=\"ok\"} 3\n\
             # HELP dualkey_age_seconds Age.\n\
             # TYPE dualkey_age_seconds gauge\n\
             dualkey_age_seconds 1.5\n\
             # HELP dualkey_wait_seconds Wait.\n\
             # TYPE dualkey_wait_seconds histogram\n\
             dualkey_wait_seconds_bucket{le=\"1\"} 1\n\
             dualkey_wait_seconds_bucket{le=\"2.5\"} 1\n\
             dualkey_wait_seconds_bucket{le=\"10\"} 3\n\
             dualkey_wait_seconds_bucket{le=\"+Inf\"} 4\n\
             dualkey_wait_seconds_sum 12.5\n\
             dualkey_wait_seconds_count 4\n"
        );
    }
}
