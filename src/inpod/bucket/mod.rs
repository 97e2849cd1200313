//! The in-pod side of buckets: the S3 client from the mounted keys (never from arguments), a
//! Tokio runtime for it, key-ordered files of listings (sorted on disk, so memory stays bounded
//! whatever the bucket's size), and the two actions: a backup through the bucket's mirror
//! ([`backup`]) and a restore from an archive's tar stream ([`restore`]).

mod backup;
mod restore;
mod sorted;

pub(super) use backup::bucket_backup;
pub(super) use restore::bucket_restore;

use std::path::{Path, PathBuf};

use super::Fail;
use crate::engines::bucket::Object;
use crate::mover::job::{BucketPlace, Failure, paths};
use crate::s3::{Client, Endpoint, S3Error};

/// A file-system error as a failed run, saying what was being done.
fn io_fail(what: &str) -> impl Fn(std::io::Error) -> Fail + '_ {
    move |e| Fail::new(Failure::Failed, format!("{what}: {e}"))
}

/// The bucket's client, with the keys read from their mounted files.
fn client(place: &BucketPlace) -> Result<Client, Fail> {
    let read = |path: &str, what: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
            .map_err(|e| Fail::new(Failure::BadJob, format!("reading the {what} file: {e}")))
    };
    let endpoint = Endpoint {
        url: place.endpoint.clone(),
        region: place.region.clone(),
        bucket: place.bucket.clone(),
        path_style: place.path_style,
        access_key: read(paths::S3_ACCESS_KEY, "S3 access key id")?,
        secret_key: read(paths::S3_SECRET_KEY, "S3 secret access key")?,
    };
    Client::new(&endpoint).map_err(|e| s3_fail(&place.bucket, e))
}

/// A single-threaded runtime: the bucket's client lives on it for the whole action.
fn runtime() -> Result<tokio::runtime::Runtime, Fail> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Fail::new(Failure::Failed, format!("starting the S3 client: {e}")))
}

/// An S3 error as the mover's failure, naming the bucket (never a URL or a key's secret).
fn s3_fail(bucket: &str, e: S3Error) -> Fail {
    let hint = match &e {
        S3Error::Status { status: 403, .. } => {
            " (check the credentials' Secret, the region and the bucket's policy)"
        }
        S3Error::Status { status: 301, .. } | S3Error::Status { status: 400, .. } => {
            " (check the region and pathStyle)"
        }
        S3Error::Status { status: 404, .. } => " (does the bucket exist?)",
        S3Error::Transport { .. } => " (is the endpoint reachable from the mover pod?)",
        _ => "",
    };
    Fail::new(Failure::Failed, format!("bucket {bucket}: {e}{hint}"))
}

/// Whether an S3 error says the object is not there.
fn not_found(e: &S3Error) -> bool {
    matches!(e, S3Error::Status { status: 404, .. })
}

/// Lists `prefix` of the client's bucket into the key-ordered file `name` in `dir`; with how
/// many objects it holds.
async fn list_sorted(
    s3: &Client,
    place: &BucketPlace,
    dir: &Path,
    name: &str,
) -> Result<(PathBuf, u64), Fail> {
    let io = |e: std::io::Error| Fail::new(Failure::Failed, format!("sorting the listing: {e}"));
    let mut sorter = sorted::Sorter::<Object>::new(dir).map_err(io)?;
    s3.list(&place.prefix, &mut |page| {
        for o in &page {
            sorter.push(o).map_err(|e| S3Error::Answer {
                what: "keeping the listing".into(),
                why: e.to_string(),
            })?;
        }
        Ok(())
    })
    .await
    .map_err(|e| s3_fail(&place.bucket, e))?;
    sorter.finish(name).map_err(io)
}
