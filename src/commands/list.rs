//! `kentledge list`: every restore point of the config's series ([`crate::flows::list`]).

use crate::cli::{GlobalArgs, ListArgs, ListWhat};
use crate::error::Error;
use crate::report::list::Filter;
use crate::runtime::output;
use crate::settings;

/// Runs `kentledge list`.
pub fn run(global: &GlobalArgs, args: &ListArgs) -> Result<u8, Error> {
    let settings = settings::load(global)?;
    let repos = &settings.config.spec.repositories;
    for r in &args.repositories {
        super::check_repository(&settings, r)?;
    }
    let repositories = match args.what {
        ListWhat::Snapshots => Vec::new(),
        _ if args.repositories.is_empty() => repos.iter().map(|r| r.name.clone()).collect(),
        _ => args.repositories.clone(),
    };
    let opts = crate::flows::list::Options {
        // `--repository` asks for archives: snapshots are not in a repository.
        snapshots: args.what == ListWhat::Snapshots
            || (args.what == ListWhat::All && args.repositories.is_empty()),
        repositories,
        filter: Filter {
            series: args.series.clone(),
            since: args.since,
            until: args.until,
        },
        sizes: args.sizes,
    };
    let mut results = output::Results::new(global.output.into());
    let code = super::runtime()?.block_on(async {
        let (client, interrupt) = super::connect(global).await?;
        crate::flows::list::run(&settings, &client, &opts, &interrupt, &mut results).await
    });
    results.finish()?;
    code
}
