//! Writing metric families in the Prometheus text format (version 0.0.4).

use std::fmt::Write;

use crate::histogram::Histogram;

/// Renders metric families named `<prefix>_<name>` into a string.
pub struct Exposition<'a> {
    out: &'a mut String,
    prefix: &'a str,
}

impl<'a> Exposition<'a> {
    /// Families written into `out`, each name prefixed with `prefix` and `_` (no prefix
    /// when it is empty).
    pub fn new(out: &'a mut String, prefix: &'a str) -> Exposition<'a> {
        Exposition { out, prefix }
    }

    fn name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}_{name}", self.prefix)
        }
    }

    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// A counter: a total that only grows.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        let full = self.name(name);
        self.head(&full, "counter", help);
        let _ = writeln!(self.out, "{full} {value}");
    }

    /// A gauge: a value now.
    pub fn gauge(&mut self, name: &str, help: &str, value: u64) {
        let full = self.name(name);
        self.head(&full, "gauge", help);
        let _ = writeln!(self.out, "{full} {value}");
    }

    /// A counter with one label: one sample per `(label value, count)`.
    pub fn counter_by(&mut self, name: &str, help: &str, label: &str, samples: &[(&str, u64)]) {
        self.family_by(name, "counter", help, label, samples);
    }

    /// A gauge with one label: one sample per `(label value, value)`.
    pub fn gauge_by(&mut self, name: &str, help: &str, label: &str, samples: &[(&str, u64)]) {
        self.family_by(name, "gauge", help, label, samples);
    }

    fn family_by(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        samples: &[(&str, u64)],
    ) {
        let full = self.name(name);
        self.head(&full, kind, help);
        for (value_of_label, v) in samples {
            let _ = writeln!(
                self.out,
                "{full}{{{label}=\"{}\"}} {v}",
                escape_label(value_of_label)
            );
        }
    }

    /// A histogram of durations, in seconds.
    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        let full = self.name(name);
        self.head(&full, "histogram", help);
        let snap = h.snapshot();
        let mut cumulative = 0;
        for (bound, n) in snap.bounds.iter().zip(&snap.counts) {
            cumulative += n;
            let _ = writeln!(self.out, "{full}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(self.out, "{full}_bucket{{le=\"+Inf\"}} {}", snap.count);
        let _ = writeln!(self.out, "{full}_sum {}", snap.sum_secs);
        let _ = writeln!(self.out, "{full}_count {}", snap.count);
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn families_render_in_the_text_format() {
        let mut out = String::new();
        let mut e = Exposition::new(&mut out, "sluice_x");
        e.counter("lines_total", "lines read\nfrom files", 7);
        e.gauge("files_open", "files open now", 2);
        e.counter_by(
            "refused_total",
            "refusals",
            "reason",
            &[("to\"ken", 1), ("max", 0)],
        );
        let want = "# HELP sluice_x_lines_total lines read\\nfrom files\n# TYPE sluice_x_lines_total counter\nsluice_x_lines_total 7\n\
# HELP sluice_x_files_open files open now\n# TYPE sluice_x_files_open gauge\nsluice_x_files_open 2\n\
# HELP sluice_x_refused_total refusals\n# TYPE sluice_x_refused_total counter\nsluice_x_refused_total{reason=\"to\\\"ken\"} 1\nsluice_x_refused_total{reason=\"max\"} 0\n";
        assert_eq!(out, want);
    }

    #[test]
    fn a_histogram_is_cumulative_with_sum_and_count() {
        let h = Histogram::new(&[0.01, 0.1, 1.0]);
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(60));
        h.observe(Duration::from_secs(3));
        let mut out = String::new();
        Exposition::new(&mut out, "").histogram("commit_seconds", "commit time", &h);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "# TYPE commit_seconds histogram");
        assert_eq!(lines[2], "commit_seconds_bucket{le=\"0.01\"} 1");
        assert_eq!(lines[3], "commit_seconds_bucket{le=\"0.1\"} 3");
        assert_eq!(lines[4], "commit_seconds_bucket{le=\"1\"} 3");
        assert_eq!(lines[5], "commit_seconds_bucket{le=\"+Inf\"} 4");
        assert_eq!(lines[6], "commit_seconds_sum 3.115");
        assert_eq!(lines[7], "commit_seconds_count 4");
    }
}
