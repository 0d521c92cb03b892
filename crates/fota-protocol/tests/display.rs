//! What logs and user interfaces print of the wire types: names, labels and messages.

use std::collections::HashSet;

use fota_protocol::{DecodeError, ErrorCode, FrameError, LayoutKind, Op, SlotKind};

/// Every operation: the requests by code, and the two reply-only ones.
fn all_ops() -> Vec<Op> {
    let mut ops: Vec<Op> = (0..=u8::MAX).filter_map(Op::from_request).collect();
    ops.extend([Op::AttemptDowngrade, Op::Progress, Op::Error]);
    ops.dedup();
    ops
}

#[test]
fn ops_print_their_protocol_names() {
    // docs/PROTOCOL.md names each operation as its variant is named.
    for op in all_ops() {
        assert_eq!(op.to_string(), format!("{op:?}"));
    }
    assert_eq!(Op::FindBytecodeSlot.to_string(), "FindBytecodeSlot");
}

#[test]
fn error_codes_print_their_message() {
    for code in ErrorCode::ALL {
        assert_eq!(code.to_string(), code.message());
    }
}

#[test]
fn slot_kinds_have_a_label_and_a_title() {
    assert_eq!(SlotKind::Vm.to_string(), "VM");
    assert_eq!(SlotKind::Bytecode.to_string(), "bytecode");
    assert_eq!(SlotKind::Bytecode.title(), "Bytecode");
    assert_eq!(SlotKind::Vm.title(), SlotKind::Vm.label());
}

#[test]
fn layout_keys_round_trip() {
    for layout in LayoutKind::ALL {
        assert_eq!(LayoutKind::from_key(layout.key()), Some(layout));
        assert_eq!(layout.to_string(), layout.key());
    }
    assert_eq!(LayoutKind::from_key("vm"), Some(LayoutKind::VmAndBytecode));
    assert_eq!(LayoutKind::from_key("VM"), None);
    assert_eq!(LayoutKind::from_key(""), None);
}

fn message<E: std::error::Error>(e: E) -> String {
    e.to_string()
}

#[test]
fn decode_and_frame_errors_say_what_went_wrong() {
    let decode = [
        DecodeError::Truncated,
        DecodeError::TrailingBytes,
        DecodeError::UnknownOp(0x42),
        DecodeError::BadValue,
    ]
    .map(message);
    let frame = [
        FrameError::TooLong,
        FrameError::Cobs,
        FrameError::TooShort,
        FrameError::Crc,
    ]
    .map(message);
    let all: HashSet<&String> = decode.iter().chain(&frame).collect();
    assert_eq!(all.len(), decode.len() + frame.len(), "messages differ");
    assert!(decode[2].contains("0x42"), "{}", decode[2]);
}
