//! Who may open the WebSocket of `fota sim --ws` and `fota bridge --ws`.
//!
//! Browsers let any page open a WebSocket to 127.0.0.1, and they always send the page's
//! origin in `Origin`; no page can leave it out or forge it. So:
//!
//! - a request with an `Origin` must come from an allowed origin: the web app as
//!   `.ci/serve` serves it ([`DEFAULT_ORIGINS`]), plus each `--allow-origin`;
//! - a request without one comes from a program (the `fota` CLI, a script), and must
//!   carry the random token of this run, printed with the address
//!   (`ws://127.0.0.1:9000/?token=...`), unless the server runs with `--no-token`.
//!
//! Anything else gets an HTTP error before the WebSocket opens (403 for an origin, 401
//! for a token) and a line on stderr that says what was refused and how to allow it.

use std::net::SocketAddr;
use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{StatusCode, Uri};

/// The web app's own origins as `.ci/serve` (`fota serve`) serves it.
pub const DEFAULT_ORIGINS: [&str; 2] = ["http://127.0.0.1:8080", "http://localhost:8080"];

/// A client that opened a TCP connection has this long to finish its handshake, so a
/// silent one cannot keep the single-client server from accepting anyone else.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The access flags of `fota sim` and `fota bridge`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AccessArgs {
    /// Also accept browser pages from this origin (scheme://host[:port], as the browser's
    /// address bar shows it), for a copy of the web app hosted elsewhere. Repeatable.
    /// The web app on http://127.0.0.1:8080 and http://localhost:8080 is always accepted.
    #[arg(long = "allow-origin", value_name = "URL")]
    pub allow_origin: Vec<String>,
    /// Accept programs (clients that send no Origin) without the token. Any program run by
    /// any user of this computer can then control the device.
    #[arg(long)]
    pub no_token: bool,
}

/// The access rules of one run: the allowed origins and the token.
#[derive(Debug, Clone)]
pub struct Access {
    origins: Vec<String>,
    token: Option<String>,
}

/// Why a handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A browser page from an origin that is not allowed.
    Origin(String),
    /// A program that gave no token.
    NoToken,
    /// A program that gave a token that is not this run's.
    WrongToken,
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::Origin(_) => StatusCode::FORBIDDEN,
            Refusal::NoToken | Refusal::WrongToken => StatusCode::UNAUTHORIZED,
        }
    }

    /// The line logged on the server's stderr.
    pub fn log_line(&self, peer: SocketAddr) -> String {
        match self {
            Refusal::Origin(origin) => format!(
                "refused a WebSocket from {peer}: a page from {origin} is not an allowed \
                 origin. To let a web app served there control the device, start again with \
                 --allow-origin {origin}"
            ),
            Refusal::NoToken => format!(
                "refused a WebSocket from {peer}: no token. Programs connect with the URL \
                 printed at start (ws://.../?token=...)"
            ),
            Refusal::WrongToken => format!(
                "refused a WebSocket from {peer}: wrong token (from an earlier run?). Use the \
                 URL printed at start (ws://.../?token=...)"
            ),
        }
    }

    /// The body of the HTTP error, for the client.
    fn body(&self) -> String {
        match self {
            Refusal::Origin(origin) => format!(
                "origin {origin} is not allowed: start fota bridge (or fota sim) with \
                 --allow-origin {origin} to allow it\n"
            ),
            Refusal::NoToken => "a token is needed: use the URL fota bridge (or fota sim) printed \
                 (ws://.../?token=...)\n"
                .into(),
            Refusal::WrongToken => "wrong token: use the URL fota bridge (or fota sim) printed \
                 (ws://.../?token=...)\n"
                .into(),
        }
    }
}

