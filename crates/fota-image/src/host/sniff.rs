//! Does a raw file look like firmware? Pictures, archives, documents and text are the
//! usual wrong picks in a file dialog; `infer` knows the signatures of the binary ones.

/// Why the bytes do not look like firmware, if they do not.
pub(crate) fn not_firmware(bytes: &[u8]) -> Option<String> {
    if let Some(kind) = infer::get(bytes) {
        use infer::MatcherType as M;
        let what = match kind.extension() {
            "pdf" | "ps" | "rtf" | "doc" | "docx" | "odt" | "xls" | "xlsx" | "ppt" | "pptx" => {
                "a document"
            }
            "pem" | "crt" | "der" | "cer" | "p12" => "a key or a certificate",
            _ => match kind.matcher_type() {
                M::Image => "a picture",
                M::Archive => "an archive (compressed or bundled files)",
                M::Doc => "a document",
                M::Book => "an e-book",
                M::Audio => "a sound file",
                M::Video => "a video",
                M::Font => "a font",
                M::Text => "a text file",
                M::App => "a program for a computer",
                M::Custom => return None,
            },
        };
        return Some(format!(
            "this looks like {what} ({}, .{}), not firmware",
            kind.mime_type(),
            kind.extension()
        ));
    }
    if let Some(why) = text(bytes) {
        return Some(why);
    }
    let erased = bytes.iter().all(|&b| b == 0xFF);
    let zero = bytes.iter().all(|&b| b == 0);
    if erased || zero {
        return Some(format!(
            "every byte is {:#04x}: this is an empty flash dump, not firmware",
            bytes[0]
        ));
    }
    None
}

/// Firmware has many zero bytes and control bytes; text has none.
fn text(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(4096)];
    let printable = head
        .iter()
        .filter(|&&b| matches!(b, b'\t' | b'\n' | b'\r' | 0x20..=0x7E) || b >= 0x80)
        .count();
    let utf8 = match std::str::from_utf8(head) {
        Ok(_) => true,
        // A cut in the middle of a character at the 4 KiB mark is still text.
        Err(e) => e.error_len().is_none(),
    };
    if !utf8 || printable * 100 < head.len() * 97 {
        return None;
    }
    let first = String::from_utf8_lossy(head);
    let first = first.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let shown: String = first.chars().take(40).collect();
    let ellipsis = if first.chars().count() > 40 {
        "..."
    } else {
        ""
    };
    Some(format!(
        "this looks like a text file (it starts \"{shown}{ellipsis}\"), not firmware"
    ))
}
