//! The one table: printed, and written between markers into docs/benchmarks.md.

use crate::scenarios::Fanout;
use anyhow::Context;
use std::path::Path;

pub const BEGIN: &str = "<!-- bench:begin (written by `make bench`; edit outside the markers) -->";
pub const END: &str = "<!-- bench:end -->";

pub struct Row {
    pub scenario: String,
    pub result: String,
    pub target: String,
    /// None when the row has no target.
    pub met: Option<bool>,
}

impl Row {
    pub fn new(scenario: impl Into<String>, result: impl Into<String>) -> Self {
        Self {
            scenario: scenario.into(),
            result: result.into(),
            target: String::new(),
            met: None,
        }
    }

    pub fn target(mut self, target: impl Into<String>, met: bool) -> Self {
        self.target = target.into();
        self.met = Some(met);
        self
    }
}

/// The Markdown table; a quick run shows no verdicts (its sizes are not the targets').
pub fn table(header: &str, rows: &[Row], quick: bool) -> String {
    let mut out =
        format!("{header}\n\n| scenario | result | target | |\n| --- | --- | --- | --- |\n");
    for r in rows {
        let verdict = match r.met {
            _ if quick => "",
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.scenario, r.result, r.target, verdict
        ));
    }
    out
}

/// Replaces the generated section of `path` (or appends one).
pub fn write_section(path: &Path, section: &str) -> anyhow::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let generated = format!("{BEGIN}\n{section}{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if e > b => {
            format!("{}{generated}{}", &old[..b], &old[e + END.len()..])
        }
        _ => format!("{old}\n{generated}\n"),
    };
    std::fs::write(path, new).with_context(|| format!("cannot write {}", path.display()))
}

/// `1234567.8` -> `1,234,568`.
pub fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

pub fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

pub fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

/// The median of `values` (the upper one of an even count).
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut sorted: Vec<f64> = values.into_iter().collect();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// Medians of fan-out runs.
pub struct FanoutSummary {
    pub p99_us: u64,
    pub rate: f64,
    pub server_cpu: f64,
    pub lost: u64,
    /// "p50 … · **p99 …** (runs …) · max … · deliveries/s · CPU · lost …"
    pub text: String,
}

/// Medians over the runs, the p99 range, CPU (`servers` names whose CPU it is) and losses.
pub fn fanout_summary(runs: &[Fanout], servers: &str) -> FanoutSummary {
    let m = |f: fn(&Fanout) -> f64| median(runs.iter().map(f));
    let p50 = m(|r| r.latency.p50_us as f64) as u64;
    let p99 = m(|r| r.latency.p99_us as f64) as u64;
    let max = m(|r| r.latency.max_us as f64) as u64;
    let rate = m(|r| r.deliveries_per_sec);
    let cpu = m(|r| r.server_cpu_ms_per_1k);
    let own = m(|r| r.loadgen_cpu_ms_per_1k);
    let publish_p99 = m(|r| r.publish.p99_us as f64) as u64;
    let lost: u64 = runs.iter().map(|r| r.lost).sum();
    let slow: u64 = runs.iter().map(|r| r.too_slow).sum();
    let p99s: Vec<u64> = runs.iter().map(|r| r.latency.p99_us).collect();
    let spread = if runs.len() > 1 {
        format!(
            " (runs {}–{})",
            ms(*p99s.iter().min().unwrap_or(&0)),
            ms(*p99s.iter().max().unwrap_or(&0))
        )
    } else {
        String::new()
    };
    let text = format!(
        "p50 {} · **p99 {}**{spread} · max {} · publish round trip p99 {} · {} deliveries/s · {servers} {:.2} ms CPU/1k · loadgen {:.2} ms CPU/1k · lost {lost}{}",
        ms(p50),
        ms(p99),
        ms(max),
        ms(publish_p99),
        thousands(rate),
        cpu,
        own,
        if slow > 0 { format!(" · {slow} closed 4008 and replayed") } else { String::new() },
    );
    FanoutSummary {
        p99_us: p99,
        rate,
        server_cpu: cpu,
        lost,
        text,
    }
}

/// One fan-out row: medians over the runs, p99 range, and the targets that apply.
pub fn fanout_row(
    name: &str,
    runs: &[Fanout],
    p99_target_ms: Option<f64>,
    rate_target: Option<f64>,
    quick: bool,
) -> Row {
    let s = fanout_summary(runs, "server");
    let mut targets = vec![];
    let mut met = s.lost == 0;
    if let Some(t) = p99_target_ms {
        targets.push(format!("p99 ≤ {t} ms"));
        met &= s.p99_us as f64 <= t * 1000.0;
    }
    if let Some(t) = rate_target {
        targets.push(format!("≥ {} deliveries/s", thousands(t)));
        met &= s.rate >= t;
    }
    targets.push("≤ 2 ms CPU/1k".into());
    met &= s.server_cpu <= 2.0;
    targets.push("0 lost".into());
    Row::new(name, s.text).target(targets.join(", "), met || (quick && s.lost == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1234567.8), "1,234,568");
    }

    #[test]
    fn the_generated_section_is_replaced_in_place() {
        let dir = std::env::temp_dir().join(format!("pfa-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("b.md");
        std::fs::write(&path, format!("intro\n{BEGIN}\nold\n{END}\noutro\n")).unwrap();
        write_section(&path, "new\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("intro\n{BEGIN}\nnew\n{END}\noutro\n")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