/// `url` as an origin the way browsers send it (`scheme://host[:port]`, lowercase, no
/// default port), or why it is not one.
pub fn normalize_origin(url: &str) -> Result<String, String> {
    let bad = |why: &str| {
        Err(format!(
            "--allow-origin {url}: {why}; write it as the browser shows it, like \
             https://fota.example.com or http://127.0.0.1:8081"
        ))
    };
    let Ok(uri) = url.trim().parse::<Uri>() else {
        return bad("not a URL");
    };
    let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http") => "http",
        Some("https") => "https",
        _ => return bad("an origin starts with http:// or https://"),
    };
    let Some(authority) = uri.authority() else {
        return bad("no host");
    };
    if authority.as_str().contains('@') {
        return bad("an origin has no user name");
    }
    if (uri.path() != "/" && !uri.path().is_empty()) || uri.query().is_some() {
        return bad("an origin has no path");
    }
    let host = authority.host().to_ascii_lowercase();
    if host.is_empty() {
        return bad("no host");
    }
    let default_port = if scheme == "http" { 80 } else { 443 };
    Ok(match authority.port_u16() {
        Some(p) if p != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// A fresh random token: 128 bits from the operating system, as hex.
fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random numbers for the token: {e}"))?;
    Ok(fota_host::hex(&bytes))
}

impl Access {
    /// The rules `args` ask for, with a fresh token unless `--no-token`.
    pub fn new(args: &AccessArgs) -> Result<Access, String> {
        let mut origins: Vec<String> = DEFAULT_ORIGINS.iter().map(|o| o.to_string()).collect();
        for url in &args.allow_origin {
            let origin = normalize_origin(url)?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        let token = if args.no_token {
            None
        } else {
            Some(new_token()?)
        };
        Ok(Access { origins, token })
    }

    /// The URL programs connect to, with the token.
    pub fn url(&self, addr: SocketAddr) -> String {
        match &self.token {
            Some(token) => format!("ws://{addr}/?token={token}"),
            None => format!("ws://{addr}"),
        }
    }

    /// A line to print at start: which pages may connect.
    pub fn describe(&self) -> String {
        format!(
            "web pages allowed from: {} (--allow-origin URL for more)",
            self.origins.join(", ")
        )
    }

    /// A warning for stderr when programs need no token.
    pub fn warning(&self) -> Option<&'static str> {
        self.token
            .is_none()
            .then_some("warning: --no-token: any program on this computer can control the device")
    }

    /// Whether the handshake `req` may open the WebSocket.
    pub fn check(&self, req: &Request) -> Result<(), Refusal> {
        if let Some(origin) = req.headers().get("origin") {
            // A browser: the page's origin decides (a token in the URL changes nothing).
            let origin = String::from_utf8_lossy(origin.as_bytes()).to_ascii_lowercase();
            return if self.origins.contains(&origin) {
                Ok(())
            } else {
                // Bounded and printable: it goes to a terminal.
                let shown: String = origin
                    .chars()
                    .take(200)
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect();
                Err(Refusal::Origin(shown))
            };
        }
        let Some(expected) = &self.token else {
            return Ok(());
        };
        let given = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix("token="));
        match given {
            None => Err(Refusal::NoToken),
            // Constant time: how long the comparison takes says nothing about the token.
            Some(t) if bool::from(t.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
            Some(_) => Err(Refusal::WrongToken),
        }
    }

    /// The WebSocket handshake on `stream`, refused (with an HTTP error and a log line)
    /// unless [`Access::check`] allows it. `None` when it did not open.
    pub async fn accept(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Option<WebSocketStream<TcpStream>> {
        // The callback's error type is tungstenite's, large or not.
        #[allow(clippy::result_large_err)]
        let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            match self.check(req) {
                Ok(()) => Ok(resp),
                Err(refusal) => {
                    eprintln!("{}", refusal.log_line(peer));
                    let mut error = ErrorResponse::new(Some(refusal.body()));
                    *error.status_mut() = refusal.status();
                    Err(error)
                }
            }
        };
        match tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            tokio_tungstenite::accept_hdr_async(stream, callback),
        )
        .await
        {
            Ok(Ok(ws)) => Some(ws),
            Ok(Err(_)) | Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(origin: Option<&str>, path: &str) -> Request {
        let mut b = Request::builder().uri(path);
        if let Some(o) = origin {
            b = b.header("Origin", o);
        }
        b.body(()).expect("request")
    }

    fn access(extra: &[&str], no_token: bool) -> Access {
        Access::new(&AccessArgs {
            allow_origin: extra.iter().map(|s| s.to_string()).collect(),
            no_token,
        })
        .expect("access")
    }

    #[test]
    fn origins_are_normalized_as_browsers_send_them() {
        assert_eq!(
            normalize_origin("HTTPS://Fota.Example.com:443/").as_deref(),
            Ok("https://fota.example.com")
        );
        assert_eq!(
            normalize_origin("http://127.0.0.1:8081").as_deref(),
            Ok("http://127.0.0.1:8081")
        );
        assert_eq!(
            normalize_origin("http://[::1]:8080").as_deref(),
            Ok("http://[::1]:8080")
        );
        for bad in [
            "fota.example.com",
            "ftp://x",
            "https://x/app/",
            "https://u@x",
            "*",
        ] {
            assert!(normalize_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_web_app_origins_and_the_token_open_the_socket() {
        let a = access(&["https://fota.example.com"], false);
        for o in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "https://fota.example.com",
        ] {
            assert_eq!(a.check(&request(Some(o), "/")), Ok(()), "{o}");
        }
        let token = a.token.clone().expect("a token");
        assert_eq!(token.len(), 32);
        assert_eq!(a.check(&request(None, &format!("/?token={token}"))), Ok(()));
        assert_eq!(
            a.check(&request(None, &format!("/?x=1&token={token}"))),
            Ok(())
        );
    }

    #[test]
    fn foreign_origins_missing_and_wrong_tokens_are_refused() {
        let a = access(&[], false);
        let token = a.token.clone().expect("a token");
        for o in [
            "https://evil.example",
            "http://127.0.0.1:8081",
            "null",
            "http://localhost:8080.evil.example",
        ] {
            // A token does not make a foreign page acceptable.
            let r = a.check(&request(Some(o), &format!("/?token={token}")));
            assert_eq!(r, Err(Refusal::Origin(o.to_string())), "{o}");
        }
        assert_eq!(a.check(&request(None, "/")), Err(Refusal::NoToken));
        assert_eq!(
            a.check(&request(None, "/?token=")),
            Err(Refusal::WrongToken)
        );
        let mut wrong = token.clone();
        wrong.replace_range(31..32, if token.ends_with('0') { "1" } else { "0" });
        assert_eq!(
            a.check(&request(None, &format!("/?token={wrong}"))),
            Err(Refusal::WrongToken)
        );
    }

    #[test]
    fn two_runs_have_different_tokens_and_no_token_opens_to_programs() {
        assert_ne!(access(&[], false).token, access(&[], false).token);
        let open = access(&[], true);
        assert_eq!(open.check(&request(None, "/")), Ok(()));
        assert_eq!(
            open.url("127.0.0.1:9000".parse().expect("addr")),
            "ws://127.0.0.1:9000"
        );
        assert!(open.warning().is_some());
        assert!(access(&[], false).warning().is_none());
        // Still no foreign pages.
        assert!(
            open.check(&request(Some("https://evil.example"), "/"))
                .is_err()
        );
    }

    #[test]
    fn the_refusal_says_which_origin_and_which_flag() {
        let line = Refusal::Origin("https://evil.example".into())
            .log_line("127.0.0.1:5000".parse().expect("addr"));
        assert!(line.contains("https://evil.example"), "{line}");
        assert!(
            line.contains("--allow-origin https://evil.example"),
            "{line}"
        );
    }
}
