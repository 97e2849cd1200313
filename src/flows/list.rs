//! `kentledge list`: the config's VolumeSnapshots by one labelled list, and the archives of
//! every repository (or those asked for) through one list mover per repository, all at once,
//! with the lock handling of every mover job; a repository that cannot be listed is reported
//! and the others are still shown.

use futures::future::join_all;
use kube::api::{Api, ListParams};

use crate::config::Repository;
use crate::error::Error;
use crate::model::snapshots::VolumeSnapshot;
use crate::mover::job::{Action, ArchiveEntry, Sizes};
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

/// Lists one repository's archives in a mover pod (only one series' when asked, with the sizes
/// and file counts `sizes` asks the engine for).
#[allow(clippy::too_many_arguments)]
pub async fn archives(
    client: &kube::Client,
    settings: &Settings,
    run_id: &str,
    index: usize,
    repo: &Repository,
    series: Option<crate::engines::Series>,
    sizes: Sizes,
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
    let progress = crate::runtime::progress::Progress::start("listing VolumeSnapshots");
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
    let read = std::sync::Mutex::new(Reading::default());
    let show = |r: &Reading| {
        progress.phase(r.text(repos.len(), snaps.len()));
    };
    show(&Reading::default());
    let listed = join_all(repos.iter().enumerate().map(|(i, r)| {
        let run_id = &run_id;
        let (read, show) = (&read, &show);
        async move {
            let sizes = if opts.sizes { Sizes::All } else { Sizes::None };
            let archives = archives(client, settings, run_id, i, r, None, sizes, interrupt).await;
            if let Ok(mut n) = read.lock() {
                n.add(&archives);
                show(&n);
            }
            RepoResult {
                repository: r.name.clone(),
                engine: r.engine().name(),
                archives,
            }
        }
    }))
    .await;
    drop(progress);
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

/// The repositories read so far, for the progress line.
#[derive(Debug, Default)]
struct Reading {
    repositories: usize,
    failed: usize,
    archives: usize,
}

impl Reading {
    fn add(&mut self, listed: &Result<Vec<ArchiveEntry>, (Verdict, String)>) {
        self.repositories += 1;
        match listed {
            Ok(a) => self.archives += a.len(),
            Err(_) => self.failed += 1,
        }
    }

    /// `2 VolumeSnapshots; repositories: 1 of 3 read (1 failed), 240 archives`.
    fn text(&self, of: usize, snapshots: usize) -> String {
        use crate::runtime::progress::thousands;
        let failed = match self.failed {
            0 => String::new(),
            n => format!(" ({n} failed)"),
        };
        format!(
            "{} VolumeSnapshots; repositories: {} of {of} read{failed}, {} archives",
            thousands(snapshots as u64),
            self.repositories,
            thousands(self.archives as u64)
        )
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_lines() {
        let mut r = Reading::default();
        assert_eq!(
            r.text(3, 1200),
            "1,200 VolumeSnapshots; repositories: 0 of 3 read, 0 archives"
        );
        r.add(&Ok(Vec::new()));
        r.add(&Err((Verdict::Failed, "no".into())));
        assert_eq!(
            r.text(3, 0),
            "0 VolumeSnapshots; repositories: 2 of 3 read (1 failed), 0 archives"
        );
    }
}
