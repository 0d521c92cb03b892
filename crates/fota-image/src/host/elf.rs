//! ELF executables with the `object` crate: the loadable segments that have file bytes,
//! at their physical (load) addresses, as `objcopy -O binary` and flashing probes use
//! them (initialised data is stored in flash, at its load address, not in RAM).

use object::elf;
use object::read::elf::{ElfFile, FileHeader, ProgramHeader};
use object::{Endianness, FileKind};

use super::Error;
use super::firmware::{Arch, Firmware, Format, Segment, first_overlap, merge};

/// A name for an ELF machine code.
fn machine_name(m: u16) -> String {
    match m {
        3 => "x86 (32-bit PC)".into(),
        62 => "x86-64 (a PC program)".into(),
        40 => "32-bit ARM".into(),
        183 => "64-bit ARM (AArch64)".into(),
        243 => "RISC-V".into(),
        94 => "Xtensa".into(),
        83 => "AVR".into(),
        8 => "MIPS".into(),
        105 => "MSP430".into(),
        other => format!("machine {other}"),
    }
}

fn arch_matches(arch: Arch, machine: u16, class64: bool) -> bool {
    match arch {
        Arch::Arm => machine == elf::EM_ARM.0 && !class64,
        Arch::RiscV32 => machine == elf::EM_RISCV.0 && !class64,
        Arch::Xtensa => machine == elf::EM_XTENSA.0,
        Arch::Any => true,
    }
}

pub(crate) fn read(name: &str, bytes: &[u8], arch: Arch) -> Result<Firmware, Error> {
    let malformed = |why: String| Error::Malformed {
        name: name.into(),
        why,
        format: "ELF",
    };
    match FileKind::parse(bytes) {
        Ok(FileKind::Elf32) => {
            let file = object::read::elf::ElfFile32::<Endianness>::parse(bytes)
                .map_err(|e| malformed(format!("not a valid 32-bit ELF: {e}")))?;
            segments(name, bytes, &file, arch, false)
        }
        Ok(FileKind::Elf64) => {
            let file = object::read::elf::ElfFile64::<Endianness>::parse(bytes)
                .map_err(|e| malformed(format!("not a valid 64-bit ELF: {e}")))?;
            segments(name, bytes, &file, arch, true)
        }
        Ok(_) | Err(_) => Err(malformed("the ELF header is damaged or cut off".into())),
    }
}

fn segments<H: FileHeader<Endian = Endianness>>(
    name: &str,
    bytes: &[u8],
    file: &ElfFile<'_, H>,
    arch: Arch,
    class64: bool,
) -> Result<Firmware, Error> {
    let endian = file.endian();
    let header = file.elf_header();
    let machine = header.e_machine(endian).0;
    if !arch_matches(arch, machine, class64) {
        let bits = if class64 { "64-bit" } else { "32-bit" };
        return Err(Error::ElfArchitecture {
            name: name.into(),
            found: format!("{} ({bits})", machine_name(machine)),
            expected: arch.name().into(),
        });
    }
    if !header.is_little_endian() && arch != Arch::Any {
        return Err(Error::ElfArchitecture {
            name: name.into(),
            found: format!("{} (big-endian)", machine_name(machine)),
            expected: format!("{} (little-endian)", arch.name()),
        });
    }
    let e_type = header.e_type(endian);
    let mut pieces = Vec::new();
    let mut spans = Vec::new();
    for (i, ph) in file.elf_program_headers().iter().enumerate() {
        if ph.p_type(endian) != elf::PT_LOAD {
            continue;
        }
        let data = ph.data(endian, bytes).map_err(|_| Error::Malformed {
            name: name.into(),
            why: format!("segment {i} lies outside the file: it is cut off"),
            format: "ELF",
        })?;
        if data.is_empty() {
            continue;
        }
        let addr: u64 = ph.p_paddr(endian).into();
        let end = addr + data.len() as u64;
        let Ok(addr) = u32::try_from(addr) else {
            return Err(Error::Malformed {
                name: name.into(),
                why: format!("segment {i} is loaded at {addr:#x}, beyond 32-bit addresses"),
                format: "ELF",
            });
        };
        if end > 1 << 32 {
            return Err(Error::Malformed {
                name: name.into(),
                why: format!("segment {i} runs past the end of the 32-bit address space"),
                format: "ELF",
            });
        }
        spans.push((addr, end, i));
        pieces.push(Segment {
            addr,
            data: data.to_vec(),
        });
    }
    if pieces.is_empty() {
        let why = match e_type {
            elf::ET_REL => "it is an object file (.o), not a linked program".to_string(),
            elf::ET_DYN => "it is a shared library or has no loadable data".to_string(),
            elf::ET_CORE => "it is a core dump".to_string(),
            _ => "no segment has bytes to write to flash".to_string(),
        };
        return Err(Error::ElfNothingToLoad {
            name: name.into(),
            why,
        });
    }
    if let Some((addr, a, b)) = first_overlap(&mut spans) {
        let (a, b) = (a.min(b), a.max(b));
        return Err(Error::Overlap {
            name: name.into(),
            addr,
            first: format!("segment {a}"),
            second: format!("segment {b}"),
        });
    }
    let entry: u64 = header.e_entry(endian).into();
    Ok(Firmware {
        name: name.into(),
        format: Format::Elf,
        notes: vec![format!(
            "{} ELF, {} loadable segment(s) with data",
            machine_name(machine),
            pieces.len()
        )],
        segments: merge(pieces),
        entry: u32::try_from(entry).ok(),
        warnings: vec![],
    })
}
