//! The plan of the bucket part of a backup run, as data: for each `spec.offsite.buckets` entry
//! and each of its repositories one mover pod that brings the bucket's mirror up to date (only
//! changed objects are downloaded when the entry has a cache volume) and archives it into the
//! bucket's series. Copies of one bucket run one after another (they share its mirror). No I/O.

use std::fmt::Write as _;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use crate::config::{BucketBackup, Config, Repository};
use crate::engines::{Series, SeriesKind};
use crate::mover::job::{Action, BucketJob, BucketPlace, Engine, Job};
use crate::mover::pod::{self, Context};
use crate::plan::backup::access;

/// The region a bucket entry without one is signed for.
pub const DEFAULT_REGION: &str = "us-east-1";

/// One bucket's copy into one repository.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketCopy {
    /// Position in the run (the mover pod's name).
    pub index: usize,
    /// The `spec.offsite.buckets` entry.
    pub name: String,
    /// The bucket.
    pub bucket: String,
    /// The prefix ("" for the whole bucket).
    pub prefix: String,
    /// The repository's name.
    pub repository: String,
    /// Which engine stores it.
    pub repository_engine: Engine,
    /// The mover pod's name.
    pub pod_name: String,
    /// The bucket's cache volume, when the entry has one.
    pub cache: Option<String>,
    /// The mover pod.
    #[serde(skip)]
    pub mover: Pod,
    /// The job it runs.
    #[serde(skip)]
    pub job: Job,
    /// The repository's config.
    #[serde(skip)]
    pub repo: Repository,
}

/// What the plan is made from.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The config.
    pub config: &'a Config,
    /// Names and owner of the run's objects.
    pub ctx: &'a Context<'a>,
    /// Only these entries (`--target`); empty: all.
    pub targets: &'a [String],
    /// Only these repositories (`--repository`); empty: all.
    pub repositories: &'a [String],
    /// The index of the first job (after the volume and database jobs).
    pub first_index: usize,
    /// The archives' time (the run's start).
    pub time: Timestamp,
}

/// Where an entry's bucket is, for a mover (`prefix` instead of the entry's when given).
pub fn place(b: &BucketBackup, bucket: Option<&str>, prefix: Option<&str>) -> BucketPlace {
    BucketPlace {
        endpoint: b.endpoint.clone(),
        region: b.region.clone().unwrap_or_else(|| DEFAULT_REGION.into()),
        bucket: bucket.unwrap_or(&b.bucket).to_owned(),
        prefix: prefix
            .map(String::from)
            .unwrap_or_else(|| b.prefix.clone().unwrap_or_default()),
        path_style: b.path_style,
    }
}

/// The series of a bucket entry.
pub fn series(config: &Config, namespace: &str, b: &BucketBackup) -> Series {
    Series {
        config: config.metadata.name.clone(),
        namespace: namespace.to_owned(),
        kind: SeriesKind::Bucket,
        name: b.name.clone(),
    }
}

/// Plans the bucket copies of a run.
pub fn plan(i: &Inputs<'_>) -> Vec<BucketCopy> {
    let spec = &i.config.spec;
    let mover = &spec.mover;
    let limit = mover
        .bandwidth_limit
        .as_deref()
        .and_then(|b| crate::model::units::parse_byte_rate(b).ok());
    let mut jobs = Vec::new();
    for b in spec
        .offsite
        .buckets
        .iter()
        .filter(|b| i.targets.is_empty() || i.targets.contains(&b.name))
    {
        for repo in b
            .repositories
            .iter()
            .filter(|r| i.repositories.is_empty() || i.repositories.contains(r))
            .filter_map(|name| spec.repositories.iter().find(|r| &r.name == name))
        {
            let index = i.first_index + jobs.len();
            let (mover_name, _) = pod::names(i.ctx.namespace, i.ctx.run_id, index);
            let kept = b.cache_volume().is_some();
            let job = Job {
                repository: access(repo, i.ctx.namespace),
                action: Action::Bucket(BucketJob {
                    series: series(i.config, i.ctx.namespace, b),
                    place: place(b, None, None),
                    time: i.time,
                    limit,
                    kept,
                }),
            };
            let mover_pod = pod::bucket_pod(i.ctx, &mover_name, mover, repo, &job, b, kept);
            jobs.push(BucketCopy {
                index,
                name: b.name.clone(),
                bucket: b.bucket.clone(),
                prefix: b.prefix.clone().unwrap_or_default(),
                repository: repo.name.clone(),
                repository_engine: job.repository.engine,
                pod_name: mover_name,
                cache: kept.then(|| pod::bucket_cache_name(i.ctx.config, &b.name)),
                mover: mover_pod,
                job,
                repo: repo.clone(),
            });
        }
    }
    jobs
}

/// The `--dry-run` text of the bucket copies.
pub fn render(jobs: &[BucketCopy], config: &Config) -> String {
    let mut out = String::new();
    for j in jobs {
        let cache = match &j.cache {
            Some(c) => {
                format!("{c} (the mirror, kept between runs: only changed objects are downloaded)")
            }
            None => "none: every object is downloaded into an emptyDir".into(),
        };
        let _ = writeln!(
            out,
            "\nbucket {} (s3 {}/{}) → {} ({})\n  cache      {cache}\n  mover      {} (image {}, timeout {})\n  series     {}",
            j.name,
            j.bucket,
            j.prefix,
            j.repository,
            j.repository_engine,
            j.pod_name,
            config.spec.mover.image,
            config.spec.mover.timeout,
            j.name,
        );
    }
    out
}
