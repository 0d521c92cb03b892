//! The assembler: text in, a program image out (host side). The language is described in
//! `docs/BYTECODE.md`; one instruction or directive a line, `;` starts a comment.
//!
//! ```text
//! name "blink"
//! version "2"
//!         print "self-test"
//!         check ram 1024
//!         accept
//! again:  tick
//!         sleep 500
//!         jump again
//! ```

use std::collections::HashMap;
use std::fmt;

use crate::image;
use crate::insn::{Check, Insn, encode, printable};

/// A mistake in the source, with its line (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsmError {
    /// Line number, from 1 (0: the program as a whole).
    pub line: usize,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl fmt::Display for AsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for AsmError {}

/// An instruction whose label is resolved in the second pass.
enum Item {
    Fixed(Vec<u8>),
    /// Jump or loop to a label.
    Branch {
        line: usize,
        loop_: bool,
        label: String,
    },
}

/// Assemble `source` into a program image (header and code).
pub fn assemble(source: &str) -> Result<Vec<u8>, AsmError> {
    let mut name = None;
    let mut version = None;
    let mut labels: HashMap<String, u32> = HashMap::new();
    let mut items = Vec::new();
    let mut offset = 0u32;
    for (i, raw) in source.lines().enumerate() {
        let line = i + 1;
        let err = |message: String| AsmError { line, message };
        let mut rest = strip_comment(raw).trim();
        // Labels: `name:` before an instruction, or alone.
        while let Some((label, after)) = split_label(rest) {
            if labels.insert(label.to_string(), offset).is_some() {
                return Err(err(format!("label `{label}` is defined twice")));
            }
            rest = after.trim();
        }
        if rest.is_empty() {
            continue;
        }
        let (word, args) = match rest.split_once(char::is_whitespace) {
            Some((w, a)) => (w, a.trim()),
            None => (rest, ""),
        };
        let word = word.to_ascii_lowercase();
        let mut code = Vec::new();
        match word.as_str() {
            "name" | "version" => {
                let text = string_arg(args).map_err(err)?;
                let max = if word == "name" {
                    image::MAX_NAME
                } else {
                    image::MAX_VERSION
                };
                if text.len() > max {
                    return Err(err(format!("the {word} is longer than {max} bytes")));
                }
                let slot = if word == "name" {
                    &mut name
                } else {
                    &mut version
                };
                if slot.replace(text).is_some() {
                    return Err(err(format!("`{word}` is given twice")));
                }
                continue;
            }
            "print" => {
                let text = string_arg(args).map_err(err)?;
                if text.len() > 255 {
                    return Err(err("print text is longer than 255 bytes: split it".into()));
                }
                encode(&Insn::Print(text.as_bytes()), &mut code);
            }
            "tick" | "accept" | "hang" | "end" => {
                no_args(&word, args).map_err(err)?;
                let insn = match word.as_str() {
                    "tick" => Insn::Tick,
                    "accept" => Insn::Accept,
                    "hang" => Insn::Hang,
                    _ => Insn::End,
                };
                encode(&insn, &mut code);
            }
            "sleep" => encode(
                &Insn::Sleep(number(args, "sleep MS").map_err(err)?),
                &mut code,
            ),
            "count" => encode(
                &Insn::Count(number(args, "count N").map_err(err)?),
                &mut code,
            ),
            "fail" => {
                let code_arg = if args.is_empty() {
                    1
                } else {
                    number(args, "fail CODE").map_err(err)?
                };
                let code_byte = u8::try_from(code_arg)
                    .map_err(|_| err(format!("fail code {code_arg} is above 255")))?;
                encode(&Insn::Fail(code_byte), &mut code);
            }
            "check" => {
                let (what, arg) = match args.split_once(char::is_whitespace) {
                    Some((w, a)) => (w, a.trim()),
                    None => (args, ""),
                };
                let Some(check) = Check::ALL.into_iter().find(|c| c.name() == what) else {
                    let names: Vec<_> = Check::ALL.iter().map(|c| c.name()).collect();
                    return Err(err(format!(
                        "unknown check `{what}`: use one of {}",
                        names.join(", ")
                    )));
                };
                let arg = match (check, arg.is_empty()) {
                    (Check::Ram, true) => 1024,
                    (Check::Ram, false) => number(arg, "check ram BYTES").map_err(err)?,
                    (_, true) => 0,
                    (_, false) => {
                        return Err(err(format!("check {what} takes no argument")));
                    }
                };
                encode(&Insn::Check(check, arg), &mut code);
            }
            "jump" | "loop" => {
                let label = args;
                if !is_ident(label) {
                    return Err(err(format!("`{word}` needs a label, like `{word} again`")));
                }
                items.push(Item::Branch {
                    line,
                    loop_: word == "loop",
                    label: label.to_string(),
                });
                offset += 5;
                continue;
            }
            "data" => {
                let n = number(args, "data BYTES").map_err(err)?;
                encode(&Insn::Data(n), &mut code);
                code.extend(filler(offset, n));
            }
            other => {
                return Err(err(format!(
                    "unknown instruction `{other}` (print, tick, sleep, check, accept, fail, \
                     hang, jump, count, loop, end, data, name, version)"
                )));
            }
        }
        offset = u32::try_from(code.len())
            .ok()
            .and_then(|n| offset.checked_add(n))
            .ok_or_else(|| err("the program is larger than 4 GiB".into()))?;
        items.push(Item::Fixed(code));
    }
    let mut code = Vec::with_capacity(offset as usize);
    for item in items {
        match item {
            Item::Fixed(bytes) => code.extend_from_slice(&bytes),
            Item::Branch { line, loop_, label } => {
                let Some(&target) = labels.get(&label) else {
                    return Err(AsmError {
                        line,
                        message: format!("label `{label}` is not defined"),
                    });
                };
                if target >= offset {
                    return Err(AsmError {
                        line,
                        message: format!("label `{label}` is at the end: nothing to run there"),
                    });
                }
                let insn = if loop_ {
                    Insn::Loop(target)
                } else {
                    Insn::Jump(target)
                };
                encode(&insn, &mut code);
            }
        }
    }
    if code.is_empty() {
        return Err(AsmError {
            line: 0,
            message: "the program has no instructions".into(),
        });
    }
    image::build(
        name.as_deref().unwrap_or("app"),
        version.as_deref().unwrap_or(""),
        &code,
    )
    .map_err(|message| AsmError { line: 0, message })
}

