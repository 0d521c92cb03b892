//! `fota bridge`: a serial port exposed on a loopback WebSocket, for browsers without Web
//! Serial. Raw bytes both ways, one client at a time. The bridge follows the agent's
//! baud-rate switches by watching its replies.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use fota_protocol::{Event, FrameReader, Reply};

use crate::ws_access::Access;
use fota_host::Problem;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

fn device_gone(port: &str) -> Problem {
    Problem {
        message: format!("{port}: the device went away"),
        help: "Check the cable, then start the bridge again.".into(),
    }
}

/// Parse a listen address and refuse anything but loopback: the bridge gives full
/// control of a device to whoever connects.
pub fn loopback_addr(addr: &str) -> Result<SocketAddr, String> {
    let parsed: SocketAddr = addr
        .parse()
        .map_err(|_| format!("{addr} is not an address like 127.0.0.1:9000"))?;
    if !parsed.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address: use 127.0.0.1 or [::1] (anyone who can \
             reach the socket controls the device)"
        ));
    }
    Ok(parsed)
}

pub async fn run(
    port: &str,
    baud: u32,
    ws: &str,
    access: &crate::ws_access::AccessArgs,
) -> Result<(), Problem> {
    let plain = |message: String| Problem {
        message,
        help: String::new(),
    };
    let addr = loopback_addr(ws).map_err(plain)?;
    let access = Access::new(access).map_err(plain)?;
    let listener = TcpListener::bind(addr).await.map_err(|e| Problem {
        message: format!("cannot listen on {addr}: {e}"),
        help: "Choose another port: something else listens there.".into(),
    })?;
    // The same opening, errors and help as every other command.
    let serial = crate::connection::open_port(port, baud)?;
    let gone = |e: serialport::Error| crate::connection::open_error(port, &e);
    let mut writer = serial.try_clone().map_err(gone)?;
    let mut control = serial.try_clone().map_err(gone)?;
    let mut from_dev = crate::connection::spawn_reader(&*serial).map_err(gone)?;
    // Programs connect with this URL (the token in it); browsers need no token.
    println!("ws: {}", access.url(addr));
    let _ = std::io::stdout().flush();
    eprintln!("bridging {port} at {baud} baud to ws://{addr}");
    eprintln!("{}", access.describe());
    if let Some(warning) = access.warning() {
        eprintln!("{warning}");
    }
    let mut frames = Box::new(FrameReader::<4096>::new());
    loop {
        let (stream, peer) = listener
            .accept()
            .await
            .map_err(|e| plain(format!("accept failed: {e}")))?;
        let Some(ws) = access.accept(stream, peer).await else {
            continue;
        };
        eprintln!("client {peer} connected");
        let (mut sink, mut source) = ws.split();
        let mut current = baud;
        let mut switched_at: Option<(std::time::Instant, u32)> = None;
        loop {
            tokio::select! {
                msg = source.next() => match msg {
                    Some(Ok(Message::Binary(b))) => {
                        if writer.write_all(&b).is_err() {
                            return Err(device_gone(port));
                        }
                        let _ = writer.flush();
                    }
                    Some(Ok(Message::Text(t))) => {
                        let _ = writer.write_all(t.as_bytes());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                },
                bytes = from_dev.recv() => {
                    let Some(Ok(bytes)) = bytes else {
                        return Err(device_gone(port));
                    };
                    let mut rest = &bytes[..];
                    let mut switch = None;
                    while !rest.is_empty() {
                        let (used, ev) = frames.feed(rest);
                        if let Some(Event::Frame(f)) = ev {
                            match f.reply() {
                                Ok(Reply::BaudSet(b)) => switch = Some(b),
                                // The agent comes back from a reset at its base rate.
                                Ok(Reply::Restarting) => switch = Some(baud),
                                _ => {}
                            }
                            // A valid frame at the new rate: the switch held.
                            if switched_at.is_some() && switch.is_none() {
                                switched_at = None;
                            }
                        }
                        rest = &rest[used..];
                    }
                    if sink.send(Message::Binary(bytes.into())).await.is_err() {
                        break;
                    }
                    if let Some(b) = switch {
                        // The agent switches right after this reply: follow it.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        if control.set_baud_rate(b).is_ok() {
                            eprintln!("switched {port} to {b} baud");
                            switched_at = (b != baud).then(|| (std::time::Instant::now(), current));
                            current = b;
                        }
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(250)), if switched_at.is_some() => {
                    // The agent goes back to the old rate when no valid frame arrives at the
                    // new one within a second: follow it.
                    if let Some((at, old)) = switched_at
                        && at.elapsed() > Duration::from_millis(1100)
                    {
                        switched_at = None;
                        if control.set_baud_rate(old).is_ok() {
                            eprintln!("no frame at {current} baud: back to {old}");
                            current = old;
                        }
                    }
                }
            }
        }
        eprintln!("client {peer} left");
        frames.reset();
        let _ = control.set_baud_rate(baud);
    }
}
