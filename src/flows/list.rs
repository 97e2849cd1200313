//! `kentledge list`: the config's VolumeSnapshots by one labelled list, and the archives of
//! every repository (or those asked for) through one list mover per repository, all at once,
//! with the lock handling of every mover job; a repository that cannot be listed is reported
//! and the others are still shown.

use futures::future::join_all;
use kube::api::{Api, ListParams};

use crate::config::Repository;
use crate::error::Error;
use crate::model::snapshots::VolumeSnapshot;
use crate::mover::job::{Action, ArchiveEntry};
use crate::report::Verdict;
use crate::report::list::{Filter, RepoResult, assemble};
use crate::runtime::output;
use crate::runtime::signals::Interrupt;
use crate::settings::Settings;

/// What to list.
#[derive(Clone, Debug)]
pub struct Options {
    /// The VolumeSnapshots.
    pub snapshots: bool,
    /// Archives of these repositories (none: no archives).
    pub repositories: Vec<String>,
    /// Which restore points to show.
    pub filter: Filter,
    /// Ask the engines for each archive's size (borg info, restic stats: slower).
    pub sizes: bool,
}

/// The config's VolumeSnapshots (one labelled list).
pub async fn snapshots(
    client: &kube::Client,
    settings: &Settings,
) -> Result<Vec<VolumeSnapshot>, Error> {
    let api: Api<VolumeSnapshot> = Api::namespaced(client.clone(), &settings.namespace);
    let sel = crate::model::labels::config_selector(&settings.config.metadata.name);
    Ok(api
        .list(&ListParams::default().labels(&sel))
        .await
        .map_err(Error::cluster("list VolumeSnapshots"))?
        .items)
}

/// Lists one repository's archives in a mover pod (only one series', and with each archive's
/// size and file count from the engine, when asked).
#[allow(clippy::too_many_arguments)]
pub async fn archives(
    client: &kube::Client,
    settings: &Settings,
    run_id: &str,
    index: usize,
    repo: &Repository,
    series: Option<crate::engines::Series>,
    sizes: bool,
    interrupt: &Interrupt,
) -> Result<Vec<ArchiveEntry>, (Verdict, String)> {
    let config = &settings.config;
    let action = Action::List {
        config: config.metadata.name.clone(),
        namespace: settings.namespace.clone(),
        sizes,
        series,
    };
    let out = crate::flows::repositories::run_one(
        client, settings, run_id, index, repo, action, interrupt,
    )
    .await
    .map_err(|e| (Verdict::Failed, e.to_string()))?;
    if out.ok() {
        Ok(out.listed)
    } else {
        // An unread log is an unknown listing, never an empty one.
        Err((out.verdict(), out.reason()))
    }
}

/// The listing `list` and `status` show: the snapshots (when asked) and each repository's
/// archives, listed at once.
pub async fn listing(
    settings: &Settings,
    client: &kube::Client,
    opts: &Options,
    interrupt: &Interrupt,
) -> Result<crate::report::list::Listing, Error> {
    let config = &settings.config;
    let tz = jiff::tz::TimeZone::get(&config.spec.timezone).map_err(|e| Error::BadArgument {
        flag: "spec.timezone",
        value: config.spec.timezone.clone(),
        reason: e.to_string(),
    })?;
    let snaps = if opts.snapshots {
        snapshots(client, settings).await?
    } else {
        Vec::new()
    };
    let run_id = crate::model::labels::new_run_id();
    let repos: Vec<&Repository> = opts
        .repositories
        .iter()
        .filter_map(|n| config.spec.repositories.iter().find(|r| &r.name == n))
        .collect();
    let listed = join_all(repos.iter().enumerate().map(|(i, r)| {
        let run_id = &run_id;
        async move {
            RepoResult {
                repository: r.name.clone(),
                engine: r.engine().name(),
                archives: archives(client, settings, run_id, i, r, None, opts.sizes, interrupt)
                    .await,
            }
        }
    }))
    .await;
    for r in &listed {
        if let Err((_, why)) = &r.archives {
            tracing::error!(repository = %r.repository, "could not list: {why}");
        }
    }
    Ok(assemble(
        &config.metadata.name,
        &settings.namespace,
        &config.spec.timezone,
        &tz,
        &snaps,
        &listed,
        &opts.filter,
    ))
}

/// `kentledge list`.
pub async fn run(
    settings: &Settings,
    client: &kube::Client,
    opts: &Options,
    interrupt: &Interrupt,
    results: &mut output::Results,
) -> Result<u8, Error> {
    let listing = listing(settings, client, opts, interrupt).await?;
    results.report(&listing)?;
    Ok(listing.code(opts.snapshots, interrupt.code()))
}
