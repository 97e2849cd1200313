//! The plan of a volume backup run, as data: for each selected PVC its source snapshot (the
//! newest ready one of this config, or `--from`), and for each repository a job: the clone PVC,
//! the mover pod and the archive it writes. Also how repositories are reached from a mover
//! ([`location`], [`access`]) and the `--dry-run` rendering. No I/O.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::Serialize;

use crate::config::{
    BorgEncryption, Config, Place, Repository, RepositoryKind, ResticCompression, SecretKeyRef,
};
use crate::engines::{Series, SeriesKind};
use crate::model::labels::{PVC, PVC_ANNOTATION};
use crate::model::repository::Location;
use crate::model::snapshots::{VolumeSnapshot, cut_time, is_ready};
use crate::mover::job::{Access, Action, Engine, Job, Ssh, paths};
use crate::mover::pod::{self, CloneSource, Context};
use crate::plan::selection::{self, Observed, Skipped};

/// One copy of one volume into one repository.
#[derive(Clone, Debug, Serialize)]
pub struct VolumeJob {
    /// Position in the run (names of the pod and clone).
    pub index: usize,
    /// The PVC.
    pub pvc: String,
    /// The source VolumeSnapshot.
    pub snapshot: String,
    /// Its cut (the archive's time).
    pub cut: Timestamp,
    /// The repository's name.
    pub repository: String,
    /// Which engine (`borg` or `restic` in JSON).
    pub engine: Engine,
    /// The borg archive name, or the restic tags.
    pub archive: String,
    /// The clone PVC.
    #[serde(skip)]
    pub clone: PersistentVolumeClaim,
    /// The mover pod.
    #[serde(skip)]
    pub pod: Pod,
    /// The clone's name.
    pub clone_name: String,
    /// The pod's name.
    pub pod_name: String,
    /// The job the pod runs.
    #[serde(skip)]
    pub job: Job,
    /// The repository's config (credentials, for a break-lock pod).
    #[serde(skip)]
    pub repo: Repository,
}

/// A run's plan.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// The run id.
    pub run_id: String,
    /// The jobs, by PVC then repository.
    pub jobs: Vec<VolumeJob>,
    /// PVCs left out, and why.
    pub skipped: Vec<SkippedVolume>,
    /// Copies already made by an earlier run (the source carries the repository's backed-up label).
    pub already: Vec<AlreadyCopied>,
}

/// A copy that an earlier run made.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AlreadyCopied {
    /// The PVC.
    pub pvc: String,
    /// The snapshot.
    pub snapshot: String,
    /// The repository.
    pub repository: String,
    /// The label's value (when it was copied).
    pub at: String,
}

/// A PVC left out of the run.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SkippedVolume {
    /// The PVC.
    pub pvc: String,
    /// Why.
    pub reason: String,
}

/// What the plan is made from.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The config.
    pub config: &'a Config,
    /// The namespace.
    pub namespace: &'a str,
    /// The run id.
    pub run_id: &'a str,
    /// The namespace's objects.
    pub observed: Observed<'a>,
    /// This config's VolumeSnapshots (or, with `from`, at least that one).
    pub snapshots: &'a [VolumeSnapshot],
    /// `--from`: back up this snapshot only.
    pub from: Option<&'a str>,
    /// `--target`: only these PVCs.
    pub targets: &'a [String],
    /// `--repository`: only these repositories.
    pub repositories: &'a [String],
    /// The kentledge pod, when running in a cluster.
    pub owner: Option<&'a OwnerReference>,
}

/// Where a mover finds a repository of the config: its location, or a path under
/// [`paths::REPOSITORY`] for one kept on a PVC.
pub fn location(repo: &Repository) -> Location {
    let kind = repo.kind();
    let text = match kind.place() {
        Place::Remote(r) => r.to_owned(),
        Place::Volume(p) => match p.path.as_deref().map(|s| s.trim_matches('/')) {
            Some(sub) if !sub.is_empty() => format!("{}/{sub}", paths::REPOSITORY),
            _ => paths::REPOSITORY.to_owned(),
        },
    };
    Location::parse(kind.engine(), &text).unwrap_or_else(|e| {
        panic!(
            "repository {}: validation accepts its location: {e}",
            repo.name
        )
    })
}

