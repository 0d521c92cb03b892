//! Words and numbers as the page shows them.

use fota_host::protocol::SlotKind;

/// What a reverted firmware printed about its own failure: its first lines (three at
/// most) that speak of a failure, else its last line.
pub fn why_reverted(lines: &[String]) -> Option<String> {
    const WORDS: [&str; 7] = [
        "fail", "error", "panic", "fault", "abort", "assert", "watchdog",
    ];
    let failing: Vec<&str> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            WORDS.iter().any(|w| l.contains(w))
        })
        .take(3)
        .collect();
    if failing.is_empty() {
        lines
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
            .map(str::to_string)
    } else {
        Some(failing.join("\n"))
    }
}

pub fn kind_name(kind: SlotKind) -> &'static str {
    kind.title()
}

/// What a resume found on the device.
pub fn resumed_text(kept: u64, total: u64) -> String {
    format!(
        "{} of {} are already on the device and are not sent again",
        size(kept),
        size(total)
    )
}

/// `1.5 KiB`, `32 KiB`, `1.0 MiB`.
pub fn size(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1024 * 1024 {
        let k = bytes as f64 / 1024.0;
        if k < 10.0 {
            format!("{k:.1} KiB")
        } else {
            format!("{k:.0} KiB")
        }
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

/// Lower-case hex.
pub use fota_host::hex;
