//! What went wrong, said for a person: the one error type the user interfaces show (the
//! `fota` command line prints it as `error:` and `help:` lines, the web app as a box).
//! Every failure a user sees becomes one, whatever raised it: a [`HostError`] (with its
//! [`help`](HostError::help)), a port or a WebSocket that would not open, a bad file.

use crate::error::HostError;

/// Something went wrong: what happened, and what to do about it.
///
/// `Display` writes the message; the alternate form (`{:#}`) adds the help on a line of
/// its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What happened.
    pub message: String,
    /// What the user should do (empty when there is nothing to do).
    pub help: String,
}

impl Problem {
    /// A problem and its help.
    pub fn new(message: impl Into<String>, help: impl Into<String>) -> Problem {
        Problem {
            message: message.into(),
            help: help.into(),
        }
    }

    /// The message as a page shows it: a capital first letter and a full stop.
    pub fn sentence(mut self) -> Problem {
        if let Some(first) = self.message.get(..1) {
            self.message = first.to_ascii_uppercase() + &self.message[1..];
        }
        if !self.message.ends_with('.') {
            self.message.push('.');
        }
        self
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if f.alternate() && !self.help.is_empty() {
            write!(f, "\nhelp: {}", self.help)?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl From<&HostError> for Problem {
    fn from(e: &HostError) -> Problem {
        Problem::new(e.to_string(), e.help())
    }
}

impl From<HostError> for Problem {
    fn from(e: HostError) -> Problem {
        Problem::from(&e)
    }
}

/// A firmware file that cannot be read or placed (`fota image`, the page's file picker).
impl From<fota_image::host::Error> for Problem {
    fn from(e: fota_image::host::Error) -> Problem {
        Problem::new(e.to_string(), e.help())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_error_brings_its_help() {
        let p = Problem::from(HostError::Unsupported);
        assert_eq!(p.message, HostError::Unsupported.to_string());
        assert_eq!(p.help, HostError::Unsupported.help());
        assert!(!p.help.is_empty());
    }

    #[test]
    fn display_is_the_message_and_the_alternate_form_adds_the_help() {
        let p = Problem::new("the port is busy", "Close the other program.");
        assert_eq!(p.to_string(), "the port is busy");
        assert_eq!(
            format!("{p:#}"),
            "the port is busy\nhelp: Close the other program."
        );
        assert_eq!(format!("{:#}", Problem::new("done", "")), "done");
    }

    #[test]
    fn a_sentence_starts_with_a_capital_and_ends_with_a_full_stop() {
        assert_eq!(
            Problem::new("no answer", "").sentence().message,
            "No answer."
        );
        assert_eq!(Problem::new("Already.", "").sentence().message, "Already.");
        assert_eq!(Problem::new("", "").sentence().message, ".");
    }
}
