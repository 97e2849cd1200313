//! A bucket restore as data: which archive of the bucket's series (as for volumes, failing
//! closed), which bucket and prefix its objects go to (`--to-bucket`, `--to-prefix`, else the
//! entry's own), what a target's differing and extra objects are allowed (`--overwrite`,
//! `--delete-extra`), and the mover pod that does it; printed by `--dry-run` (the mover then
//! only plans, and says what would change).

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use super::{ArchiveQuery, Source, choose_series_archive};
use crate::config::{BucketBackup, Config, Repository};
use crate::engines::SeriesKind;
use crate::mover::job::{Action, ArchiveEntry, BucketPlace, Job, RestoreBucketJob};
use crate::mover::pod;
use crate::plan::backup::access;
use crate::plan::buckets::{place, series};

/// A planned bucket restore.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketRestorePlan {
    /// The `spec.offsite.buckets` entry.
    pub name: String,
    /// The archive.
    pub source: Source,
    /// Where the objects go.
    pub target: BucketPlace,
    /// Rewrite differing objects.
    pub overwrite: bool,
    /// Delete extra objects.
    pub delete_extra: bool,
    /// The mover pod's name.
    pub pod_name: String,
    /// The mover pod.
    #[serde(skip)]
    pub mover: Pod,
    /// Its job.
    #[serde(skip)]
    pub job: Job,
    /// The repository's config.
    #[serde(skip)]
    pub repo: Repository,
}

/// What a bucket restore is made from.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The config.
    pub config: &'a Config,
    /// Names and owner of the run's objects.
    pub ctx: &'a pod::Context<'a>,
    /// The entry.
    pub entry: &'a BucketBackup,
    /// The repository.
    pub repo: &'a Repository,
    /// Its listing.
    pub entries: &'a [ArchiveEntry],
    /// `--archive`, `--as-of`.
    pub query: ArchiveQuery<'a>,
    /// `--to-bucket`.
    pub to_bucket: Option<&'a str>,
    /// `--to-prefix`.
    pub to_prefix: Option<&'a str>,
    /// `--overwrite`.
    pub overwrite: bool,
    /// `--delete-extra`.
    pub delete_extra: bool,
    /// `--dry-run`: the mover only plans.
    pub dry_run: bool,
    /// The mover's index in the run (the listing took the first).
    pub index: usize,
}

/// Plans a bucket restore; a refusal says why, and nothing is changed.
pub fn plan(i: &Inputs<'_>) -> Result<BucketRestorePlan, String> {
    let b = i.entry;
    let source = choose_series_archive(i.entries, i.repo, SeriesKind::Bucket, &b.name, i.query)?;
    let Source::Archive { entry, .. } = &source else {
        unreachable!("archives only")
    };
    let target = place(b, i.to_bucket, i.to_prefix);
    let job = Job {
        repository: access(i.repo, i.ctx.namespace),
        action: Action::RestoreBucket(RestoreBucketJob {
            series: series(i.config, i.ctx.namespace, b),
            archive: entry.archive.clone(),
            target: target.clone(),
            overwrite: i.overwrite,
            delete_extra: i.delete_extra,
            dry_run: i.dry_run,
        }),
    };
    let (pod_name, _) = pod::names(i.ctx.namespace, i.ctx.run_id, i.index);
    let mover_pod = pod::bucket_pod(
        i.ctx,
        &pod_name,
        &i.config.spec.mover,
        i.repo,
        &job,
        b,
        false,
    );
    Ok(BucketRestorePlan {
        name: b.name.clone(),
        source,
        target,
        overwrite: i.overwrite,
        delete_extra: i.delete_extra,
        pod_name,
        mover: mover_pod,
        job,
        repo: i.repo.clone(),
    })
}

/// The plan's text (the mover's counts follow it in the report).
pub fn render(p: &BucketRestorePlan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "restore of bucket {}\n  from       {}\n  into       s3 {}/{} at {}\n  objects the target has with other bytes: {}\n  objects the target has that the archive lacks: {}\n  mover      {}",
        p.name,
        p.source.describe(),
        p.target.bucket,
        p.target.prefix,
        p.target.endpoint,
        if p.overwrite {
            "rewritten (--overwrite)"
        } else {
            "refused, nothing is changed (--overwrite rewrites them)"
        },
        if p.delete_extra {
            "deleted (--delete-extra)"
        } else if p.overwrite {
            "left as they are"
        } else {
            "refused, nothing is changed (--delete-extra deletes them, --overwrite leaves them)"
        },
        p.pod_name,
    );
    out
}
