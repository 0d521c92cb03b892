//! `fota serve`: the web app (a `trunk build` output directory) over HTTP, with the
//! Content-Security-Policy and the other headers that lock the page down.
//!
//! Files are served as they are on disk; where a `.br` or `.gz` file sits next to one and
//! the browser accepts that encoding, the compressed file is sent instead.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;
use tower_http::services::ServeDir;

/// Where the web app may connect by default: its own origin (the wasm and the page's
/// files) and a WebSocket bridge on this computer (`fota bridge --ws`, `fota sim --ws`),
/// at any port. Hosts that use other bridges or manifest origins add them.
pub const DEFAULT_CONNECT_SRC: &str = "'self' ws://127.0.0.1:* ws://localhost:*";

/// The policy with `connect_src` as the connect-src directive's sources.
///
/// - scripts: the page's own files only, plus `'wasm-unsafe-eval'` to compile the
///   WebAssembly; no inline script, no `eval`;
/// - styles: the stylesheet only (the app sets its few computed sizes through the
///   CSSOM, which the policy allows, not through `style` attributes);
/// - images: the page's own files (the icon); the app's manifest (to install it) and its
///   service worker (the offline copy): the page's own files;
/// - nothing may frame the page, no `<base>`, no form posts, no plugins.
pub fn policy(connect_src: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self'; manifest-src 'self'; worker-src 'self'; \
         connect-src {connect_src}; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
}

/// The headers every response carries: the policy, and the usual hardening.
pub fn headers(connect_src: &str) -> Vec<(HeaderName, String)> {
    vec![
        (header::CONTENT_SECURITY_POLICY, policy(connect_src)),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".into()),
        (header::REFERRER_POLICY, "no-referrer".into()),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin".into(),
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin".into(),
        ),
        // Web Serial for this page only, never for a frame inside it.
        (
            HeaderName::from_static("permissions-policy"),
            "serial=(self)".into(),
        ),
        // Always revalidate: a new build is seen at the next load.
        (header::CACHE_CONTROL, "no-cache".into()),
    ]
}

/// A source for connect-src, as the user typed it: checked so that it cannot end the
/// directive or add another (no spaces, `;`, `,` or quotes).
pub fn check_source(source: &str) -> Result<&str, String> {
    let ok_chars = source
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._~:/*[]%".contains(c));
    let shaped = source.contains("://") || (source.ends_with(':') && source.len() > 1);
    if source.is_empty() || !ok_chars || !shaped {
        return Err(format!(
            "--connect-src {source}: not a source like wss://bridge.example:9000, \
             https://firmware.example.com or wss:"
        ));
    }
    Ok(source)
}

/// What `fota serve` serves.
pub struct ServeOptions {
    pub dir: PathBuf,
    pub addr: SocketAddr,
    pub connect_src: Vec<String>,
}

fn app(dir: &Path, connect_src: &str) -> Result<Router, String> {
    let mut fixed = Vec::new();
    for (name, value) in headers(connect_src) {
        let value = HeaderValue::from_str(&value).map_err(|e| format!("{name}: {e}"))?;
        fixed.push((name, value));
    }
    let files = ServeDir::new(dir).precompressed_br().precompressed_gzip();
    Ok(Router::new()
        .fallback_service(files)
        .layer(axum::middleware::map_response(
            move |mut response: Response| {
                let fixed = fixed.clone();
                async move {
                    for (name, value) in fixed {
                        response.headers_mut().insert(name, value);
                    }
                    response
                }
            },
        )))
}

pub async fn run(opts: ServeOptions) -> Result<(), String> {
    if !opts.dir.join("index.html").is_file() {
        return Err(format!(
            "no web app in {}: build it first (trunk build --release, or .ci/serve)",
            opts.dir.display()
        ));
    }
    let mut connect = DEFAULT_CONNECT_SRC.to_string();
    for s in &opts.connect_src {
        connect.push(' ');
        connect.push_str(check_source(s)?);
    }
    let router = app(&opts.dir, &connect)?;
    let listener = tokio::net::TcpListener::bind(opts.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", opts.addr))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {}: {e}", opts.addr))?;
    println!("web app: http://{addr}/");
    eprintln!("Content-Security-Policy: {}", policy(&connect));
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    axum::serve(listener, router)
        .await
        .map_err(|e| format!("serving {}: {e}", opts.dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_sources_cannot_escape_the_directive() {
        for ok in [
            "wss://bridge.example:9000",
            "https://fw.example.com/a",
            "wss:",
            "ws://127.0.0.1:*",
        ] {
            assert_eq!(check_source(ok), Ok(ok));
        }
        for bad in [
            "",
            "x",
            "wss://a; script-src *",
            "'unsafe-inline'",
            "a b",
            "https://a,b",
            ":",
        ] {
            assert!(check_source(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_policy_in_security_md_is_the_one_served() {
        let doc = include_str!("../../../docs/SECURITY.md");
        let served = policy(DEFAULT_CONNECT_SRC);
        assert!(
            doc.contains(&format!("Content-Security-Policy: {served}")),
            "docs/SECURITY.md must show the policy as served:\n{served}"
        );
    }
}
