//! `kentledge restore volume`: finds the source (a VolumeSnapshot of the config, or an archive
//! listed in a mover pod, chosen fail-closed), plans the restore, prints it with `--dry-run`,
//! and otherwise carries it out under the config's run and backup locks, so that no prune
//! deletes the source meanwhile and no other run sweeps the restore's objects. Into a new PVC:
//! [`fresh`]; in place: [`inplace`].

mod bucket;
mod database;
mod fresh;
mod inplace;

pub use bucket::{BucketOptions, bucket};
pub use database::{DatabaseOptions, database};

use std::time::Duration;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::Api;

use crate::config::Repository;
use crate::engines::{Series, SeriesKind};
use crate::error::Error;
use crate::kube::lease::{self, Held};
use crate::model::snapshots::VolumeSnapshot;
use crate::mover::job::ArchiveEntry;
use crate::plan::lock::Lock;
use crate::plan::restore::{ArchiveQuery, Source, choose_archive, choose_snapshot};
use crate::runtime::output;
use crate::runtime::signals::Interrupt;
use crate::settings::Settings;

/// Where the restored data goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A new PVC of this name.
    New(String),
    /// The PVC itself.
    InPlace,
}

/// What a volume restore is asked for, apart from the settings.
#[derive(Clone, Debug)]
pub struct VolumeOptions {
    /// The PVC whose data is restored.
    pub pvc: String,
    /// From this snapshot.
    pub snapshot: Option<String>,
    /// From this repository.
    pub repository: Option<String>,
    /// This archive.
    pub archive: Option<String>,
    /// The newest archive at or before this time.
    pub as_of: Option<jiff::Timestamp>,
    /// Into what.
    pub target: Target,
    /// The new PVC's size.
    pub size: Option<String>,
    /// The new PVC's storage class.
    pub storage_class: Option<String>,
    /// What an in-place restore may stop although it is refused by default.
    pub accept: crate::plan::restore::inplace::Accept,
    /// Finish or roll back an in-place restore a killed run left.
    pub resume: bool,
    /// How long to wait for the locks.
    pub lock_timeout: Duration,
}

/// Both locks of the config: the run lock (snapshots and their prune) and the backup lock
/// (copies, repository prune, and the sweeps of their leftovers), taken in that order.
pub(crate) struct Locks {
    run: Held,
    backup: Held,
}

impl Locks {
    pub(crate) async fn take(
        client: &kube::Client,
        settings: &Settings,
        run_id: &str,
        wait: Duration,
        interrupt: &Interrupt,
    ) -> Result<Locks, Error> {
        let (ns, name) = (
            settings.namespace.as_str(),
            settings.config.metadata.name.as_str(),
        );
        let started = std::time::Instant::now();
        let run = lease::take(client, ns, name, Lock::Run, run_id, wait, interrupt).await?;
        crate::flows::snapshot::killed::sweep(client, ns, &run).await;
        // One --lock-timeout for both: the second lock gets what the first left.
        let rest = wait.saturating_sub(started.elapsed());
        match lease::take(client, ns, name, Lock::Backup, run_id, rest, interrupt).await {
            Ok(backup) => Ok(Locks { run, backup }),
            Err(e) => {
                run.release().await;
                Err(e)
            }
        }
    }

    /// Releases both; why either was lost during the run, if it was.
    pub(crate) async fn release(self) -> Option<String> {
        let backup = self.backup.release().await;
        let run = self.run.release().await;
        backup.or(run)
    }
}

/// `planned`, or its error once the locks (if taken) are released.
pub(crate) async fn or_release<T>(
    locks: Option<Locks>,
    planned: Result<T, Error>,
) -> Result<(T, Option<Locks>), Error> {
    match planned {
        Ok(p) => Ok((p, locks)),
        Err(e) => {
            if let Some(l) = locks {
                l.release().await;
            }
            Err(e)
        }
    }
}

