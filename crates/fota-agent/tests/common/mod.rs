//! A RAM NorFlash as strict as real NOR flash, and the layouts the tests use.
#![allow(dead_code)]

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use fota_agent::{Agent, AgentConfig, Boot};
use fota_protocol::Layout as _;

pub const BASE: u32 = 0x0800_0000;
pub const SECTOR: u32 = 4096;
/// 4 sectors per VM slot and per bytecode slot.
pub const SLOT: u32 = 4 * SECTOR;
pub const CAPACITY: usize = 128 * 1024;

/// A RAM flash: erase by whole `E`-byte sectors to 0xFF, program `W`-byte units only
/// onto erased bytes, read in `R`-byte units. Anything else is an error, as on a chip
/// that would otherwise corrupt itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RamFlash<const W: usize = 4, const E: usize = 4096, const R: usize = 1> {
    pub data: Vec<u8>,
    pub erases: usize,
    pub writes: usize,
    /// Fail every write and erase once this many more have been done.
    pub fail_after: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RamError {
    Align,
    Bounds,
    NotErased,
    Injected,
}

impl NorFlashError for RamError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            RamError::Align => NorFlashErrorKind::NotAligned,
            RamError::Bounds => NorFlashErrorKind::OutOfBounds,
            RamError::NotErased | RamError::Injected => NorFlashErrorKind::Other,
        }
    }
}

impl<const W: usize, const E: usize, const R: usize> RamFlash<W, E, R> {
    pub fn new(capacity: usize) -> Self {
        RamFlash {
            data: vec![0xFF; capacity],
            erases: 0,
            writes: 0,
            fail_after: None,
        }
    }

    /// Bytes at an absolute address (tests speak addresses, the flash offsets).
    pub fn at(&self, addr: u32, len: usize) -> &[u8] {
        let off = (addr - BASE) as usize;
        &self.data[off..off + len]
    }

    /// Put bytes at an absolute address behind the agent's back (no erase rules).
    pub fn poke(&mut self, addr: u32, bytes: &[u8]) {
        let off = (addr - BASE) as usize;
        self.data[off..off + bytes.len()].copy_from_slice(bytes);
    }

    fn spend(&mut self) -> Result<(), RamError> {
        match &mut self.fail_after {
            Some(0) => Err(RamError::Injected),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl<const W: usize, const E: usize, const R: usize> ErrorType for RamFlash<W, E, R> {
    type Error = RamError;
}

impl<const W: usize, const E: usize, const R: usize> ReadNorFlash for RamFlash<W, E, R> {
    const READ_SIZE: usize = R;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), RamError> {
        let off = offset as usize;
        if !off.is_multiple_of(R) || !bytes.len().is_multiple_of(R) {
            return Err(RamError::Align);
        }
        let src = self
            .data
            .get(off..off + bytes.len())
            .ok_or(RamError::Bounds)?;
        bytes.copy_from_slice(src);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl<const W: usize, const E: usize, const R: usize> NorFlash for RamFlash<W, E, R> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = E;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), RamError> {
        let (from, to) = (from as usize, to as usize);
        if !from.is_multiple_of(E) || !to.is_multiple_of(E) || from > to {
            return Err(RamError::Align);
        }
        if to > self.data.len() {
            return Err(RamError::Bounds);
        }
        self.spend()?;
        self.data[from..to].fill(0xFF);
        self.erases += (to - from) / E;
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), RamError> {
        let off = offset as usize;
        if !off.is_multiple_of(W) || !bytes.len().is_multiple_of(W) {
            return Err(RamError::Align);
        }
        let dst = self
            .data
            .get(off..off + bytes.len())
            .ok_or(RamError::Bounds)?;
        if dst.iter().any(|&b| b != 0xFF) {
            return Err(RamError::NotErased);
        }
        self.spend()?;
        self.data[off..off + bytes.len()].copy_from_slice(bytes);
        self.writes += 1;
        Ok(())
    }
}

pub type Flash = RamFlash<4, 4096, 1>;

/// `VM | BC0 | BC1 | record`. Slot contents are not checked (these tests are about the
/// record; tests/images.rs checks images).
pub fn bc_only() -> AgentConfig {
    unchecked(AgentConfig::bytecode_only(BASE, SLOT, SLOT, SECTOR))
}

/// `VM0 | BC0 | VM1 | BC1 | record`, slot contents not checked.
pub fn vm_and_bc() -> AgentConfig {
    unchecked(AgentConfig::vm_and_bytecode(BASE, SLOT, SLOT, SECTOR))
}

/// `config` without image checks.
pub fn unchecked(mut config: AgentConfig) -> AgentConfig {
    config.images = fota_agent::ImagePolicy::NONE;
    config
}

/// Both layouts, named for assertion messages.
pub fn layouts() -> [(&'static str, AgentConfig); 2] {
    [("bytecode-only", bc_only()), ("vm+bytecode", vm_and_bc())]
}

pub fn blank() -> Flash {
    Flash::new(CAPACITY)
}

/// Boot on `flash`, which must succeed.
pub fn boot<F: NorFlash + core::fmt::Debug>(flash: F, config: &AgentConfig) -> (Agent<F>, Boot) {
    match Agent::boot(flash, config.clone()) {
        Ok(x) => x,
        Err(e) => panic!("boot failed: {e:?}"),
    }
}

/// Reset: boot again on the same flash.
pub fn restart<F: NorFlash + core::fmt::Debug>(
    agent: Agent<F>,
    config: &AgentConfig,
) -> (Agent<F>, Boot) {
    boot(agent.into_flash(), config)
}

/// Address of a slot.
pub fn slot_addr(config: &AgentConfig, kind: fota_protocol::SlotKind, index: u32) -> u32 {
    config.slot(kind, index).expect("slot exists").addr
}

/// A recognisable image of `len` bytes.
pub fn image(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

pub fn noop(_: u32, _: u32) {}