/// Bytes for `data`: a fixed pseudo-random sequence (xorshift, seeded by the offset), so
/// a program's size is realistic and its image does not compress to nothing.
fn filler(offset: u32, n: u32) -> impl Iterator<Item = u8> {
    let mut x = u64::from(offset) ^ 0x9E37_79B9_7F4A_7C15;
    (0..n).map(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 24) as u8
    })
}

fn strip_comment(line: &str) -> &str {
    // A `;` inside a string is text.
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            '\\' if in_str && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => in_str = !in_str,
            ';' if !in_str => return &line[..i],
            _ => {}
        }
        escaped = false;
    }
    line
}

fn split_label(s: &str) -> Option<(&str, &str)> {
    let (head, tail) = s.split_once(':')?;
    is_ident(head.trim_end()).then_some((head.trim_end(), tail))
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn no_args(word: &str, args: &str) -> Result<(), String> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(format!("`{word}` takes no argument"))
    }
}

fn number(s: &str, usage: &str) -> Result<u32, String> {
    let parsed = if let Some(hex) = s.strip_prefix("0x") {
        u32::from_str_radix(&hex.replace('_', ""), 16)
    } else {
        s.replace('_', "").parse()
    };
    parsed.map_err(|_| format!("`{s}` is not a number from 0 to 4294967295 (usage: {usage})"))
}

/// A double-quoted string: printable ASCII, `\"` and `\\` escapes.
fn string_arg(s: &str) -> Result<String, String> {
    let inner = s
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(|| format!("expected text in double quotes, found `{s}`"))?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        let c = if c == '\\' {
            match chars.next() {
                Some(e @ ('"' | '\\')) => e,
                _ => return Err("only \\\" and \\\\ escapes are allowed in text".into()),
            }
        } else if c == '"' {
            return Err("a quote inside text must be written \\\"".into());
        } else {
            c
        };
        if !u8::try_from(c).is_ok_and(printable) {
            return Err(format!(
                "text may hold printable ASCII only (the device prints it on the update \
                 link): {c:?}"
            ));
        }
        out.push(c);
    }
    Ok(out)
}
