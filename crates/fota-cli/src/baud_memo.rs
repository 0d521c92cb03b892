//! The baud rate the last session negotiated on each port, remembered between runs: a
//! device whose host went away without saying goodbye (killed, or its cable pulled)
//! stays at that rate until its idle time runs out, so the next run tries it when the
//! base rate gets no answer.
//!
//! One line a port, `PORT<TAB>RATE`, in `$FOTA_STATE_DIR/baud` (else
//! `$XDG_STATE_HOME/fota/baud`, else `~/.local/state/fota/baud`). Best effort: a file
//! that cannot be read or written changes nothing but the first try.

use std::path::PathBuf;

pub struct Memo {
    path: Option<PathBuf>,
}

impl Memo {
    pub fn open() -> Memo {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let dir = env("FOTA_STATE_DIR")
            .or_else(|| env("XDG_STATE_HOME").map(|d| d.join("fota")))
            .or_else(|| env("HOME").map(|h| h.join(".local/state/fota")));
        Memo {
            path: dir.map(|d| d.join("baud")),
        }
    }

    fn lines(&self) -> Vec<(String, u32)> {
        let Some(text) = self
            .path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
        else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|l| {
                let (port, rate) = l.rsplit_once('\t')?;
                Some((port.to_string(), rate.trim().parse().ok()?))
            })
            .collect()
    }

    /// The rate last negotiated on `port`.
    pub fn get(&self, port: &str) -> Option<u32> {
        self.lines()
            .into_iter()
            .find(|(p, _)| p == port)
            .map(|(_, r)| r)
    }

    /// Remember `rate` for `port`.
    pub fn set(&self, port: &str, rate: u32) {
        let Some(path) = &self.path else { return };
        let mut lines: Vec<(String, u32)> = self
            .lines()
            .into_iter()
            .filter(|(p, _)| p != port)
            .collect();
        lines.push((port.to_string(), rate));
        let text: String = lines.iter().map(|(p, r)| format!("{p}\t{r}\n")).collect();
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(path, text);
    }
}
