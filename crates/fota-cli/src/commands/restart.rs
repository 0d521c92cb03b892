//! `fota restart`: restart the device and show the record it comes back with.

use super::record::print_record;
use super::{Global, Session};
use fota_host::Problem;

pub async fn run(session: &mut Session, global: &Global) -> Result<(), Problem> {
    let dev = &mut session.dev;
    dev.restart().await?;
    dev.wait_for_device().await?;
    print_record(&dev.get_record().await?, global.json);
    Ok(())
}