/// The locks (none for a dry run) and then `plan`: the archive is chosen under them, so that no
/// prune deletes it before it is read; a plan that fails releases them.
pub(crate) async fn locked_plan<T>(
    client: &kube::Client,
    settings: &Settings,
    run_id: &str,
    lock_timeout: std::time::Duration,
    interrupt: &Interrupt,
    plan: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<(T, Option<Locks>), Error> {
    let locks = if settings.dry_run {
        None
    } else {
        Some(Locks::take(client, settings, run_id, lock_timeout, interrupt).await?)
    };
    or_release(locks, plan.await).await
}

/// A restore mover's verdict and result text: ok only when it exited 0, its log was read and it
/// reported what it did (`reported`); a mover that exited 0 without saying is `unknown`.
pub(crate) fn judged(
    o: &crate::flows::movers::MoverResult,
    reported: bool,
) -> (crate::report::Verdict, String) {
    use crate::report::Verdict;
    let outcome = if o.ok() && reported {
        Verdict::Ok
    } else if o.succeeded() {
        Verdict::Unknown
    } else {
        Verdict::Failed
    };
    let result = if outcome == Verdict::Ok {
        "ok".into()
    } else if o.succeeded() && o.log_error.is_none() {
        "result unknown: the mover exited 0 but did not report what it did".into()
    } else {
        o.reason()
    };
    (outcome, result)
}

/// Releases the locks, notes a lost one, records a failure as a `RestoreFailed` Event on the
/// PVC, prints the report; returns its exit code.
pub(crate) async fn finish(
    client: &kube::Client,
    settings: &Settings,
    locks: Locks,
    mut report: crate::report::restore::VolumeRestore,
    interrupt: &Interrupt,
    results: &mut output::Results,
) -> Result<u8, Error> {
    report.interrupted = interrupt.code();
    let lost = locks.release().await;
    if let Some(l) = &lost {
        report
            .notes
            .push(format!("a lock was lost during the restore: {l}"));
    }
    if !report.ok {
        let what = if report.in_place {
            "in-place restore failed".to_owned()
        } else {
            format!("restore into {} failed", report.target)
        };
        crate::kube::events::record(
            client,
            &settings.namespace,
            &report.pvc,
            "RestoreFailed",
            &format!("{what}: {}", report.result),
        )
        .await;
    } else if !settings.dry_run {
        // On the PVC that now holds the data (the PVC itself when in place).
        let (on, what) = if report.in_place {
            (report.pvc.clone(), "restored in place".to_owned())
        } else {
            (
                report.target.clone(),
                format!("restored from the data of {}", report.pvc),
            )
        };
        crate::kube::events::note_on(
            client,
            &settings.namespace,
            "PersistentVolumeClaim",
            &on,
            "Restored",
            &format!("{what}, from {}", report.from),
        )
        .await;
    }
    results.report(&report)?;
    Ok(report.code(lost.is_some()))
}

/// The repository the options name (checked against the config before any API call).
fn repository<'a>(settings: &'a Settings, name: &str) -> &'a Repository {
    settings
        .config
        .spec
        .repositories
        .iter()
        .find(|r| r.name == name)
        .expect("the command checked the repository's name")
}

/// The archives of the config in a repository, listed by mover `index` of the run, with the
/// sizes of the archives of PVC `sized` when given (what a new volume is sized from).
pub(crate) async fn list_archives(
    client: &kube::Client,
    settings: &Settings,
    run_id: &str,
    index: usize,
    repo: &Repository,
    sized: Option<&str>,
    interrupt: &Interrupt,
) -> Result<Vec<ArchiveEntry>, Error> {
    use crate::mover::job::Sizes;
    let sizes = sized.map_or(Sizes::None, |name| {
        Sizes::Of(Series {
            config: settings.config.metadata.name.clone(),
            namespace: settings.namespace.clone(),
            kind: SeriesKind::Volume,
            name: name.to_owned(),
        })
    });
    crate::flows::list::archives(
        client, settings, run_id, index, repo, None, sizes, interrupt,
    )
    .await
    .map_err(|(_, why)| Error::Plan {
        problems: vec![format!(
            "repository {} could not be listed: {why}",
            repo.name
        )],
    })
}

/// The source the options name: the snapshot (read by name), or the archive chosen among the
/// repository's listing (with the sizes of the PVC's archives when `sized`: a new volume is
/// sized from its archive). Every refusal is an error that changes nothing.
pub(crate) async fn source(
    client: &kube::Client,
    settings: &Settings,
    opts: &VolumeOptions,
    run_id: &str,
    sized: bool,
    interrupt: &Interrupt,
) -> Result<Source, Error> {
    let plan_err = |p: String| Error::Plan { problems: vec![p] };
    if let Some(name) = &opts.snapshot {
        let api: Api<VolumeSnapshot> = Api::namespaced(client.clone(), &settings.namespace);
        let found = api
            .get_opt(name)
            .await
            .map_err(Error::cluster("read the VolumeSnapshot"))?;
        let snaps: Vec<VolumeSnapshot> = found.into_iter().collect();
        return choose_snapshot(&snaps, name, &opts.pvc, &settings.config.metadata.name)
            .map_err(plan_err);
    }
    let repo = repository(settings, opts.repository.as_deref().unwrap_or_default());
    let sized = sized.then_some(opts.pvc.as_str());
    let listed = list_archives(client, settings, run_id, 0, repo, sized, interrupt).await?;
    choose_archive(
        &listed,
        repo,
        &opts.pvc,
        ArchiveQuery {
            archive: opts.archive.as_deref(),
            as_of: opts.as_of,
        },
    )
    .map_err(plan_err)
}

