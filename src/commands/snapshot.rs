//! `kentledge snapshot`: CSI snapshots of the selected PVCs with application-consistency hooks
//! around the cut; the flow is [`crate::flows::snapshot`].

use crate::cli::{GlobalArgs, SnapshotArgs};
use crate::error::Error;
use crate::flows::snapshot::{self, Options};
use crate::runtime::output;
use crate::settings;

/// The flow's options from the command line.
pub fn options(args: &SnapshotArgs) -> Options {
    Options {
        targets: args.targets.clone(),
        lock_timeout: args.lock.lock_timeout.0,
    }
}

/// Runs `kentledge snapshot`.
pub fn run(global: &GlobalArgs, args: &SnapshotArgs) -> Result<u8, Error> {
    let settings = settings::load(global)?;
    let started = std::time::Instant::now();
    let mut results = output::Results::new(global.output.into());
    let code = super::runtime()?.block_on(async {
        let (client, interrupt) = super::connect(global).await?;
        snapshot::run(&settings, &options(args), &client, &interrupt, &mut results).await
    });
    let targets = results.targets().to_vec();
    results.finish()?;
    if let Ok(c) = &code {
        super::push_metrics(
            args.push.pushgateway.as_deref(),
            &settings,
            "snapshot",
            *c,
            started,
            &targets,
        );
    }
    code
}
