//! Restores as data: which snapshot or archive a request names (failing closed: a time filter
//! that matches nothing, an archive of another series or a snapshot that is not ready is an
//! error, never the newest or nothing), the new PVC's shape and size, and the mover job that
//! fills it from an archive; printed by `--dry-run`.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};

use crate::config::{Config, Repository};
use crate::engines::{Series, SeriesKind};
use crate::model::labels::CONFIG;
use crate::model::snapshots::{VolumeSnapshot, cut_time, error_message, is_ready};
use crate::model::units::quantity_bytes;
use crate::mover::job::{Action, ArchiveEntry, Engine, Job};
use crate::mover::pod::{self, CloneSource, Data};
use crate::plan::backup::{access, snapshot_pvc, storage_request};

pub mod bucket;
pub mod database;
pub mod inplace;

/// What a restore reads.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    /// A VolumeSnapshot.
    Snapshot {
        /// Its name.
        name: String,
        /// Its cut.
        time: Timestamp,
        /// `status.restoreSize`.
        restore_size: Option<String>,
    },
    /// An archive of a repository.
    Archive {
        /// The repository.
        repository: String,
        /// Its engine.
        engine: Engine,
        /// The archive.
        #[serde(flatten)]
        entry: ArchiveEntry,
    },
}

impl Source {
    /// For people: `snapshot data-2026… (cut 2026-11-22T10:00:07Z)`.
    pub fn describe(&self) -> String {
        match self {
            Source::Snapshot { name, time, .. } => format!("snapshot {name} (cut {time})"),
            Source::Archive {
                repository,
                engine,
                entry,
            } => format!(
                "{} archive {} in repository {repository} (taken {})",
                engine.name(),
                entry.archive,
                entry.time
            ),
        }
    }

    /// The value of the restored PVC's `kentledge.io/restored-from` annotation.
    pub fn restored_from(&self) -> String {
        match self {
            Source::Snapshot { name, .. } => format!("snapshot/{name}"),
            Source::Archive {
                repository, entry, ..
            } => format!("{repository}/{}", entry.archive),
        }
    }
}

/// The snapshot `name` of `pvc`, when it is one of `config`'s and ready.
pub fn choose_snapshot(
    snapshots: &[VolumeSnapshot],
    name: &str,
    pvc: &str,
    config: &str,
) -> Result<Source, String> {
    let Some(s) = snapshots
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(name))
    else {
        return Err(format!(
            "--snapshot {name}: there is no such VolumeSnapshot in the namespace"
        ));
    };
    let labels = s.metadata.labels.clone().unwrap_or_default();
    if labels.get(CONFIG).map(String::as_str) != Some(config) {
        return Err(format!(
            "--snapshot {name}: it was not made by config {config} (label {CONFIG} is {})",
            labels.get(CONFIG).map(String::as_str).unwrap_or("not set")
        ));
    }
    let of = snapshot_pvc(s).unwrap_or_default();
    if of != pvc {
        return Err(format!(
            "--snapshot {name}: it is a snapshot of PVC {of}, not of {pvc}"
        ));
    }
    if !is_ready(Some(s)) {
        let why = error_message(Some(s))
            .map(|e| format!(": {e}"))
            .unwrap_or_else(|| " (readyToUse is not true yet)".into());
        return Err(format!("--snapshot {name}: it is not ready to use{why}"));
    }
    let Some(time) = cut_time(Some(s)) else {
        return Err(format!(
            "--snapshot {name}: it has no status.creationTime (no cut)"
        ));
    };
    Ok(Source::Snapshot {
        name: name.to_owned(),
        time,
        restore_size: s
            .status
            .as_ref()
            .and_then(|st| st.restore_size.as_ref().map(|q| q.0.clone())),
    })
}

/// Which archive of a repository to restore.
#[derive(Clone, Copy, Debug, Default)]
pub struct ArchiveQuery<'a> {
    /// This archive (borg name, or restic id or a unique prefix of it).
    pub archive: Option<&'a str>,
    /// The newest archive taken at or before this time.
    pub as_of: Option<Timestamp>,
}

/// The archive of volume series `pvc` the query names, among `entries` (the listing of every
/// series of the config in `repository`).
pub fn choose_archive(
    entries: &[ArchiveEntry],
    repository: &Repository,
    pvc: &str,
    q: ArchiveQuery<'_>,
) -> Result<Source, String> {
    choose_series_archive(entries, repository, SeriesKind::Volume, pvc, q)
}

/// For people: `PVC data`, `database maria/shop`.
fn series_words(kind: SeriesKind, series: &str) -> String {
    match kind {
        SeriesKind::Database => format!(
            "database {}",
            crate::engines::databases::describe_series(series)
        ),
        k => format!("{} {series}", kind_word(k)),
    }
}