/// What a restore clears first, under both locks: mover pods, clones and new PVCs of killed
/// runs, and their in-use marks on snapshots. Says what could not be cleared.
pub(crate) async fn sweep(
    client: &kube::Client,
    settings: &Settings,
    run_id: &str,
) -> Result<(), String> {
    let ns = settings.namespace.as_str();
    crate::flows::movers::delete_leftovers(client, ns, &settings.config.metadata.name, run_id)
        .await
        .map_err(|e| format!("could not sweep the leftovers of earlier runs: {e}"))?;
    let snaps = crate::flows::list::snapshots(client, settings)
        .await
        .map_err(|e| format!("could not read snapshots to release stale in-use marks: {e}"))?;
    crate::kube::marks::release_stale(client, &snaps, ns, run_id).await;
    Ok(())
}

/// Says loudly (an error line and a Warning Event on the PVC) that an in-place restore of this
/// config did not finish: its workloads may still be stopped. Every command that reads the
/// config's PVCs calls this, so a killed restore is never left silently (a dry run only logs).
/// Returns the PVCs whose data may be half written (or whose mark cannot be read): snapshot and
/// backup runs leave them out.
pub async fn warn_unfinished(
    client: &kube::Client,
    settings: &Settings,
    pvcs: &[PersistentVolumeClaim],
) -> std::collections::BTreeSet<String> {
    use crate::plan::restore::inplace::Phase;
    let (ns, config) = (
        settings.namespace.as_str(),
        settings.config.metadata.name.as_str(),
    );
    let mut half = std::collections::BTreeSet::new();
    for (pvc, m) in crate::plan::restore::inplace::unfinished(pvcs, config) {
        let msg = match &m {
            Ok(m) => format!(
                "an in-place restore of PVC {pvc} (run {}) did not finish: it stopped while {}; its workloads may still be stopped. Run `kentledge restore volume {pvc} --in-place --resume`",
                m.run,
                m.phase.name()
            ),
            Err(e) => format!("{e}; run `kentledge restore volume {pvc} --in-place --resume`"),
        };
        if !matches!(&m, Ok(m) if !matches!(m.phase, Phase::Replacing | Phase::RollingBack)) {
            half.insert(pvc.to_owned());
        }
        tracing::error!(pvc, "{msg}");
        if !settings.dry_run {
            crate::kube::events::record(client, ns, pvc, "RestoreUnfinished", &msg).await;
        }
    }
    half
}

/// Shows a restore mover's progress on the terminal (`what: 12 MiB of 70 MiB [===> ] 17%,
/// 210 files, 30 MiB/s, 2s left`) and passes its log messages on; `items` names what the
/// mover counts (files, objects).
pub(crate) fn show_progress(
    e: &crate::mover::job::MoverEvent,
    progress: &crate::runtime::progress::Progress,
    what: &str,
    items: &str,
    repository: &str,
) {
    use crate::mover::job::MoverEvent;
    match e {
        MoverEvent::Progress {
            bytes,
            total,
            files,
        } => {
            let counted = (*files > 0).then_some((*files, items));
            progress.transfer(what, *bytes, *total, counted);
        }
        MoverEvent::Writing => {}
        _ => crate::flows::movers::relay(e, repository, None),
    }
}

/// Reads a PVC, `None` when it does not exist.
pub(crate) async fn read_pvc(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Option<PersistentVolumeClaim>, Error> {
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(Error::cluster("read the PersistentVolumeClaim"))
}

/// `kentledge restore volume`.
pub async fn volume(
    settings: &Settings,
    opts: &VolumeOptions,
    client: &kube::Client,
    interrupt: &Interrupt,
    results: &mut output::Results,
) -> Result<u8, Error> {
    match &opts.target {
        Target::New(to) => fresh::run(settings, opts, to, client, interrupt, results).await,
        Target::InPlace => inplace::run(settings, opts, client, interrupt, results).await,
    }
}
