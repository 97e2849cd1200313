//! `kentledge status`: the listing `list` makes (the config's snapshots by one labelled list,
//! every repository's archives by a list mover each, or only the snapshots), assessed against
//! `spec.status`: per series the newest snapshot and copies, their ages, fresh or not; printed
//! as text, JSON or the Prometheus exposition format, with an exit code that says whether
//! everything is fresh (so it can be a CronJob or an alert by itself).

use crate::error::Error;
use crate::flows::list::{Options, listing};
use crate::report::list::Filter;
use crate::report::status::assess;
use crate::runtime::output;
use crate::runtime::signals::Interrupt;
use crate::settings::Settings;

/// `kentledge status`.
pub async fn run(
    settings: &Settings,
    client: &kube::Client,
    snapshots_only: bool,
    prometheus: bool,
    interrupt: &Interrupt,
    results: &mut output::Results,
) -> Result<u8, Error> {
    let config = &settings.config;
    let opts = Options {
        snapshots: true,
        repositories: if snapshots_only {
            Vec::new()
        } else {
            config
                .spec
                .repositories
                .iter()
                .map(|r| r.name.clone())
                .collect()
        },
        filter: Filter::default(),
        sizes: false,
    };
    let listed = listing(settings, client, &opts, interrupt).await?;
    let status = assess(config, &listed, !snapshots_only, jiff::Timestamp::now());
    if prometheus {
        output::print(&status.prometheus())?;
    } else {
        results.report(&status)?;
    }
    Ok(status.code(interrupt.code()))
}
