//! How the command line shows an update: progress bars on a terminal, plain lines
//! otherwise, JSON lines with `--json`.

use std::io::IsTerminal;
use std::time::Duration;

use fota_host::{Observer, Phase, Progress, Step};
use indicatif::{ProgressBar, ProgressStyle};

/// The output style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Bars,
    Plain,
    Json,
}

impl Style {
    pub fn pick(json: bool) -> Style {
        if json {
            Style::Json
        } else if std::io::stderr().is_terminal() {
            Style::Bars
        } else {
            Style::Plain
        }
    }
}

/// Prints what an update does.
pub struct Printer {
    style: Style,
    verbose: bool,
    bar: Option<(Phase, ProgressBar)>,
    last_plain: Option<(Phase, u64)>,
}

impl Printer {
    pub fn new(style: Style, verbose: bool) -> Printer {
        Printer {
            style,
            verbose,
            bar: None,
            last_plain: None,
        }
    }

    fn finish_bar(&mut self) {
        if let Some((_, bar)) = self.bar.take() {
            bar.finish();
        }
    }

    fn line(&mut self, text: &str) {
        match &self.bar {
            Some((_, bar)) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
}

pub fn json_line(value: serde_json::Value) {
    println!("{value}");
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Compare => "compare",
        Phase::Erase => "erase",
        Phase::Stream => "stream",
        Phase::Checksum => "checksum",
    }
}

pub fn human_bytes(n: f64) -> String {
    if n >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", n / (1024.0 * 1024.0))
    } else if n >= 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else {
        format!("{n:.0} B")
    }
}

fn eta_text(eta: Option<Duration>) -> String {
    match eta {
        Some(d) => format!("{}s", d.as_secs()),
        None => "-".into(),
    }
}

impl Observer for Printer {
    fn step(&mut self, step: Step, detail: &str) {
        match self.style {
            Style::Json => json_line(serde_json::json!({
                "event": "step", "step": step.label(), "detail": detail
            })),
            _ => {
                self.finish_bar();
                self.line(&format!("[{}] {detail}", step.label()));
            }
        }
    }

    fn progress(&mut self, p: &Progress) {
        match self.style {
            Style::Json => {
                // One line per percent at most, so scripts are not flooded.
                let pct = (p.fraction() * 100.0) as u64;
                if self.last_plain == Some((p.phase, pct)) {
                    return;
                }
                self.last_plain = Some((p.phase, pct));
                json_line(serde_json::json!({
                    "event": "progress", "phase": phase_name(p.phase), "done": p.done,
                    "total": p.total, "per_second": p.per_second.round(),
                    "eta_seconds": p.eta.map(|d| d.as_secs_f64()),
                }));
            }
            Style::Plain => {
                let step = (p.fraction() * 10.0) as u64;
                if self.last_plain == Some((p.phase, step)) && p.done != p.total {
                    return;
                }
                self.last_plain = Some((p.phase, step));
                eprintln!(
                    "  {} {:>3}%  {} of {}  {}/s  ETA {}",
                    phase_name(p.phase),
                    (p.fraction() * 100.0) as u64,
                    human_bytes(p.done as f64),
                    human_bytes(p.total as f64),
                    human_bytes(p.per_second),
                    eta_text(p.eta)
                );
            }
            Style::Bars => {
                let same = matches!(&self.bar, Some((phase, _)) if *phase == p.phase);
                if !same {
                    self.finish_bar();
                    let bar = ProgressBar::new(p.total);
                    let template = format!(
                        "  {:<8} [{{bar:40}}] {{bytes}}/{{total_bytes}} {{bytes_per_sec}} ETA {{eta}}",
                        phase_name(p.phase)
                    );
                    if let Ok(style) = ProgressStyle::with_template(&template) {
                        bar.set_style(style.progress_chars("=> "));
                    }
                    self.bar = Some((p.phase, bar));
                }
                if let Some((_, bar)) = &self.bar {
                    bar.set_length(p.total);
                    bar.set_position(p.done);
                    if p.done >= p.total {
                        bar.finish();
                    }
                }
            }
        }
    }

    fn verified(&mut self, image: &str, md5: &[u8; 16]) {
        if self.style == Style::Json {
            json_line(serde_json::json!({
                "event": "verified", "image": image, "md5": fota_host::hex(md5)
            }));
        }
    }

    fn resumed(&mut self, image: &str, kept: u64, total: u64) {
        match self.style {
            Style::Json => json_line(serde_json::json!({
                "event": "resumed", "image": image, "kept": kept, "total": total
            })),
            _ => self.line(&format!(
                "  {kept} of {total} bytes of {image} are already on the device: not sent again"
            )),
        }
    }

    fn device_log(&mut self, line: &str) {
        match self.style {
            Style::Json => json_line(serde_json::json!({"event": "device", "line": line})),
            _ => self.line(&format!("  device: {line}")),
        }
    }

    fn event(&mut self, line: &str) {
        match self.style {
            Style::Json => json_line(serde_json::json!({"event": "link", "line": line})),
            _ if self.verbose => self.line(&format!("  link: {line}")),
            _ => {}
        }
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        self.finish_bar();
    }
}
