//! `kentledge backup`: copies each selected PVC into every repository of
//! `spec.offsite.volumes` (with `--snapshot-now`, after a snapshot run) and dumps the databases
//! of `spec.offsite.databases`; the flows are
//! [`crate::flows::snapshot`] and [`crate::flows::backup`].

use crate::cli::{BackupArgs, GlobalArgs};
use crate::error::{Error, exit};
use crate::flows;
use crate::runtime::output;
use crate::settings;

/// Runs `kentledge backup`.
pub fn run(global: &GlobalArgs, args: &BackupArgs) -> Result<u8, Error> {
    let settings = settings::load(global)?;
    let started = std::time::Instant::now();
    let mut results = output::Results::new(global.output.into());
    let code = super::runtime()?.block_on(async {
        let (client, interrupt) = super::connect(global).await?;
        if args.snapshot_now {
            // The snapshot command's whole flow (hooks included); its newest snapshots are then
            // the sources.
            let snap = flows::snapshot::Options {
                targets: args.targets.clone(),
                lock_timeout: args.lock.lock_timeout.0,
            };
            results.nest(Some("snapshot"));
            let code =
                flows::snapshot::run(&settings, &snap, &client, &interrupt, &mut results).await;
            results.nest(None);
            let code = code?;
            if code != exit::SUCCESS {
                tracing::error!(
                    code,
                    "the snapshot before the backup failed: nothing was copied"
                );
                return Ok(code);
            }
        }
        let opts = flows::backup::Options {
            from: args.from.clone(),
            targets: args.targets.clone(),
            repositories: args.repositories.clone(),
            lock_timeout: args.lock.lock_timeout.0,
        };
        flows::backup::run(&settings, &opts, &client, &interrupt, &mut results).await
    });
    let targets = results.targets().to_vec();
    results.finish()?;
    if let Ok(c) = &code {
        super::push_metrics(
            args.push.pushgateway.as_deref(),
            &settings,
            "backup",
            *c,
            started,
            &targets,
        );
    }
    code
}
