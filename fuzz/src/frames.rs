//! Frames written byte by byte, for the harnesses that feed an agent or a host frames a
//! correct peer would never send. Included by path by both harness.rs and hostile.rs
//! (and so by the test suites that include them).

/// A frame with this id, op and body, CRC and COBS done right.
pub fn raw_frame(id: u16, op: u8, body: &[u8]) -> Vec<u8> {
    static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    let mut payload = Vec::with_capacity(body.len() + 7);
    payload.extend_from_slice(&id.to_le_bytes());
    payload.push(op);
    payload.extend_from_slice(body);
    let crc = CRC32.checksum(&payload);
    payload.extend_from_slice(&crc.to_le_bytes());
    let mut out = vec![0u8; cobs::max_encoding_length(payload.len()) + 2];
    let n = cobs::encode(&payload, &mut out[1..]);
    out.truncate(n + 2);
    out[0] = 0;
    out[n + 1] = 0;
    out
}
