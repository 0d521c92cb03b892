use crate::LinkError;
use core::time::Duration;

/// A byte pipe to a device: a serial port, a WebSocket, Web Serial, a simulator.
///
/// The transport also owns time: [`Transport::now`] is the clock progress and timeouts
/// are measured with, so a simulated link can run in virtual time.
#[allow(async_fn_in_trait)] // Futures need not be Send: the browser is single-threaded.
pub trait Transport {
    /// Send all of `bytes`.
    async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError>;

    /// Wait up to `timeout` for bytes; `Ok(0)` means none came in time.
    async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError>;

    /// Monotonic time since some fixed instant.
    fn now(&self) -> Duration;

    /// Wait `d` by this link's clock, reading nothing (between two reconnect tries, when
    /// the link is down and `recv` would fail at once).
    async fn sleep(&mut self, d: Duration);

    /// Switch the line to another baud rate. Links without one ignore it.
    async fn set_baud(&mut self, baud: u32) -> Result<(), LinkError> {
        let _ = baud;
        Ok(())
    }

    /// The line's baud rate, if it has one (used to size timeouts).
    fn baud(&self) -> Option<u32> {
        None
    }

    /// Open the link again after the device restarted (a USB port may re-enumerate).
    async fn reconnect(&mut self) -> Result<(), LinkError> {
        Ok(())
    }
}
