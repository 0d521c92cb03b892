//! The transports of the command line: a serial port, or a WebSocket (`ws://`).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use fota_host::{LinkError, Problem, Transport};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Open `port`: a `ws://` URL or a serial device path.
pub async fn open(port: &str, baud: u32) -> Result<Connection, Problem> {
    if port.starts_with("ws://") || port.starts_with("wss://") {
        Ok(Connection::Ws(WsConnection::connect(port).await?))
    } else {
        Ok(Connection::Serial(SerialConnection::open(port, baud)?))
    }
}

/// One of the transports.
pub enum Connection {
    Serial(SerialConnection),
    Ws(WsConnection),
}

impl Transport for Connection {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        match self {
            Connection::Serial(l) => l.send(bytes),
            Connection::Ws(l) => l.send(bytes).await,
        }
    }

    async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        match self {
            Connection::Serial(l) => l.recv(buf, timeout).await,
            Connection::Ws(l) => l.recv(buf, timeout).await,
        }
    }

    fn now(&self) -> Duration {
        match self {
            Connection::Serial(l) => l.start.elapsed(),
            Connection::Ws(l) => l.start.elapsed(),
        }
    }

    async fn sleep(&mut self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    async fn set_baud(&mut self, baud: u32) -> Result<(), LinkError> {
        match self {
            Connection::Serial(l) => l.set_baud(baud),
            // The far end of a WebSocket (the bridge or the simulator) follows the
            // agent's SetBaud by itself.
            Connection::Ws(l) => {
                l.baud = baud;
                Ok(())
            }
        }
    }

    fn baud(&self) -> Option<u32> {
        match self {
            Connection::Serial(l) => Some(l.baud),
            Connection::Ws(l) => Some(l.baud),
        }
    }

    async fn reconnect(&mut self) -> Result<(), LinkError> {
        match self {
            Connection::Serial(l) => l.reconnect(),
            Connection::Ws(l) => l.reconnect().await,
        }
    }
}

/// Chunks from a reader task, handed out as `recv` asks for them.
struct Inbox {
    rx: mpsc::UnboundedReceiver<Result<Vec<u8>, String>>,
    held: Vec<u8>,
    at: usize,
}

impl Inbox {
    fn new(rx: mpsc::UnboundedReceiver<Result<Vec<u8>, String>>) -> Inbox {
        Inbox {
            rx,
            held: Vec::new(),
            at: 0,
        }
    }

