//! The harness's findings and their Markdown form, BENCHMARKS.md.
//!
//! Main types: [`Report`] (machine, command, date, one [`Section`] per area, the peer table,
//! failures), [`Row`] (target | measured median | spread | verdict) and [`Machine`]. A verdict
//! compares the *median* with the target; nothing here asserts a timing — a target not met is
//! reported, not an error. What could not be measured is a row saying why, never a blank.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use crate::stats::{Samples, fmt_num};

/// How a measurement compares with its target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Met,
    NotMet,
    /// Measured, no target.
    Info,
    /// Not measured; why.
    NotMeasured(String),
}

impl Verdict {
    fn text(&self) -> String {
        match self {
            Verdict::Met => "met".into(),
            Verdict::NotMet => "**not met**".into(),
            Verdict::Info => "–".into(),
            Verdict::NotMeasured(why) => format!("not measured: {why}"),
        }
    }
}

/// One line of a section's table.
#[derive(Clone, Debug)]
pub struct Row {
    pub what: String,
    pub target: String,
    pub median: String,
    pub spread: String,
    pub verdict: Verdict,
}

/// Whether smaller or larger values are better, for a verdict.
#[derive(Clone, Copy, Debug)]
pub enum Goal {
    Below(f64),
    Above(f64),
}

impl Row {
    /// A measured quantity against a target, with its unit (`ms`, `µs`, `M/s`, `×`, ...).
    pub fn target(what: &str, goal: Goal, unit: &str, samples: &mut Samples) -> Row {
        let median = samples.median();
        let (target, met) = match goal {
            Goal::Below(t) => (format!("< {} {unit}", fmt_num(t)), median < t),
            Goal::Above(t) => (format!("> {} {unit}", fmt_num(t)), median > t),
        };
        Row {
            what: what.into(),
            target,
            median: format!("{} {unit}", fmt_num(median)),
            spread: spread(samples, unit),
            verdict: if median.is_nan() {
                Verdict::NotMeasured("no sample".into())
            } else if met {
                Verdict::Met
            } else {
                Verdict::NotMet
            },
        }
    }

    /// A measured quantity without a target.
    pub fn info(what: &str, unit: &str, samples: &mut Samples) -> Row {
        Row {
            what: what.into(),
            target: "–".into(),
            median: format!("{} {unit}", fmt_num(samples.median())),
            spread: spread(samples, unit),
            verdict: Verdict::Info,
        }
    }

    /// A single observed value (a count, a size) without a target.
    pub fn value(what: &str, value: String) -> Row {
        Row {
            what: what.into(),
            target: "–".into(),
            median: value,
            spread: "–".into(),
            verdict: Verdict::Info,
        }
    }

    /// Something that could not be measured in this run, and why.
    pub fn not_measured(what: &str, target: &str, why: impl Into<String>) -> Row {
        Row {
            what: what.into(),
            target: target.into(),
            median: "–".into(),
            spread: "–".into(),
            verdict: Verdict::NotMeasured(why.into()),
        }
    }
}

fn spread(samples: &mut Samples, unit: &str) -> String {
    if samples.len() < 2 {
        return "1 run".into();
    }
    let (lo, hi, kind) = samples.spread();
    format!(
        "{}–{} {unit} ({kind}, {} runs)",
        fmt_num(lo),
        fmt_num(hi),
        samples.len()
    )
}

/// One area of the report.
#[derive(Clone, Debug, Default)]
pub struct Section {
    pub title: String,
    /// How it was measured, in a sentence or two.
    pub how: String,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Section {
    pub fn new(title: &str, how: impl Into<String>) -> Section {
        Section {
            title: title.into(),
            how: how.into(),
            ..Section::default()
        }
    }
}

/// One engine of the peer comparison.
#[derive(Clone, Debug)]
pub struct PeerRow {
    pub engine: String,
    /// Rule evaluations per second, one core.
    pub rate: Samples,
    /// Whether its answers equal readyd's for every (entity, rule); `None` for readyd itself or
    /// when it did not run.
    pub agrees: Option<bool>,
    /// Why it did not run.
    pub skipped: Option<String>,
}

/// The machine the numbers come from.
#[derive(Clone, Debug)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory: String,
    pub kernel: String,
    pub rustc: String,
    pub node: String,
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").trim().to_owned()
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| first_line(&String::from_utf8_lossy(&o.stdout)))
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.into());
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            memory,
            kernel,
            rustc: command_output("rustc", &["--version"]).unwrap_or_else(|| "unknown".into()),
            node: command_output("node", &["--version"]).unwrap_or_else(|| "not installed".into()),
        }
    }
}

/// Everything BENCHMARKS.md says.
#[derive(Clone, Debug)]
pub struct Report {
    pub machine: Machine,
    pub command: String,
    pub date: String,
    /// The workload in a sentence.
    pub workload: String,
    pub sections: Vec<Section>,
    pub peers: Vec<PeerRow>,
    pub peer_notes: Vec<String>,
    /// What made the run fail (peers disagreeing, a broken harness step).
    pub failures: Vec<String>,
}

fn escape(cell: &str) -> String {
    cell.replace('|', "\\|").replace('\n', " ")
}

