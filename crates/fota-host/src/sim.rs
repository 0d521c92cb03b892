//! A [`Transport`] to an in-process [`SimDevice`]: in virtual time for tests and the
//! benchmark (time jumps to the next event), or paced to real time for the browser demo.

use core::time::Duration;

use fota_sim::device::SimDevice;

use crate::{LinkError, Transport};

/// How simulated time relates to real time.
#[allow(async_fn_in_trait)]
pub trait Pacer {
    /// Real time elapsed since some fixed instant.
    fn wall(&self) -> Duration;
    /// Wait in real time.
    async fn sleep(&self, d: Duration);
    /// Whether simulated time jumps ahead (true) or follows [`Pacer::wall`].
    fn is_virtual(&self) -> bool {
        false
    }
}

/// Virtual time: never waits, time jumps to the next event.
#[derive(Debug, Default, Clone, Copy)]
pub struct Virtual;

impl Pacer for Virtual {
    fn wall(&self) -> Duration {
        Duration::ZERO
    }
    async fn sleep(&self, _d: Duration) {}
    fn is_virtual(&self) -> bool {
        true
    }
}

/// The host end of a simulated device's serial line.
pub struct SimTransport<P: Pacer = Virtual> {
    device: SimDevice,
    pacer: P,
    /// Simulated time at wall time zero (real-time pacing).
    offset: u64,
    connected: bool,
    held: Vec<u8>,
}

impl<P: Pacer> SimTransport<P> {
    /// A transport to `device`.
    pub fn new(device: SimDevice, pacer: P) -> Self {
        let offset = device.now();
        SimTransport {
            device,
            pacer,
            offset,
            connected: true,
            held: Vec::new(),
        }
    }

    /// The device.
    pub fn device(&self) -> &SimDevice {
        &self.device
    }

    /// The device, to inject faults or cut power.
    pub fn device_mut(&mut self) -> &mut SimDevice {
        &mut self.device
    }

    /// Give the device back.
    pub fn into_device(self) -> SimDevice {
        self.device
    }

    /// Pull the cable: every call fails until [`Transport::reconnect`].
    pub fn disconnect(&mut self) {
        self.connected = false;
    }

    fn check(&self) -> Result<(), LinkError> {
        if self.connected {
            Ok(())
        } else {
            Err(LinkError::Disconnected(
                "the simulated cable is unplugged".into(),
            ))
        }
    }

    fn wall_ns(&self) -> u64 {
        self.offset + u64::try_from(self.pacer.wall().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl<P: Pacer> Transport for SimTransport<P> {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.check()?;
        if !self.pacer.is_virtual() {
            let t = self.wall_ns();
            self.device.run_until(t, false);
        }
        self.device.host_send(bytes);
        Ok(())
    }

    async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        self.check()?;
        if !self.held.is_empty() {
            let n = self.held.len().min(buf.len());
            buf[..n].copy_from_slice(&self.held[..n]);
            self.held.drain(..n);
            return Ok(n);
        }
        let timeout_ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        if self.pacer.is_virtual() {
            let until = self.device.now().saturating_add(timeout_ns);
            self.device.run_until(until, true);
        } else {
            let until = self.wall_ns().saturating_add(timeout_ns);
            loop {
                let now = self.wall_ns();
                self.device.run_until(now.min(until), true);
                if self.device.host_has_data() || now >= until {
                    break;
                }
                // Sleep until the next event or a few milliseconds, whichever is first.
                let next = self.device.next_event().unwrap_or(until).min(until);
                let wait = next.saturating_sub(now).clamp(1_000_000, 8_000_000);
                self.pacer.sleep(Duration::from_nanos(wait)).await;
            }
        }
        let bytes = self.device.host_take();
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        self.held.extend_from_slice(&bytes[n..]);
        Ok(n)
    }

    fn now(&self) -> Duration {
        Duration::from_nanos(self.device.now())
    }

    async fn sleep(&mut self, d: Duration) {
        let d_ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        if self.pacer.is_virtual() {
            let until = self.device.now().saturating_add(d_ns);
            self.device.run_until(until, false);
        } else {
            self.pacer.sleep(d).await;
            let t = self.wall_ns();
            self.device.run_until(t, false);
        }
    }

    async fn set_baud(&mut self, baud: u32) -> Result<(), LinkError> {
        self.check()?;
        self.device.set_host_baud(baud);
        Ok(())
    }

    fn baud(&self) -> Option<u32> {
        Some(self.device.host_baud())
    }

    async fn reconnect(&mut self) -> Result<(), LinkError> {
        self.connected = true;
        Ok(())
    }
}