/// The archive of series `series` of `kind` the query names, among `entries`.
pub fn choose_series_archive(
    entries: &[ArchiveEntry],
    repository: &Repository,
    kind: SeriesKind,
    series: &str,
    q: ArchiveQuery<'_>,
) -> Result<Source, String> {
    let repo = &repository.name;
    let ours = |e: &&ArchiveEntry| e.kind == kind && e.series == series;
    let wanted = series_words(kind, series);
    let chosen = if let Some(id) = q.archive {
        let by_prefix = repository.engine() == Engine::Restic;
        match crate::mover::job::matching_archives(entries, id, by_prefix)[..] {
            [] => {
                return Err(format!(
                    "--archive {id}: repository {repo} has no such archive of this config"
                ));
            }
            [one] if !ours(&one) => {
                return Err(format!(
                    "--archive {id}: it is an archive of {}, not of {wanted}",
                    series_words(one.kind, &one.series)
                ));
            }
            [one] => one,
            _ => {
                return Err(format!(
                    "--archive {id}: more than one archive id starts with it; give more of it"
                ));
            }
        }
    } else {
        let mut of_pvc: Vec<&ArchiveEntry> = entries.iter().filter(ours).collect();
        of_pvc.sort_by_key(|e| e.time);
        let Some(oldest) = of_pvc.first() else {
            return Err(format!(
                "repository {repo} has no archive of {wanted} (see `kentledge list archives --repository {repo}`)"
            ));
        };
        match q.as_of {
            Some(t) => match of_pvc.iter().rev().find(|e| e.time <= t) {
                Some(e) => *e,
                None => {
                    return Err(format!(
                        "--as-of {t}: repository {repo} has no archive of {wanted} taken at or \
                         before then (the oldest was taken {}); nothing was restored",
                        oldest.time
                    ));
                }
            },
            None => *of_pvc.last().expect("not empty"),
        }
    };
    Ok(Source::Archive {
        repository: repo.clone(),
        engine: repository.engine(),
        entry: chosen.clone(),
    })
}

fn kind_word(k: SeriesKind) -> &'static str {
    match k {
        SeriesKind::Volume => "PVC",
        SeriesKind::Database => "database",
        SeriesKind::Bucket => "bucket",
    }
}

/// Size, class and access modes of a new PVC, and why that size.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Shape {
    /// The storage class (none: the cluster's default).
    pub storage_class: Option<String>,
    /// Access modes.
    pub access_modes: Vec<String>,
    /// The size requested.
    pub size: String,
    /// Where the size comes from.
    pub size_from: String,
}

/// What a new PVC's shape is decided from.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShapeInputs<'a> {
    /// The PVC being restored, if it still exists.
    pub source_pvc: Option<&'a PersistentVolumeClaim>,
    /// `--size`.
    pub size: Option<&'a str>,
    /// `--storage-class`.
    pub storage_class: Option<&'a str>,
    /// The snapshot's `restoreSize` (a snapshot restore).
    pub restore_size: Option<&'a str>,
    /// The archive's bytes of data (an archive restore), when known.
    pub data_bytes: Option<u64>,
}

/// Room for what an archive holds: its bytes and a fifth more for the file system, in whole
/// GiB, at least 1 GiB.
pub fn size_for(bytes: u64) -> String {
    let gib = 1u64 << 30;
    let want = bytes.saturating_add(bytes / 5);
    format!("{}Gi", want.div_ceil(gib).max(1))
}

/// The new PVC's shape: flags first, then the source PVC's, then the snapshot's restore size or
/// room for the archive's data. A size smaller than the data is refused.
pub fn shape(i: &ShapeInputs<'_>) -> Result<Shape, String> {
    let src = i.source_pvc.and_then(|p| p.spec.as_ref());
    let storage_class = i
        .storage_class
        .map(String::from)
        .or_else(|| src.and_then(|s| s.storage_class_name.clone()));
    let access_modes = src
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_else(|| vec!["ReadWriteOnce".into()]);
    let floor = i
        .restore_size
        .and_then(quantity_bytes)
        .or(i.data_bytes)
        .unwrap_or(0);
    let (size, size_from) = if let Some(s) = i.size {
        (s.to_owned(), "--size".to_owned())
    } else if let Some(r) = i.source_pvc.and_then(storage_request)
        && quantity_bytes(&r).is_some_and(|b| b >= floor)
    {
        (r, "the source PVC's request".to_owned())
    } else if let Some(r) = i.restore_size {
        (r.to_owned(), "the snapshot's restoreSize".to_owned())
    } else if let Some(b) = i.data_bytes {
        (
            size_for(b),
            format!(
                "the archive's {} of data and a fifth more",
                indicatif::HumanBytes(b)
            ),
        )
    } else {
        return Err(
            "the size of the new PVC is not known (the source PVC is gone and the engine did not say how large the archive is): give --size"
                .into(),
        );
    };
    let Some(bytes) = quantity_bytes(&size) else {
        return Err(format!("--size {size:?}: not a storage size such as 10Gi"));
    };
    if bytes < floor {
        return Err(format!(
            "--size {size}: smaller than the data to restore ({})",
            indicatif::HumanBytes(floor)
        ));
    }
    Ok(Shape {
        storage_class,
        access_modes,
        size,
        size_from,
    })
}

