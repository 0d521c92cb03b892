//! `fota record`: the FOTA record, once or watched across restarts.

use std::time::Duration;

use clap::Args;
use fota_host::protocol::{Record, RecordState};
use fota_host::{Device, HostError};
use serde_json::json;

use super::{Global, Session, secs};
use crate::connection;
use crate::render::json_line;
use fota_host::Problem;

#[derive(Args)]
pub struct RecordArgs {
    /// Keep watching and print every change (across restarts).
    #[arg(long)]
    watch: bool,
    /// Stop watching after this many seconds.
    #[arg(long)]
    timeout: Option<f64>,
}

pub async fn run(session: &mut Session, args: &RecordArgs, global: &Global) -> Result<(), Problem> {
    let RecordArgs { watch, timeout } = args;
    let dev = &mut session.dev;
    let record = dev.get_record().await?;
    print_record(&record, global.json);
    if *watch {
        watch_record(dev, record, *timeout, global.json).await?;
    }
    Ok(())
}

const FIELDS: [&str; 9] = [
    "valid",
    "FOTA VM index",
    "current VM slot",
    "last working VM slot",
    "current bytecode slot",
    "last working bytecode slot",
    "bytecode address",
    "VM address",
    "chunk",
];

fn state_name(state: RecordState) -> &'static str {
    match state {
        RecordState::Confirmed => "Confirmed",
        RecordState::Pending => "Pending",
        RecordState::Trial => "Trial",
    }
}

pub fn print_record(record: &Record, json: bool) {
    if json {
        json_line(json!({
            "event": "record",
            "record": record.to_array(),
            "valid": record.valid != 0,
            "state": state_name(record.state),
            "on_trial": record.on_trial(),
            "running": {"vm": record.running_vm, "bytecode": record.running_bc},
            "describe": fota_host::update::describe(record),
        }));
        return;
    }
    for (i, (name, v)) in FIELDS.iter().zip(record.to_array()).enumerate() {
        if (6..=7).contains(&i) {
            println!("fota[{i}] {name:<27} {v:#x}");
        } else {
            println!("fota[{i}] {name:<27} {v}");
        }
    }
    let state = match record.state {
        RecordState::Confirmed => "Confirmed: the current configuration is the last working one",
        RecordState::Pending => {
            "Pending: the current configuration is tried at the next restart (it has never run)"
        }
        RecordState::Trial => {
            "Trial: the current configuration runs on trial; a restart without accept() goes \
             back to the last working one"
        }
    };
    println!("state    {state}");
    println!(
        "running  VM slot {}, bytecode slot {}{}",
        record.running_vm,
        record.running_bc,
        if record.runs_current() {
            " (the current configuration)"
        } else {
            " (not the current configuration: it changes at the next restart)"
        }
    );
    if record.valid == 0 {
        println!(
            "warning  fota[0] is 0: the record is not valid (the device could not store it in \
             flash); no update is possible until it is"
        );
    }
}

async fn watch_record(
    dev: &mut Device<connection::Connection>,
    mut last: Record,
    timeout: Option<f64>,
    json: bool,
) -> Result<(), Problem> {
    let deadline = match timeout {
        Some(t) => Some(
            dev.now()
                + secs("timeout", t)
                    .map_err(|e| Problem::new(e, "Give the timeout in seconds."))?,
        ),
        None => None,
    };
    loop {
        if deadline.is_some_and(|d| dev.now() >= d) {
            return Ok(());
        }
        dev.idle(Duration::from_millis(300)).await?;
        let record = match dev.get_record().await {
            Ok(r) => r,
            Err(HostError::NoAnswer | HostError::Link(_)) => {
                // Restarting: wait for it to come back.
                dev.wait_for_device().await?;
                continue;
            }
            Err(HostError::Cancelled) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if record != last {
            if !json {
                println!("--");
            }
            print_record(&record, json);
            last = record;
        }
    }
}
