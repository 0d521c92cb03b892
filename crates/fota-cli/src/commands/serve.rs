//! `fota serve`: the web app with its Content-Security-Policy.

use std::path::PathBuf;

use clap::Args;

use crate::serve;
use fota_host::Problem;

#[derive(Args)]
pub struct ServeArgs {
    /// The built web app.
    #[arg(default_value = "dist")]
    dir: PathBuf,
    /// Address to listen on (port 0: any free port, printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// Also let the page connect here (a WebSocket bridge on another computer, a
    /// firmware manifest's origin): a connect-src source like wss://bridge.example:9000.
    /// Repeatable.
    #[arg(long, value_name = "SOURCE")]
    connect_src: Vec<String>,
}

pub async fn run(args: &ServeArgs) -> Result<(), Problem> {
    let ServeArgs {
        dir,
        addr,
        connect_src,
    } = args;
    let opts = serve::ServeOptions {
        dir: dir.clone(),
        addr: *addr,
        connect_src: connect_src.clone(),
    };
    serve::run(opts).await.map_err(|e| Problem::new(e, ""))
}