/// How a mover reaches a repository of the config.
pub fn access(repo: &Repository, namespace: &str) -> Access {
    let location = location(repo);
    let mover_prefix = pod::mover_prefix(namespace);
    let ssh = |key: &Option<SecretKeyRef>, known_hosts: &Option<SecretKeyRef>, insecure: bool| {
        location.ssh_target().map(|_| Ssh {
            key: key.is_some(),
            known_hosts: known_hosts.is_some(),
            insecure,
        })
    };
    match repo.kind() {
        RepositoryKind::Borg(b) => Access {
            name: repo.name.clone(),
            engine: Engine::Borg,
            init: b.init.then(|| encryption(b.encryption).to_owned()),
            passphrase: b.passphrase.is_some(),
            ssh: ssh(&b.ssh_key, &b.known_hosts, b.insecure_skip_host_key_check),
            lock_wait_secs: b.lock_wait.as_secs(),
            remote_path: b.remote_path.clone(),
            compression: b.compression.clone(),
            location: location.to_string(),
            mover_prefix,
        },
        RepositoryKind::Restic(r) => Access {
            name: repo.name.clone(),
            engine: Engine::Restic,
            init: r.init.then(String::new),
            passphrase: true,
            ssh: ssh(&r.ssh_key, &r.known_hosts, r.insecure_skip_host_key_check),
            lock_wait_secs: r.lock_wait.as_secs(),
            remote_path: None,
            compression: r.compression.map(|c| {
                match c {
                    ResticCompression::Auto => "auto",
                    ResticCompression::Off => "off",
                    ResticCompression::Max => "max",
                }
                .to_owned()
            }),
            location: location.to_string(),
            mover_prefix,
        },
    }
}

fn encryption(e: BorgEncryption) -> &'static str {
    match e {
        BorgEncryption::None => "none",
        BorgEncryption::Authenticated => "authenticated",
        BorgEncryption::AuthenticatedBlake2 => "authenticated-blake2",
        BorgEncryption::Repokey => "repokey",
        BorgEncryption::RepokeyBlake2 => "repokey-blake2",
    }
}

/// The PVC a snapshot was taken of (annotation, else label, else its source).
pub fn snapshot_pvc(vs: &VolumeSnapshot) -> Option<String> {
    let m = &vs.metadata;
    m.annotations
        .as_ref()
        .and_then(|a| a.get(PVC_ANNOTATION))
        .or_else(|| m.labels.as_ref().and_then(|l| l.get(PVC)))
        .cloned()
        .or_else(|| vs.spec.source.persistent_volume_claim_name.clone())
}

/// The newest ready, not deleting, snapshot of `pvc` among `snapshots` (safety snapshots of
/// in-place restores left out).
pub fn newest_ready<'a>(snapshots: &'a [VolumeSnapshot], pvc: &str) -> Option<&'a VolumeSnapshot> {
    snapshots
        .iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none() && is_ready(Some(s)))
        .filter(|s| snapshot_pvc(s).as_deref() == Some(pvc))
        // A safety snapshot holds what an in-place restore replaced: not a restore point to copy.
        .filter(|s| {
            !s.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(crate::model::labels::SAFETY_LABEL))
        })
        .max_by_key(|s| (cut_time(Some(s)), s.metadata.name.clone()))
}

/// Another snapshot of `pvc` than `snapshot`, labelled as copied to `repository`, whose borg
/// archive has the name `snapshot`'s would have (both cut in the same second): copying
/// `snapshot` would find that archive and take it for its own.
fn same_archive_copied<'a>(
    snapshots: &'a [VolumeSnapshot],
    pvc: &str,
    snapshot: &str,
    series: &Series,
    cut: Timestamp,
    repository: &str,
) -> Option<&'a str> {
    let label = crate::model::labels::backed_up_label(repository);
    let archive = series.borg_archive(cut);
    snapshots
        .iter()
        .filter(|s| s.metadata.name.as_deref() != Some(snapshot))
        .filter(|s| snapshot_pvc(s).as_deref() == Some(pvc))
        .filter(|s| {
            s.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(&label))
        })
        .find(|s| cut_time(Some(s)).is_some_and(|t| series.borg_archive(t) == archive))
        .and_then(|s| s.metadata.name.as_deref())
}

/// A snapshot clone's storage class, access modes and size: the config's `spec.mover.clone`,
/// else the source PVC's class and modes and the snapshot's `restoreSize` (else the PVC's
/// request, else 1Gi).
pub fn clone_shape(
    cfg: &crate::config::CloneSettings,
    source_pvc: Option<&PersistentVolumeClaim>,
    restore_size: Option<&str>,
) -> (Option<String>, Vec<String>, String) {
    let spec = source_pvc.and_then(|p| p.spec.as_ref());
    let storage_class = cfg
        .storage_class_name
        .clone()
        .or_else(|| spec.and_then(|s| s.storage_class_name.clone()));
    let access_modes: Vec<String> = if cfg.access_modes.is_empty() {
        spec.and_then(|s| s.access_modes.clone())
            .unwrap_or_default()
    } else {
        cfg.access_modes.iter().map(|m| format!("{m:?}")).collect()
    };
    let size = cfg
        .size
        .clone()
        .or_else(|| restore_size.map(String::from))
        .or_else(|| source_pvc.and_then(storage_request))
        .unwrap_or_else(|| "1Gi".into());
    (storage_class, access_modes, size)
}

