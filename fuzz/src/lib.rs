//! Shared code of the fuzz targets: the properties live in [`harness`] (the wire
//! protocol and the agent; the proptest suite `crates/fota-agent/tests/properties.rs`
//! includes it too) and [`hostile`] (the host against a hostile device; included by
//! `crates/fota-host/tests/hostile_device.rs`).

pub mod harness;
pub mod codec_harness;
pub mod hostile;
