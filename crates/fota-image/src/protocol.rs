//! The wire protocol's slot descriptions as the verifier takes them (feature `protocol`):
//! one conversion for the device's image checks and the host's.

use fota_protocol::{SlotDesc, SlotKind};

use crate::{Kind, Slot};

impl From<SlotKind> for Kind {
    fn from(k: SlotKind) -> Kind {
        match k {
            SlotKind::Vm => Kind::Vm,
            SlotKind::Bytecode => Kind::Bytecode,
        }
    }
}

impl From<Kind> for SlotKind {
    fn from(k: Kind) -> SlotKind {
        match k {
            Kind::Vm => SlotKind::Vm,
            Kind::Bytecode => SlotKind::Bytecode,
        }
    }
}

impl From<&SlotDesc> for Slot {
    fn from(s: &SlotDesc) -> Slot {
        Slot {
            kind: s.kind.into(),
            index: s.index,
            addr: s.addr,
            size: s.size,
        }
    }
}
