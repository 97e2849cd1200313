//! `kentledge status`: how fresh each series' newest snapshot and copies are
//! ([`crate::flows::status`]).

use crate::cli::{GlobalArgs, StatusArgs};
use crate::error::Error;
use crate::runtime::output;
use crate::settings;

/// Runs `kentledge status`.
pub fn run(global: &GlobalArgs, args: &StatusArgs) -> Result<u8, Error> {
    let settings = settings::load(global)?;
    let mut results = output::Results::new(global.output.into());
    let code = super::runtime()?.block_on(async {
        let (client, interrupt) = super::connect(global).await?;
        crate::flows::status::run(
            &settings,
            &client,
            args.snapshots_only,
            args.prometheus,
            &interrupt,
            &mut results,
        )
        .await
    });
    results.finish()?;
    code
}
