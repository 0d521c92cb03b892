//! The device's UART seen from both ends: the host's and the device's rates, the lines
//! between them (latency, faults) and bytes garbled where the two rates differ.

use super::SimDevice;
use super::rates::take_line;
use crate::line::Faults;

impl SimDevice {
    /// Bytes lost because the receive buffer was full.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// The device's UART rate now.
    pub fn device_baud(&self) -> u32 {
        self.device_baud
    }

    /// The host's UART rate now.
    pub fn host_baud(&self) -> u32 {
        self.host_baud
    }

    /// Set the host's UART rate (bytes between ends at different rates are garbled).
    pub fn set_host_baud(&mut self, baud: u32) {
        if baud != self.host_baud {
            let last = self.to_device.idle_at() + self.to_device.latency_ns();
            self.epochs_to_device.push_back((last, self.host_baud));
        }
        self.host_baud = baud;
        self.to_device.set_baud(baud);
    }

    pub(super) fn set_device_baud(&mut self, baud: u32) {
        if baud != self.device_baud {
            let last = self.to_host.idle_at() + self.to_host.latency_ns();
            self.epochs_to_host.push_back((last, self.device_baud));
        }
        self.device_baud = baud;
        self.to_host.set_baud(baud);
    }

    /// Whether bytes between ends at different rates arrive as noise (true, as on a
    /// UART), or intact (a pseudo-terminal or a WebSocket, where the host end has no
    /// rate and simply follows the agent's).
    pub fn set_garble_mismatch(&mut self, garble: bool) {
        self.garble_mismatch = garble;
    }

    /// Set the line latency.
    pub fn set_latency_ns(&mut self, ns: u64) {
        self.to_device.set_latency_ns(ns);
        self.to_host.set_latency_ns(ns);
    }

    /// Set the faults on both directions.
    pub fn set_faults(&mut self, to_device: Faults, to_host: Faults) {
        self.to_device.set_faults(to_device);
        self.to_host.set_faults(to_host);
    }

    /// The host sends bytes now.
    pub fn host_send(&mut self, bytes: &[u8]) {
        self.to_device.send(self.now, bytes);
    }

    /// Bytes that have reached the host by now.
    pub fn host_take(&mut self) -> Vec<u8> {
        take_line(
            &mut self.to_host,
            &mut self.epochs_to_host,
            self.device_baud,
            self.host_baud,
            self.now,
            self.garble_mismatch,
        )
    }

    /// Whether bytes for the host have arrived by now.
    pub fn host_has_data(&self) -> bool {
        self.to_host.next_arrival().is_some_and(|t| t <= self.now)
    }
}
