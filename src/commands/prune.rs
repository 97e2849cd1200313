//! `kentledge prune`: snapshots with `spec.snapshots.retention` ([`crate::flows::prune`]) and
//! repositories with their retention ([`crate::flows::repositories`]), decided at one moment.

use jiff::Timestamp;

use crate::cli::{GlobalArgs, PruneArgs, PruneScope};
use crate::error::{Error, exit};
use crate::flows;
use crate::report::repositories;
use crate::runtime::output;
use crate::settings::{self, Settings};

/// Runs `kentledge prune`.
pub fn run(global: &GlobalArgs, args: &PruneArgs) -> Result<u8, Error> {
    let settings = settings::load(global)?;
    let mut results = output::Results::new(global.output.into());
    let code = super::runtime()?.block_on(run_async(global, &settings, args, &mut results));
    results.finish()?;
    code
}

async fn run_async(
    global: &GlobalArgs,
    settings: &Settings,
    args: &PruneArgs,
    results: &mut output::Results,
) -> Result<u8, Error> {
    let (client, interrupt) = super::connect(global).await?;
    // One moment decides for snapshots and repositories alike.
    let now = args.now.unwrap_or_else(Timestamp::now);
    let mut code = exit::SUCCESS;
    if args.only != PruneScope::Repositories {
        code = flows::prune::snapshots(
            settings,
            args.lock.lock_timeout.0,
            now,
            &client,
            &interrupt,
            results,
        )
        .await?;
    }
    if args.only != PruneScope::Snapshots && !interrupt.is_set() {
        let repos = &settings.config.spec.repositories;
        if repos.iter().any(|r| r.retention.is_some()) {
            let c = crate::flows::repositories::prune(
                settings,
                &client,
                now,
                args.lock.lock_timeout.0,
                &interrupt,
                results,
            )
            .await?;
            code = code.max(c);
        } else if args.only == PruneScope::Repositories {
            // Said only when asked for repositories alone (`--only all` prints the snapshot part).
            results.report(&repositories::NoRetention {
                dry_run: settings.dry_run,
            })?;
        }
    }
    Ok(interrupt.code().unwrap_or(code))
}
