//! Shared code of the fuzz targets: the properties live in [`harness`], which the
//! proptest suite (`crates/fota-agent/tests/properties.rs`) includes too.

pub mod harness;
pub mod codec_harness;
