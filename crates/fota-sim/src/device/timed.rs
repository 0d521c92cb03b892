//! The device's flash as the agent sees it: the model, its busy time reported to the
//! device's clock, and a background erase given the time that passes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};

use super::config::DeviceFlash;
use crate::flash::FlashError;

/// A [`SimFlash`](crate::flash::SimFlash) that reports its busy time to the device as each
/// operation ends, so that replies sent during a long erase (progress) leave at the right time.
#[derive(Debug)]
pub struct TimedFlash {
    pub(super) inner: DeviceFlash,
    pub(super) busy: Arc<AtomicU64>,
    /// CPU time per byte read while the agent hashes (`ChecksumSlot`): its MD5 of the
    /// bytes, charged as they are read. 0 otherwise.
    pub(super) hash_ns: Arc<AtomicU64>,
    /// Time that passed outside the flash's operations since the last one, which a
    /// background erase progresses by: given to the model before the next operation.
    pub(super) elapsed: Arc<AtomicU64>,
}

impl TimedFlash {
    /// Give a background erase the time that passed since the last operation.
    fn catch_up(&mut self) {
        let ns = self.elapsed.swap(0, Ordering::Relaxed);
        self.inner.advance(ns);
    }

    /// Wait for a background erase (a driver's start-up polls the part's BUSY: a reset
    /// of the MCU does not stop the part's erase).
    pub(super) fn settle(&mut self) {
        self.catch_up();
        let _ = self.inner.wait_erase();
        self.account();
    }

    fn account(&mut self) {
        let ns = self.inner.take_busy_ns();
        self.busy.fetch_add(ns, Ordering::Relaxed);
    }

    /// The flash model.
    pub fn sim(&self) -> &DeviceFlash {
        &self.inner
    }

    /// The flash model, to arm a power cut.
    pub fn sim_mut(&mut self) -> &mut DeviceFlash {
        &mut self.inner
    }
}

impl ErrorType for TimedFlash {
    type Error = FlashError;
}

impl ReadNorFlash for TimedFlash {
    const READ_SIZE: usize = DeviceFlash::READ_SIZE;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        self.catch_up();
        let r = self.inner.read(offset, bytes);
        self.account();
        let md5 = self.hash_ns.load(Ordering::Relaxed) * bytes.len() as u64;
        self.busy.fetch_add(md5, Ordering::Relaxed);
        r
    }
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
}

impl fota_agent::BackgroundErase for TimedFlash {
    fn start_erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        self.catch_up();
        let r = self.inner.start_erase(from, to);
        self.account();
        r
    }
    fn erase_running(&mut self) -> Result<bool, FlashError> {
        self.catch_up();
        self.inner.poll_erase()
    }
    fn suspend_erase(&mut self) -> Result<(), FlashError> {
        self.catch_up();
        let r = self.inner.suspend_erase();
        self.account();
        r
    }
    fn resume_erase(&mut self) -> Result<(), FlashError> {
        self.catch_up();
        self.inner.resume_erase()
    }
    fn wait_erase(&mut self) -> Result<(), FlashError> {
        self.catch_up();
        let r = self.inner.wait_erase();
        self.account();
        r
    }
}

impl NorFlash for TimedFlash {
    const WRITE_SIZE: usize = DeviceFlash::WRITE_SIZE;
    const ERASE_SIZE: usize = DeviceFlash::ERASE_SIZE;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        self.catch_up();
        let r = self.inner.erase(from, to);
        self.account();
        r
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        self.catch_up();
        let r = self.inner.write(offset, bytes);
        self.account();
        r
    }
}