    /// Bytes within `timeout` (`Ok(0)`: none came); `closed` names what ended when the
    /// reader task is gone.
    async fn recv(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
        closed: &str,
    ) -> Result<usize, LinkError> {
        if self.at >= self.held.len() {
            match tokio::time::timeout(timeout, self.rx.recv()).await {
                Err(_) => return Ok(0),
                Ok(None) => return Err(LinkError::Disconnected(closed.into())),
                Ok(Some(Err(e))) => return Err(LinkError::Disconnected(e)),
                Ok(Some(Ok(chunk))) => (self.held, self.at) = (chunk, 0),
            }
        }
        let rest = &self.held[self.at..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        Ok(n)
    }
}

/// A serial port, read by a thread that hands chunks to the async side.
pub struct SerialConnection {
    path: String,
    baud: u32,
    port: Box<dyn serialport::SerialPort>,
    inbox: Inbox,
    start: Instant,
    broken: bool,
}

pub(crate) fn open_error(path: &str, e: &serialport::Error) -> Problem {
    use serialport::ErrorKind;
    let (message, help) = match e.kind() {
        ErrorKind::NoDevice if e.description.contains("exclusive") => busy(path),
        ErrorKind::NoDevice | ErrorKind::Io(std::io::ErrorKind::NotFound) => (
            format!("{path}: no such serial port"),
            "Check the cable and the port name (ls /dev/ttyUSB* /dev/ttyACM* on Linux, \
             /dev/cu.* on macOS, COMn on Windows)."
                .to_string(),
        ),
        ErrorKind::Io(std::io::ErrorKind::PermissionDenied) => (
            format!("{path}: permission denied"),
            "On Linux add yourself to the dialout group (sudo usermod -aG dialout $USER), \
             then log out and in again."
                .to_string(),
        ),

        _ if e.description.contains("busy")
            || e.description.contains("Busy")
            || e.description.contains("exclusive") =>
        {
            busy(path)
        }
        _ => (
            format!("{path}: {e}"),
            "Check that the device is connected and no other program uses the port.".to_string(),
        ),
    };
    Problem { message, help }
}

fn busy(path: &str) -> (String, String) {
    (
        format!("{path}: the port is busy: another program has it open"),
        "Close the other program (a serial monitor, another fota, a browser tab using Web \
         Serial), then try again."
            .to_string(),
    )
}

/// Open a serial port for exclusive use, with reads that time out so a reader thread
/// can notice the other side went away.
pub(crate) fn open_port(path: &str, baud: u32) -> Result<Box<dyn serialport::SerialPort>, Problem> {
    serialport::new(path, baud)
        .timeout(Duration::from_millis(20))
        .open()
        .map_err(|e| open_error(path, &e))
}

impl SerialConnection {
    pub fn open(path: &str, baud: u32) -> Result<SerialConnection, Problem> {
        // serialport opens the port exclusively (TIOCEXCL and an exclusive flock), so a
        // second program gets a clear "busy" instead of a garbled transfer.
        let port = open_port(path, baud)?;
        let rx = spawn_reader(&*port).map_err(|e| open_error(path, &e))?;
        Ok(SerialConnection {
            path: path.to_string(),
            baud,
            port,
            inbox: Inbox::new(rx),
            start: Instant::now(),
            broken: false,
        })
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.port
            .write_all(bytes)
            .and_then(|()| self.port.flush())
            .map_err(|e| {
                self.broken = true;
                LinkError::Disconnected(e.to_string())
            })
    }

    async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        let got = self.inbox.recv(buf, timeout, "the port closed").await;
        self.broken |= got.is_err();
        got
    }

    fn set_baud(&mut self, baud: u32) -> Result<(), LinkError> {
        self.port
            .set_baud_rate(baud)
            .map_err(|e| LinkError::Io(e.to_string()))?;
        self.baud = baud;
        Ok(())
    }

    fn reconnect(&mut self) -> Result<(), LinkError> {
        if !self.broken {
            return Ok(());
        }
        // A USB device that restarted comes back under the same name: open it again.
        let port = serialport::new(&self.path, self.baud)
            .timeout(Duration::from_millis(20))
            .open()
            .map_err(|e| LinkError::Disconnected(e.to_string()))?;
        self.inbox =
            Inbox::new(spawn_reader(&*port).map_err(|e| LinkError::Disconnected(e.to_string()))?);
        self.port = port;
        self.broken = false;
        Ok(())
    }
}

pub(crate) fn spawn_reader(
    port: &dyn serialport::SerialPort,
) -> Result<mpsc::UnboundedReceiver<Result<Vec<u8>, String>>, serialport::Error> {
    let mut reader = port.try_clone()?;
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => {}
                Ok(n) => {
                    if tx.send(Ok(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    if tx.is_closed() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            }
        }
    });
    Ok(rx)
}

/// A WebSocket carrying raw bytes as binary messages (to `fota sim --ws` or `fota bridge`).
pub struct WsConnection {
    url: String,
    out: mpsc::UnboundedSender<Vec<u8>>,
    inbox: Inbox,
    start: Instant,
    baud: u32,
    broken: bool,
}

impl WsConnection {
    pub async fn connect(url: &str) -> Result<WsConnection, Problem> {
        let (out, rx) = ws_connect(url).await.map_err(|e| e.open_error(url))?;
        Ok(WsConnection {
            url: url.to_string(),
            out,
            inbox: Inbox::new(rx),
            start: Instant::now(),
            baud: fota_protocol::DEFAULT_BAUD,
            broken: false,
        })
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.out.send(bytes.to_vec()).map_err(|_| {
            self.broken = true;
            LinkError::Disconnected("the WebSocket closed".into())
        })
    }

