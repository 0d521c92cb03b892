//! `fota info`: the agent and the flash layout.

use fota_host::protocol::{Info, SlotKind};
use serde_json::json;

use super::{Global, Session};
use crate::render::{human_bytes, json_line};

pub fn run(session: &Session, global: &Global) {
    print_info(&session.info, global.json);
}

fn print_info(info: &Info, json: bool) {
    if json {
        let slots: Vec<_> = info
            .slots
            .iter()
            .map(|s| json!({"kind": format!("{:?}", s.kind), "index": s.index, "addr": s.addr, "size": s.size}))
            .collect();
        json_line(json!({
            "event": "result", "name": info.name.as_str(), "version": info.agent_version,
            "protocol": info.protocol_version, "fota": info.fota_supported,
            "sector_size": info.sector_size, "write_granularity": info.write_granularity,
            "max_write": info.max_write, "max_in_flight": info.max_in_flight,
            "max_baud": info.max_baud, "record_addr": info.record_addr,
            "record_size": info.record_size, "slots": slots,
            "boot_stage": info.boot_stage, "sector_erase_ms": info.sector_erase_ms,
            "confirm_ms": info.confirm_ms,
            "trial_left_ms": info.trial_left_ms,
            "baud_rates": info.baud_rates.as_slice(),
            "codecs": info.codecs.iter().map(|c| json!({"id": c.id, "ram": c.ram})).collect::<Vec<_>>(),
            "sectors": info.sectors.iter().map(|r| json!({"addr": r.addr, "size": r.size, "count": r.count})).collect::<Vec<_>>(),
            "block_erases": info.block_erases.iter().map(|b| json!({"size": b.size, "ms": b.ms})).collect::<Vec<_>>(),
            "background_erase": info.background_erase,
        }));
        return;
    }
    let v = info.agent_version;
    println!(
        "agent        {} {}.{}.{} (protocol {})",
        info.name, v[0], v[1], v[2], info.protocol_version
    );
    println!(
        "flash        sector {} B, write unit {} B",
        info.sector_size, info.write_granularity
    );
    for r in &info.sectors {
        println!(
            "sectors      {} x {} from {:#010x}",
            r.count,
            human_bytes(f64::from(r.size)),
            r.addr
        );
    }
    if let Some(ms) = info.sector_erase_ms {
        println!("erase        a sector in {ms} ms at worst");
    }
    for b in &info.block_erases {
        println!(
            "block erase  {} in {} ms",
            human_bytes(f64::from(b.size)),
            b.ms
        );
    }
    if info.background_erase {
        println!("erase        in the background (erase suspend): writes elsewhere go on");
    }
    if let Some(ms) = info.confirm_ms {
        println!("trial        firmware must confirm within {}", seconds(ms));
    }
    // The device's own clock (tag 9): only while a firmware runs on trial.
    match info.trial_left_ms {
        Some(0) => println!(
            "on trial     now, past its deadline and not confirmed: it keeps running, and the \
             next restart brings back the last working firmware"
        ),
        Some(ms) => println!(
            "on trial     now: {} left to confirm itself, by the device's clock",
            seconds(ms)
        ),
        None => {}
    }
    println!(
        "images       {}",
        fota_host::describe_rules(info.images.as_ref())
    );
    println!(
        "link         {} B per write, {} in flight, up to {} baud",
        info.max_write, info.max_in_flight, info.max_baud
    );
    if !info.baud_rates.is_empty() {
        let rates: Vec<String> = info.baud_rates.iter().map(u32::to_string).collect();
        println!("baud rates   {}", rates.join(", "));
    }
    for s in &info.slots {
        let kind = s.kind.label();
        let boot_stage = if s.kind == SlotKind::Vm && info.boot_stage == Some(s.index) {
            "  boot stage (never erased or written)"
        } else {
            ""
        };
        println!(
            "slot         {kind:<8} {}  {:#010x}  {}{boot_stage}",
            s.index,
            s.addr,
            human_bytes(f64::from(s.size))
        );
    }
    println!(
        "record       {:#010x}  {}",
        info.record_addr,
        human_bytes(f64::from(info.record_size))
    );
}

/// Milliseconds as seconds, without trailing zeros: "1.5 s", "2 s", "0.25 s".
fn seconds(ms: u32) -> String {
    let s = format!("{:.3}", f64::from(ms) / 1000.0);
    format!("{} s", s.trim_end_matches('0').trim_end_matches('.'))
}