/// A restore into a new PVC.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Fresh {
    /// The PVC whose data is restored (its series).
    pub pvc: String,
    /// The new PVC's name.
    pub target: String,
    /// What is restored.
    pub source: Source,
    /// The new PVC's shape.
    pub shape: Shape,
    /// The new PVC.
    pub target_pvc: PersistentVolumeClaim,
    /// The mover pod that fills it from an archive.
    pub mover: Option<Pod>,
    /// Its job.
    pub job: Option<Job>,
}

/// Who and what the new objects belong to.
pub struct Context<'a> {
    /// The config.
    pub config: &'a Config,
    /// The namespace.
    pub namespace: &'a str,
    /// The run id.
    pub run_id: &'a str,
}

/// The plan of a restore of `pvc` from `source` into the new PVC `target`.
pub fn fresh(c: &Context<'_>, pvc: &str, target: &str, source: Source, shape: Shape) -> Fresh {
    let ctx = pod::Context {
        namespace: c.namespace,
        config: &c.config.metadata.name,
        run_id: c.run_id,
        owner: None,
    };
    let (snapshot, from_snapshot) = match &source {
        Source::Snapshot { name, .. } => (name.as_str(), true),
        Source::Archive { .. } => ("", false),
    };
    let target_pvc = pod::restore_pvc(
        &ctx,
        target,
        &CloneSource {
            snapshot,
            pvc,
            storage_class: shape.storage_class.as_deref(),
            access_modes: shape.access_modes.clone(),
            size: &shape.size,
        },
        from_snapshot,
        &source.restored_from(),
    );
    let (mover, job) = match &source {
        Source::Snapshot { .. } => (None, None),
        Source::Archive {
            repository, entry, ..
        } => {
            let (p, job) = restore_mover(c, pvc, repository, &entry.archive, target, false);
            (Some(p), Some(job))
        }
    };
    Fresh {
        pvc: pvc.to_owned(),
        target: target.to_owned(),
        source,
        shape,
        target_pvc,
        mover,
        job,
    }
}

/// The mover pod (index 1 of the run; 0 lists the repository) that extracts `archive` of
/// `pvc`'s series into the PVC `target`, emptying it first when `replace`.
pub fn restore_mover(
    c: &Context<'_>,
    pvc: &str,
    repository: &str,
    archive: &str,
    target: &str,
    replace: bool,
) -> (Pod, Job) {
    let ctx = pod::Context {
        namespace: c.namespace,
        config: &c.config.metadata.name,
        run_id: c.run_id,
        owner: None,
    };
    let repo = c
        .config
        .spec
        .repositories
        .iter()
        .find(|r| r.name == repository)
        .expect("the source's repository is the config's");
    let job = Job {
        repository: access(repo, c.namespace),
        action: Action::Restore {
            series: Series {
                config: c.config.metadata.name.clone(),
                namespace: c.namespace.to_owned(),
                kind: SeriesKind::Volume,
                name: pvc.to_owned(),
            },
            archive: archive.to_owned(),
            replace,
        },
    };
    let (pod_name, _) = pod::names(c.namespace, c.run_id, inplace::REPLACE_INDEX);
    let label = crate::model::labels::pvc_label_value(pvc);
    let p = pod::mover_pod(
        &ctx,
        &pod_name,
        &c.config.spec.mover,
        repo,
        &job,
        Data::Target(target),
        Some(&label),
    );
    (p, job)
}

/// The plan for people (`--dry-run`).
pub fn render(p: &Fresh) -> String {
    let mut out = format!(
        "restore PVC {} into the new PVC {}\n  from {}\n",
        p.pvc,
        p.target,
        p.source.describe()
    );
    out.push_str(&format!(
        "  new PVC {}: {} ({}), {}, storage class {}\n",
        p.target,
        p.shape.size,
        p.shape.size_from,
        p.shape.access_modes.join(","),
        p.shape.storage_class.as_deref().unwrap_or("(the default)")
    ));
    match (&p.source, &p.mover) {
        (Source::Snapshot { name, .. }, _) => out.push_str(&format!(
            "  1. create {} with dataSource VolumeSnapshot {name} (marked in use meanwhile)\n  2. wait until it is bound (a WaitForFirstConsumer class binds when a pod first uses it)\n",
            p.target
        )),
        (Source::Archive { entry, .. }, Some(m)) => out.push_str(&format!(
            "  1. create {} empty\n  2. mover pod {} extracts {} into it (owners by number, modes, times, links, xattrs, holes)\n  3. verify entries and bytes against the archive's listing{}\n  on failure or interruption the new PVC is deleted\n",
            p.target,
            m.metadata.name.as_deref().unwrap_or_default(),
            entry.archive,
            entry
                .files
                .map(|f| format!(" ({f} files)"))
                .unwrap_or_default()
        )),
        (Source::Archive { .. }, None) => {}
    }
    out
}

#[cfg(test)]
mod tests;
