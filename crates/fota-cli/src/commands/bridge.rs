//! `fota bridge`: a serial port exposed to a browser on a loopback WebSocket.

use clap::Args;

use super::Global;
use crate::{bridge, ws_access};
use fota_host::Problem;

#[derive(Args)]
pub struct BridgeArgs {
    /// Address to listen on, e.g. 127.0.0.1:9000.
    #[arg(long)]
    ws: String,
    #[command(flatten)]
    access: ws_access::AccessArgs,
}

pub async fn run(args: &BridgeArgs, global: &Global) -> Result<(), Problem> {
    let BridgeArgs { ws, access } = args;
    let port = super::port(global)?;
    bridge::run(&port, global.baud, ws, access).await
}