    async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        let got = self.inbox.recv(buf, timeout, "the WebSocket closed").await;
        self.broken |= got.is_err();
        got
    }

    async fn reconnect(&mut self) -> Result<(), LinkError> {
        if !self.broken {
            return Ok(());
        }
        let (out, rx) = ws_connect(&self.url)
            .await
            .map_err(|e| LinkError::Disconnected(e.open_error(&self.url).message))?;
        self.out = out;
        self.inbox = Inbox::new(rx);
        self.broken = false;
        Ok(())
    }
}

type WsPair = (
    mpsc::UnboundedSender<Vec<u8>>,
    mpsc::UnboundedReceiver<Result<Vec<u8>, String>>,
);

/// Why a WebSocket did not open.
enum WsRefused {
    /// The server wants this run's token (HTTP 401).
    Token,
    /// The server refused our origin (HTTP 403).
    Origin,
    /// Anything else: nothing listens, not a WebSocket, ...
    Other(String),
}

impl WsRefused {
    fn open_error(&self, url: &str) -> Problem {
        let shown = redact_token(url);
        match self {
            WsRefused::Token => Problem {
                message: if url.contains("token=") {
                    format!("{shown}: the bridge refused the token")
                } else {
                    format!("{shown}: the bridge wants a token")
                },
                help: "Use the whole URL the bridge or simulator printed when it started \
                       (ws://127.0.0.1:PORT/?token=...): each run has a new token."
                    .into(),
            },
            WsRefused::Origin => Problem {
                message: format!("{shown}: the bridge refused this client's origin"),
                help: "Connect from a program that sends no Origin header, or start the \
                       bridge with --allow-origin for it."
                    .into(),
            },
            WsRefused::Other(e) => Problem {
                message: format!("{shown}: cannot connect: {e}"),
                help: "Start the other end first (fota sim --ws ADDR, or fota bridge --ws ADDR \
                       --port PORT) and check the address."
                    .into(),
            },
        }
    }
}

/// `url` with its token hidden, for messages that may end up in a log or a bug report.
pub fn redact_token(url: &str) -> String {
    fota_host::text::redact_token(url, "...")
}

async fn ws_connect(url: &str) -> Result<WsPair, WsRefused> {
    use tokio_tungstenite::tungstenite::Error;
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| match e {
            Error::Http(resp) if resp.status().as_u16() == 401 => WsRefused::Token,
            Error::Http(resp) if resp.status().as_u16() == 403 => WsRefused::Origin,
            e => WsRefused::Other(e.to_string()),
        })?;
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if sink.send(Message::Binary(bytes.into())).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    tokio::spawn(async move {
        while let Some(msg) = stream.next().await {
            let item = match msg {
                Ok(Message::Binary(b)) => Ok(b.to_vec()),
                Ok(Message::Text(t)) => Ok(t.as_bytes().to_vec()),
                Ok(Message::Close(_)) => break,
                Ok(_) => continue,
                Err(e) => Err(e.to_string()),
            };
            let stop = item.is_err();
            if in_tx.send(item).is_err() || stop {
                return;
            }
        }
    });
    Ok((out_tx, in_rx))
}

#[cfg(test)]
mod tests {
    use super::redact_token;

    #[test]
    fn messages_hide_the_token() {
        assert_eq!(
            redact_token("ws://127.0.0.1:9000/?token=0123abcd"),
            "ws://127.0.0.1:9000/?token=..."
        );
        assert_eq!(
            redact_token("ws://h:1/?token=abc&x=1"),
            "ws://h:1/?token=...&x=1"
        );
        assert_eq!(redact_token("ws://h:1"), "ws://h:1");
    }
}
