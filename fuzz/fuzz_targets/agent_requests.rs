//! Arbitrary request frames, noise, damaged frames, power cuts and restarts into an
//! `AgentLink` over a `SimFlash`, with the invariants of `harness::agent_requests`
//! checked after every request.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fota_fuzz::harness::agent_requests(data);
});