/// A PVC's requested storage (`spec.resources.requests.storage`).
pub fn storage_request(p: &PersistentVolumeClaim) -> Option<String> {
    let requests = p.spec.as_ref()?.resources.as_ref()?.requests.as_ref()?;
    requests.get("storage").map(|q| q.0.clone())
}

/// Plans a run; every problem is reported at once.
pub fn plan(i: &Inputs<'_>) -> Result<Plan, Vec<String>> {
    let mut problems = Vec::new();
    let offsite = &i.config.spec.offsite;
    // Entries other than volumes (databases and buckets): their names are targets too.
    let databases: Vec<&String> = offsite
        .databases
        .iter()
        .map(|d| &d.name)
        .chain(offsite.buckets.iter().map(|b| &b.name))
        .collect();
    let no_volumes = crate::config::VolumeBackups::default();
    let volumes = match &offsite.volumes {
        Some(v) => v,
        None if !databases.is_empty() => &no_volumes,
        None => {
            return Err(vec![
                "spec.offsite has no volumes, databases or buckets: the config copies nothing offsite"
                    .into(),
            ]);
        }
    };
    // Repositories, in the config's order, narrowed by --repository.
    let offered: BTreeSet<&String> = volumes
        .repositories
        .iter()
        .chain(offsite.databases.iter().flat_map(|d| &d.repositories))
        .chain(offsite.buckets.iter().flat_map(|b| &b.repositories))
        .collect();
    for r in i.repositories {
        if !offered.contains(r) {
            problems.push(format!(
                "--repository {r}: not a repository spec.offsite copies to ({})",
                offered
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let repos: Vec<&Repository> = volumes
        .repositories
        .iter()
        .filter(|r| i.repositories.is_empty() || i.repositories.contains(r))
        .filter_map(|name| i.config.spec.repositories.iter().find(|r| &r.name == name))
        .collect();
    // Volumes and their sources.
    let mut skipped = Vec::new();
    let mut sources: Vec<(String, &VolumeSnapshot)> = Vec::new();
    if offsite.volumes.is_none() {
        if let Some(from) = i.from {
            problems.push(format!(
                "--from {from}: spec.offsite.volumes is not set: the config copies no volumes"
            ));
        }
        for t in i.targets.iter().filter(|t| !databases.contains(t)) {
            problems.push(format!(
                "--target {t}: not a volume, database or bucket this config backs up"
            ));
        }
    }
    if let Some(from) = i.from.filter(|_| offsite.volumes.is_some()) {
        match i
            .snapshots
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(from))
        {
            None => problems.push(format!(
                "--from {from}: no such VolumeSnapshot in namespace {}",
                i.namespace
            )),
            Some(s) if !is_ready(Some(s)) => {
                problems.push(format!("--from {from}: the snapshot is not ready to use"))
            }
            Some(s) => match snapshot_pvc(s) {
                Some(pvc) => sources.push((pvc, s)),
                None => problems.push(format!(
                    "--from {from}: cannot tell which PVC it was taken of"
                )),
            },
        }
    } else if offsite.volumes.is_some() {
        let chosen: Vec<String> = match &volumes.pvcs {
            Some(list) => list.clone(),
            None => {
                let sel = selection::select(&i.config.spec.snapshots, &i.observed, &[]);
                skipped.extend(
                    sel.skipped
                        .into_iter()
                        .map(|Skipped { pvc, reason }| SkippedVolume { pvc, reason }),
                );
                sel.chosen.into_iter().map(|c| c.pvc).collect()
            }
        };
        let set: BTreeSet<&String> = chosen.iter().collect();
        for t in i.targets {
            if !set.contains(t) && !databases.contains(&t) {
                problems.push(format!(
                    "--target {t}: not a volume, database or bucket this config backs up"
                ));
            }
        }
        let only_databases =
            !i.targets.is_empty() && i.targets.iter().all(|t| databases.contains(&t));
        for pvc in chosen
            .iter()
            .filter(|p| i.targets.is_empty() || i.targets.contains(p))
            .filter(|_| !only_databases)
        {
            match newest_ready(i.snapshots, pvc) {
                Some(s) => sources.push((pvc.clone(), s)),
                None => skipped.push(SkippedVolume {
                    pvc: pvc.clone(),
                    reason: "no ready snapshot of this config (run `kentledge snapshot` first, or use --snapshot-now)".into(),
                }),
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let ctx = Context {
        namespace: i.namespace,
        config: &i.config.metadata.name,
        run_id: i.run_id,
        owner: i.owner,
    };
    let mover = &i.config.spec.mover;
    let upload_limit = mover
        .bandwidth_limit
        .as_deref()
        .and_then(|b| crate::model::units::parse_byte_rate(b).ok());
    let mut jobs = Vec::new();
    let mut already = Vec::new();
    for (pvc, snap) in &sources {
        let source_pvc = i
            .observed
            .pvcs
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(pvc));
        let snapshot = snap.metadata.name.clone().unwrap_or_default();
        // The cut time names the archive and orders it for retention: never guess it.
        let Some(cut) = cut_time(Some(snap)) else {
            skipped.push(SkippedVolume {
                pvc: pvc.clone(),
                reason: format!(
                    "snapshot {snapshot} has no cut time (status.creationTime): the archive cannot be named"
                ),
            });
            continue;
        };
        let restore_size = snap
            .status
            .as_ref()
            .and_then(|st| st.restore_size.as_ref().map(|q| q.0.clone()));
        let (storage_class, access_modes, size) =
            clone_shape(&mover.clone, source_pvc, restore_size.as_deref());
        let series = Series {
            config: i.config.metadata.name.clone(),
            namespace: i.namespace.to_owned(),
            kind: SeriesKind::Volume,
            name: pvc.clone(),
        };
        for repo in &repos {
            if let Some(at) = snap
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(&crate::model::labels::backed_up_label(&repo.name)))
            {
                already.push(AlreadyCopied {
                    pvc: pvc.clone(),
                    snapshot: snapshot.clone(),
                    repository: repo.name.clone(),
                    at: at.clone(),
                });
                continue;
            }
            let repository = access(repo, i.namespace);
            if repository.engine == Engine::Borg
                && let Some(other) =
                    same_archive_copied(i.snapshots, pvc, &snapshot, &series, cut, &repo.name)
            {
                skipped.push(SkippedVolume {
                    pvc: pvc.clone(),
                    reason: format!(
                        "snapshot {snapshot} was cut in the same second as {other}, whose copy in repository {} is the archive {} (borg archive names carry the cut to the second): not copied; the next snapshot of {pvc} is",
                        repo.name,
                        series.borg_archive(cut)
                    ),
                });
                continue;
            }
            let index = jobs.len();
            let (pod_name, clone_name) = pod::names(i.namespace, i.run_id, index);
            let job = Job {
                repository,
                action: Action::Backup {
                    series: series.clone(),
                    cut,
                    snapshot: snapshot.clone(),
                    upload_limit,
                    exclude: volumes.exclude.clone(),
                },
            };
            let clone = pod::clone_pvc(
                &ctx,
                &clone_name,
                &CloneSource {
                    snapshot: &snapshot,
                    pvc,
                    storage_class: storage_class.as_deref(),
                    access_modes: access_modes.clone(),
                    size: &size,
                },
            );
            let pvc_label = crate::model::labels::pvc_label_value(pvc);
            let pod = pod::mover_pod(
                &ctx,
                &pod_name,
                mover,
                repo,
                &job,
                pod::Data::Clone(&clone_name),
                Some(&pvc_label),
            );
            let archive = match job.repository.engine {
                Engine::Borg => series.borg_archive(cut),
                Engine::Restic => series.restic_tags().join(","),
            };
            jobs.push(VolumeJob {
                index,
                pvc: pvc.clone(),
                snapshot: snapshot.clone(),
                cut,
                repository: repo.name.clone(),
                engine: job.repository.engine,
                archive,
                clone,
                pod,
                clone_name,
                pod_name,
                job,
                repo: (*repo).clone(),
            });
        }
    }
    Ok(Plan {
        run_id: i.run_id.to_owned(),
        jobs,
        skipped,
        already,
    })
}

/// The `--dry-run` text.
pub fn render(plan: &Plan, config: &Config, namespace: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "backup run {} of config {} in namespace {namespace} (dry run: nothing is changed)",
        plan.run_id, config.metadata.name
    );
    if plan.jobs.is_empty() {
        out.push_str("nothing to copy\n");
    }
    for j in &plan.jobs {
        let _ = writeln!(
            out,
            "\n{} → {} ({})\n  source   {} (cut {})\n  clone    {}\n  mover    {} (image {}, timeout {})\n  archive  {}",
            j.pvc,
            j.repository,
            j.engine,
            j.snapshot,
            j.cut,
            j.clone_name,
            j.pod_name,
            config.spec.mover.image,
            config.spec.mover.timeout,
            j.archive
        );
    }
    for a in &plan.already {
        let _ = writeln!(
            out,
            "\n{} → {}: already copied ({} carries {}={})",
            a.pvc,
            a.repository,
            a.snapshot,
            crate::model::labels::backed_up_label(&a.repository),
            a.at
        );
    }
    for s in &plan.skipped {
        let _ = writeln!(out, "\nskipped {}: {}", s.pvc, s.reason);
    }
    let _ = writeln!(
        out,
        "\nborg repositories take one volume at a time; at most {} mover pods run at once",
        config.spec.mover.concurrency
    );
    out
}

#[cfg(test)]
mod tests;
