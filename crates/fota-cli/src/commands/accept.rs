//! `fota accept`: make the running configuration the last working one.

use fota_host::protocol::AcceptOutcome;
use serde_json::json;

use super::record::print_record;
use super::{Global, Session};
use crate::render::json_line;
use fota_host::Problem;

pub async fn run(session: &mut Session, global: &Global) -> Result<(), Problem> {
    let dev = &mut session.dev;
    let outcome = dev.accept().await?;
    if global.json {
        json_line(json!({
            "event": "accept",
            "outcome": format!("{outcome:?}"),
            "accepted": outcome == AcceptOutcome::Accepted,
            "detail": outcome.describe(),
        }));
    } else {
        println!("accept(): {}", outcome.describe());
    }
    print_record(&dev.get_record().await?, global.json);
    Ok(())
}