impl Report {
    /// The Markdown text of BENCHMARKS.md.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(md, "# readyd benchmarks\n");
        let _ = writeln!(
            md,
            "Written by the benchmark harness (`bench/`, crate `readyd-bench`); regenerate with \
             `bench/run.sh`. Each figure is the median of repeated runs with its spread; the \
             verdict compares the median with the target of DESIGN.md section 11. Nothing here is \
             asserted by a test: the machine is shared and noisy.\n"
        );
        let _ = writeln!(md, "| | |\n|---|---|");
        let _ = writeln!(md, "| date | {} |", self.date);
        let _ = writeln!(md, "| command | `{}` |", self.command);
        let _ = writeln!(
            md,
            "| machine | {} cores, {}, {} RAM |",
            m.cores, m.cpu, m.memory
        );
        let _ = writeln!(md, "| kernel | {} |", m.kernel);
        let _ = writeln!(md, "| rustc | {} |", m.rustc);
        let _ = writeln!(md, "| node | {} |", m.node);
        let _ = writeln!(md, "| workload | {} |", escape(&self.workload));
        let _ = writeln!(md);
        if !self.failures.is_empty() {
            let _ = writeln!(md, "## Run failed\n");
            for f in &self.failures {
                let _ = writeln!(md, "- {}", escape(f));
            }
            let _ = writeln!(md);
        }
        let (met, not_met, unmeasured) = self.tally();
        let _ = writeln!(
            md,
            "Targets: {met} met, {not_met} not met, {unmeasured} not measured in this run.\n"
        );
        for section in &self.sections {
            let _ = writeln!(md, "## {}\n", section.title);
            if !section.how.is_empty() {
                let _ = writeln!(md, "{}\n", section.how);
            }
            let _ = writeln!(
                md,
                "| measure | target | measured (median) | spread | verdict |"
            );
            let _ = writeln!(md, "|---|---|---|---|---|");
            for row in &section.rows {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} |",
                    escape(&row.what),
                    escape(&row.target),
                    escape(&row.median),
                    escape(&row.spread),
                    escape(&row.verdict.text())
                );
            }
            let _ = writeln!(md);
            for note in &section.notes {
                let _ = writeln!(md, "- {}", escape(note));
            }
            if !section.notes.is_empty() {
                let _ = writeln!(md);
            }
        }
        self.peer_table(&mut md);
        md
    }

    fn peer_table(&self, md: &mut String) {
        if self.peers.is_empty() {
            return;
        }
        let _ = writeln!(md, "## Peers: the same rules on the same facts\n");
        let readyd_rate = self
            .peers
            .first()
            .and_then(|p| (p.skipped.is_none()).then(|| p.rate.clone().median()));
        let _ = writeln!(
            md,
            "| engine | rule evaluations/s (one core, median) | spread | readyd / peer | same pass/fail for every (entity, rule) |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|");
        for (k, peer) in self.peers.iter().enumerate() {
            if let Some(why) = &peer.skipped {
                let _ = writeln!(
                    md,
                    "| {} | – | – | – | not run: {} |",
                    escape(&peer.engine),
                    escape(why)
                );
                continue;
            }
            let mut rate = peer.rate.clone();
            let median = rate.median();
            let ratio = match (k, readyd_rate) {
                (0, _) => "1 ×".to_owned(),
                (_, Some(r)) if median > 0.0 => format!("{} ×", fmt_num(r / median)),
                _ => "–".to_owned(),
            };
            let agrees = match peer.agrees {
                None => "(reference)".to_owned(),
                Some(true) => "yes".to_owned(),
                Some(false) => "**no** (see above)".to_owned(),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                escape(&peer.engine),
                crate::stats::fmt_rate(median),
                spread(&mut rate, "/s"),
                ratio,
                agrees
            );
        }
        let _ = writeln!(md);
        for note in &self.peer_notes {
            let _ = writeln!(md, "- {}", escape(note));
        }
        let _ = writeln!(md);
    }

    /// (met, not met, not measured) over every row with a target.
    pub fn tally(&self) -> (usize, usize, usize) {
        let mut t = (0, 0, 0);
        for row in self.sections.iter().flat_map(|s| &s.rows) {
            match &row.verdict {
                Verdict::Met => t.0 += 1,
                Verdict::NotMet => t.1 += 1,
                Verdict::NotMeasured(_) if row.target != "–" => t.2 += 1,
                _ => {}
            }
        }
        t
    }

    /// Writes the Markdown to `path`, atomically (temporary file, then rename).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = path.with_extension("md.tmp");
        std::fs::write(&tmp, self.markdown())?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_the_median_and_markdown_has_every_row() {
        let mut fast = Samples::from_values([0.5, 0.6, 2.0]);
        let row = Row::target("full pass", Goal::Below(1.0), "s", &mut fast);
        assert_eq!(row.verdict, Verdict::Met);
        let mut slow = Samples::from_values([3.0, 4.0]);
        assert_eq!(
            Row::target("rate", Goal::Above(5.0), "M/s", &mut slow).verdict,
            Verdict::NotMet
        );
        let mut section = Section::new("Evaluation", "how");
        section.rows.push(row);
        section
            .rows
            .push(Row::not_measured("API", "< 2 ms", "no | server"));
        let report = Report {
            machine: Machine {
                cores: 2,
                cpu: "cpu".into(),
                memory: "1 GiB".into(),
                kernel: "k".into(),
                rustc: "r".into(),
                node: "n".into(),
            },
            command: "bench/run.sh".into(),
            date: "2026-01-01".into(),
            workload: "w".into(),
            sections: vec![section],
            peers: vec![PeerRow {
                engine: "readyd".into(),
                rate: Samples::from_values([2e6]),
                agrees: None,
                skipped: None,
            }],
            peer_notes: vec![],
            failures: vec![],
        };
        let md = report.markdown();
        assert!(
            md.contains(
                "| full pass | < 1.00 s | 0.600 s | 0.500–2.00 s (min–max, 3 runs) | met |"
            ),
            "{md}"
        );
        assert!(md.contains("not measured: no \\| server"), "{md}");
        assert!(
            md.contains("Targets: 1 met, 0 not met, 1 not measured"),
            "{md}"
        );
        assert!(md.contains("| readyd | 2.00 M/s |"), "{md}");
    }
}
