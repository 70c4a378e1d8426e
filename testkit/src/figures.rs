//! Machine-readable figures for `scripts/bench.sh`, which writes docs/benchmarks.md from them.
//!
//! With `ROOMD_BENCH_RECORDS=1` a bench prints, besides its own text, one tab-separated line
//! per record, each starting with `BENCH\t`:
//!
//! ```text
//! BENCH  about   <what it measures>  <its baseline>
//! BENCH  figure  <label>  <value>  <unit>  <baseline label>  <baseline value>  <ratio>  <target>  <met|missed>
//! BENCH  note    <text>
//! ```
//!
//! The ratio is always value / baseline value (same unit); fields that do not apply, or
//! cannot be computed (a zero baseline), are empty. Without the variable nothing is printed.

fn enabled() -> bool {
    std::env::var_os("ROOMD_BENCH_RECORDS").is_some_and(|v| v == "1")
}

fn emit(fields: &[&str]) {
    if !enabled() {
        return;
    }
    let mut line = String::from("BENCH");
    for field in fields {
        // Tabs and newlines would split the record.
        line.push('\t');
        line.push_str(&field.replace(['\t', '\n'], " "));
    }
    println!("{line}");
}

/// What the bench measures and what its baseline is, in a sentence each.
pub fn about(measures: &str, baseline: &str) {
    emit(&["about", measures, baseline]);
}

/// A remark for the report (a part skipped, a caveat of the set-up).
pub fn note(text: &str) {
    emit(&["note", text]);
}

/// A figure of roomd's: `figure(..).against(..).target(..).record()`.
pub fn figure(label: &str, value: f64, unit: &str) -> Figure {
    Figure {
        label: label.to_string(),
        value,
        unit: unit.to_string(),
        baseline: None,
        target: None,
    }
}

/// A limit from the issue that set the bench.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// value / baseline at most this.
    RatioAtMost(f64),
    /// The value itself at most this, in the figure's unit.
    AtMost(f64),
    /// The value itself at least this, in the figure's unit.
    AtLeast(f64),
}

#[must_use = "a figure is printed by .record()"]
#[derive(Debug)]
pub struct Figure {
    label: String,
    value: f64,
    unit: String,
    baseline: Option<(String, f64)>,
    target: Option<Target>,
}

impl Figure {
    /// The baseline measured in the same run, in the same unit.
    pub fn against(mut self, label: &str, value: f64) -> Self {
        self.baseline = Some((label.to_string(), value));
        self
    }

    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    pub fn record(self) {
        let ratio = self
            .baseline
            .as_ref()
            .map(|(_, base)| self.value / base)
            .filter(|r| r.is_finite());
        let (target, met) = match self.target {
            None => (String::new(), ""),
            Some(target) => {
                let (text, met) = match target {
                    Target::RatioAtMost(limit) => (
                        format!("≤ {}×", limit_text(limit)),
                        ratio.map(|r| r <= limit),
                    ),
                    Target::AtMost(limit) => (
                        format!("≤ {} {}", limit_text(limit), self.unit),
                        Some(self.value <= limit),
                    ),
                    Target::AtLeast(limit) => (
                        format!("≥ {} {}", limit_text(limit), self.unit),
                        Some(self.value >= limit),
                    ),
                };
                // No verdict without a ratio (a zero baseline).
                let met = match met {
                    Some(true) => "met",
                    Some(false) => "missed",
                    None => "",
                };
                (text, met)
            }
        };
        let (base_label, base_value) = match &self.baseline {
            Some((label, value)) => (label.as_str(), number(*value)),
            None => ("", String::new()),
        };
        emit(&[
            "figure",
            &self.label,
            &number(self.value),
            &self.unit,
            base_label,
            &base_value,
            &ratio.map(number).unwrap_or_default(),
            &target,
            met,
        ]);
    }
}

/// Three significant digits, thousands grouped from 1,000 up: 0.00605, 0.900, 4.01, 33.3,
/// 242, 1,263,243.
pub fn number(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    if value.abs() >= 1000.0 {
        return grouped(value.round() as i64);
    }
    if value == 0.0 {
        return "0".to_string();
    }
    let decimals = (2 - value.abs().log10().floor() as i32).max(0) as usize;
    format!("{value:.decimals$}")
}

/// A limit as written in an issue: 0.65, 1.2, 2, 50,000.
fn limit_text(limit: f64) -> String {
    if limit.fract() == 0.0 {
        grouped(limit as i64)
    } else {
        let text = format!("{limit:.4}");
        text.trim_end_matches('0').to_string()
    }
}

fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    if n < 0 {
        out.push('-');
    }
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A bench's count from the environment (`name`), when it is a positive number; else `default`.
pub fn env_count<T: std::str::FromStr + PartialOrd + Default>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<T>().ok())
        .filter(|n| *n > T::default())
        .unwrap_or(default)
}
