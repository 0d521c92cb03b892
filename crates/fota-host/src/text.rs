//! Text that comes from a device (its agent name, the lines its firmware prints), made
//! safe to show: a device must not be able to move a terminal's cursor, clear or recolour
//! it, reorder the text around its own (bidirectional overrides), or fill a screen or a
//! memory with one endless line. And addresses shown without the secret they carry
//! ([`redact_token`]), in the CLI's and the web app's messages alike.

use crate::Observer;
use fota_protocol::MAX_NAME;

/// `url` with the value of its `token=` replaced by `mark` (`...` in a terminal, `…` on a
/// page), for messages that may end up in a log, a screenshot or a bug report: the token
/// lets anyone on this computer drive the device through the bridge.
pub fn redact_token(url: &str, mark: &str) -> String {
    match url.find("token=") {
        Some(at) => {
            let start = at + "token=".len();
            let end = url[start..].find('&').map_or(url.len(), |e| start + e);
            format!("{}{mark}{}", &url[..start], &url[end..])
        }
        None => url.to_string(),
    }
}

/// The longest device log line shown, in characters; the rest is cut, with a note.
pub const MAX_LOG_LINE: usize = 512;

/// Characters shown as an escape instead of themselves: controls other than tab (C0, DEL,
/// C1: terminal escapes start with these) and the bidirectional formatting characters.
fn hidden(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
                | '\u{2028}' | '\u{2029}'
        )
}

/// `s` with every hidden character written as a `\u{..}` escape, cut once `max`
/// characters are shown (escapes count with their length), with a note of how many of
/// `s`'s characters were left out.
pub fn printable(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max + 16));
    let mut shown = 0usize;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        let piece = if hidden(c) {
            format!("\\u{{{:x}}}", u32::from(c))
        } else {
            c.to_string()
        };
        let len = piece.chars().count();
        if shown + len > max {
            let more = 1 + chars.count();
            let plural = if more == 1 { "" } else { "s" };
            out.push_str(&format!("… ({more} more character{plural})"));
            break;
        }
        out.push_str(&piece);
        shown += len;
    }
    out
}

/// An agent name that is safe to show: hidden characters become `?` (so it still fits
/// the protocol's [`MAX_NAME`] bytes).
pub fn printable_name(name: &str) -> heapless::String<MAX_NAME> {
    let mut out = heapless::String::new();
    for c in name.chars() {
        let c = if hidden(c) { '?' } else { c };
        if out.push(c).is_err() {
            break;
        }
    }
    out
}

/// Hand the device's `text` (bytes between frames, maybe several lines, maybe not UTF-8)
/// to `observer` line by line, each made [`printable`] and at most [`MAX_LOG_LINE`]
/// characters.
pub(crate) fn log_lines(observer: &mut dyn Observer, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    for line in text.split_terminator('\n') {
        observer.device_log(&printable(line.trim_end_matches('\r'), MAX_LOG_LINE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_and_bidi_overrides_are_shown_not_obeyed() {
        assert_eq!(
            printable("\u{1b}[2K\rOK\u{7}", 100),
            "\\u{1b}[2K\\u{d}OK\\u{7}"
        );
        assert_eq!(printable("a\u{202E}b\u{9b}c", 100), "a\\u{202e}b\\u{9b}c");
        assert_eq!(printable("tab\tand ünïcode ✓", 100), "tab\tand ünïcode ✓");
        // Escapes count with their length.
        assert_eq!(printable("\u{1b}\u{1b}", 8), "\\u{1b}… (1 more character)");
    }

    #[test]
    fn long_lines_are_cut_with_a_note() {
        let line = "x".repeat(10_000);
        let shown = printable(&line, MAX_LOG_LINE);
        assert!(shown.starts_with(&"x".repeat(MAX_LOG_LINE)));
        assert!(shown.ends_with("… (9488 more characters)"), "{shown}");
        assert_eq!(printable(&"y".repeat(5), 5), "yyyyy");
    }

    #[test]
    fn addresses_hide_the_token() {
        assert_eq!(
            redact_token("ws://127.0.0.1:9000/?token=0123abcd", "..."),
            "ws://127.0.0.1:9000/?token=..."
        );
        assert_eq!(
            redact_token("ws://h:1/?token=abc&x=1", "…"),
            "ws://h:1/?token=…&x=1"
        );
        assert_eq!(redact_token("ws://h:1", "..."), "ws://h:1");
    }

    #[test]
    fn names_keep_their_size() {
        let name = "\u{202E}\u{1b}".repeat(20);
        let shown = printable_name(&name);
        assert!(shown.chars().all(|c| c == '?'));
        assert!(shown.len() <= MAX_NAME);
        assert_eq!(printable_name("fota-agent 1"), "fota-agent 1");
    }
}
