//! The FOTA record as the wire carries it, and the outcome of `accept()`.

/// Where the update process stands, as the record stores it (and, from protocol 2, as
/// the `Record` reply says). The byte values are those of the record on flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum RecordState {
    /// The current configuration is the last working one: nothing to try.
    #[default]
    Confirmed = b'C',
    /// `attempt()` (or `set_record()`) chose a new configuration that has not booted yet.
    /// The next boot runs it and writes [`RecordState::Trial`].
    Pending = b'P',
    /// The new configuration booted once and was not accepted yet. The next boot reverts
    /// to the last working configuration unless `accept()` comes first.
    Trial = b'T',
}

impl RecordState {
    /// The state for a byte, if it is one.
    pub fn from_u8(v: u8) -> Option<RecordState> {
        [
            RecordState::Confirmed,
            RecordState::Pending,
            RecordState::Trial,
        ]
        .into_iter()
        .find(|s| *s as u8 == v)
    }
}

/// What `accept()` did: the `Accept` reply says it, from protocol 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum AcceptOutcome {
    /// The configuration on trial, which runs, became the last working one.
    Accepted = 0,
    /// Nothing to accept: the running configuration already is the last working one.
    AlreadyConfirmed = 1,
    /// Nothing to accept: an attempt is pending and the device has not restarted into it
    /// yet (the next restart tries it).
    NotRestarted = 2,
    /// Nothing to accept: the record's trial is not what runs (its trial boot could not
    /// be recorded); the next restart goes back to the last working configuration.
    NotRunning = 3,
}

impl AcceptOutcome {
    /// The outcome for a byte, if it is one.
    pub fn from_u8(v: u8) -> Option<AcceptOutcome> {
        [
            AcceptOutcome::Accepted,
            AcceptOutcome::AlreadyConfirmed,
            AcceptOutcome::NotRestarted,
            AcceptOutcome::NotRunning,
        ]
        .into_iter()
        .find(|s| *s as u8 == v)
    }

    /// In plain words.
    pub const fn describe(self) -> &'static str {
        match self {
            AcceptOutcome::Accepted => {
                "accepted: the running configuration is now the last working one"
            }
            AcceptOutcome::AlreadyConfirmed => {
                "nothing to accept: the running configuration already is the last working one"
            }
            AcceptOutcome::NotRestarted => {
                "nothing to accept: the attempt has not been restarted into yet"
            }
            AcceptOutcome::NotRunning => {
                "nothing to accept: the configuration on trial is not the one running"
            }
        }
    }
}

/// The FOTA record: the 9 integers of the seed's `get_record()`, and from protocol 2 the
/// record's state and the slots running now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Record {
    /// fota\[0\]: 0 if the record is not valid.
    pub valid: u32,
    /// fota\[1\]: index of the VM slot running now (the FOTA VM).
    pub vm_index: u32,
    /// fota\[2\]: slot of the current VM.
    pub vm_current: u32,
    /// fota\[3\]: slot of the last working VM.
    pub vm_last: u32,
    /// fota\[4\]: slot of the current bytecode.
    pub bc_current: u32,
    /// fota\[5\]: slot of the last working bytecode.
    pub bc_last: u32,
    /// fota\[6\]: flash address of the current bytecode.
    pub bc_addr: u32,
    /// fota\[7\]: flash address of the current VM.
    pub vm_addr: u32,
    /// fota\[8\]: the OTA chunk: the preferred `write_slot` block size.
    pub chunk: u32,
    /// Where the update process stands.
    pub state: RecordState,
    /// The VM slot running now (equal to fota\[1\]).
    pub running_vm: u32,
    /// The bytecode slot running now.
    pub running_bc: u32,
}

impl Record {
    /// As the seed's tuple.
    pub const fn to_array(&self) -> [u32; 9] {
        [
            self.valid,
            self.vm_index,
            self.vm_current,
            self.vm_last,
            self.bc_current,
            self.bc_last,
            self.bc_addr,
            self.vm_addr,
            self.chunk,
        ]
    }

    /// From the seed's tuple alone (what a protocol 1 agent sent): the state follows the
    /// slots (`Confirmed` when current equals last working, else `Pending`), the running
    /// slots are fota\[1\] and the current bytecode.
    pub const fn from_array(a: [u32; 9]) -> Record {
        let state = if a[2] != a[3] || a[4] != a[5] {
            RecordState::Pending
        } else {
            RecordState::Confirmed
        };
        Record {
            state,
            running_vm: a[1],
            running_bc: a[4],
            valid: a[0],
            vm_index: a[1],
            vm_current: a[2],
            vm_last: a[3],
            bc_current: a[4],
            bc_last: a[5],
            bc_addr: a[6],
            vm_addr: a[7],
            chunk: a[8],
        }
    }

    /// Whether a new configuration is pending or on trial (current is not the last
    /// working configuration).
    pub const fn on_trial(&self) -> bool {
        self.vm_current != self.vm_last || self.bc_current != self.bc_last
    }

    /// Whether the configuration the record names as current is running now.
    pub const fn runs_current(&self) -> bool {
        self.running_vm == self.vm_current && self.running_bc == self.bc_current
    }
}

/// The seed's `set_record(newfota)` argument: the four fields a program may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RecordUpdate {
    /// fota\[2\]: the VM slot for the next restart.
    pub vm_current: u32,
    /// fota\[3\]: the last working VM slot.
    pub vm_last: u32,
    /// fota\[4\]: the bytecode slot for the next restart.
    pub bc_current: u32,
    /// fota\[5\]: the last working bytecode slot.
    pub bc_last: u32,
}
