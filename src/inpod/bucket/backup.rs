//! The `bucket` action: bring the bucket's mirror (in [`paths::BUCKET`]) up to date with the
//! bucket, reading only the objects that changed since its last run, then copy the mirror into
//! a new archive of the series. The mirror holds each object's body at its
//! [`body_path`](crate::engines::bucket::body_path), the manifest of the last run (every
//! object's metadata, in key order) and, while a run goes on, a journal of the keys it is
//! replacing, so that a run killed half way leaves nothing the next one would trust wrongly.
//! Memory stays bounded: the listing is sorted on disk and merged with the manifest as streams.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Poll, ready};
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::sorted::{self, Sorter, Stopped, dedup};
use super::{client, io_fail, not_found, runtime, s3_fail};
use crate::engines::bucket::{
    Entry, EtagHasher, HEADER, Header, MANIFEST, Object, Paired, bare_etag, body_path, merge,
};
use crate::engines::output::Summary;
use crate::engines::{Tuning, borg, restic};
use crate::inpod::backup::{ensure_repository, incomplete, make_archive};
use crate::inpod::env::Env;
use crate::inpod::process::{Throttle, run_quiet};
use crate::inpod::{Fail, emit, log};
use crate::mover::job::{BucketJob, Engine, Failure, MoverEvent, Synced, paths};
use crate::s3::{Client, addressable};

/// Objects downloaded at once.
const FETCHES: usize = 8;
/// Keys of each kind (gone, changed, not addressable) the report shows; the log has all.
const KEYS_SHOWN: usize = 20;

/// Where things are in the bucket's volume.
struct Layout {
    /// What the archive is made of: the header, the manifest, the bodies.
    mirror: PathBuf,
    /// The journals, the next manifest, the engine's path list, downloads in progress.
    state: PathBuf,
}

impl Layout {
    fn tmp(&self) -> PathBuf {
        self.state.join("tmp")
    }
}

pub(in crate::inpod) fn bucket_backup(env: &Env, job: &BucketJob) -> Result<(), Fail> {
    ensure_repository(env)?;
    let root = Path::new(paths::BUCKET);
    let l = Layout {
        mirror: root.join("mirror"),
        state: root.join("state"),
    };
    if !job.kept {
        log(
            "info",
            format!(
                "bucket {}: no cache volume (spec.offsite.buckets[].cache): every object is downloaded",
                job.series.name
            ),
        );
    }
    let rt = runtime()?;
    let s3 = client(&job.place)?;
    let synced = rt.block_on(sync(&s3, job, &l))?;
    drop(s3);
    emit(&MoverEvent::BucketSynced(synced.clone()));
    let tuning = Tuning {
        compression: env.access.compression.as_deref(),
        upload_limit: job.limit,
        exclude: &[],
    };
    let parent = match env.access.engine {
        Engine::Restic => newest_snapshot(env, job)?,
        Engine::Borg => None,
    };
    let list = l.state.join("paths").display().to_string();
    let mirror = l.mirror.display().to_string();
    let summary: Summary = make_archive(
        env,
        &job.series,
        job.time,
        None,
        &mirror,
        &|wait| match env.access.engine {
            Engine::Borg => {
                borg::create_from_list(&env.borg_repo(wait), &job.series, job.time, tuning, &list)
            }
            Engine::Restic => env.restic_argv(restic::backup_mirror(
                &job.series,
                job.time,
                tuning,
                parent.as_deref(),
            )),
        },
    )?;
    if synced.unaddressable > 0 {
        let keys: Vec<String> = synced
            .unaddressable_keys
            .iter()
            .map(|k| crate::inpod::process::not_read(k, "this key cannot be addressed exactly"))
            .collect();
        return Err(incomplete(env, &summary.archive, &keys));
    }
    Ok(())
}

/// The series' newest restic snapshot, the parent of the next (unchanged files are not read).
fn newest_snapshot(env: &Env, job: &BucketJob) -> Result<Option<String>, Fail> {
    let argv = env.restic_argv(restic::snapshots(&job.series.restic_tags()));
    let out = run_quiet(&argv, env)?;
    if out.code != 0 {
        return Err(crate::inpod::process::diagnose(env, &out));
    }
    #[derive(serde::Deserialize)]
    struct Snap {
        id: String,
        time: String,
    }
    let snaps: Vec<Snap> = serde_json::from_str(out.stdout.trim()).map_err(|e| {
        Fail::new(
            Failure::Failed,
            format!("reading restic's list of snapshots: {e}"),
        )
    })?;
    let newest = snaps
        .into_iter()
        .filter_map(|s| s.time.parse::<jiff::Timestamp>().ok().map(|t| (t, s.id)))
        .max();
    Ok(newest.map(|(_, id)| id))
}

/// What the manifest of the last run says of a key, and whether a run that was stopped may
/// have replaced its body since.
struct Prev {
    key: String,
    entry: Option<Entry>,
    suspect: bool,
}

/// What to do with one key.
enum Step {
    Keep(Box<Entry>),
    Fetch(Object),
    Remove(String),
    Unaddressable(Object),
}

/// What was done with it.
enum Done {
    Keep(Entry),
    Fetched(Entry, bool),
    Gone(String),
    Removed(bool),
    Unaddressable(String),
}

/// Items of a merge until its first error, which goes into `cell`.
fn until_err<T>(
    items: impl Iterator<Item = Result<T, String>>,
    cell: Stopped,
) -> impl Iterator<Item = T> {
    items.map_while(move |r| match r {
        Ok(x) => Some(x),
        Err(e) => {
            *cell.borrow_mut() = Some(e);
            None
        }
    })
}

fn unchanged(e: &Entry, o: &Object, mirror: &Path) -> bool {
    e.listed_etag == o.etag
        && e.listed_modified == o.last_modified
        && e.meta.size == o.size
        && std::fs::metadata(mirror.join(body_path(&o.key)))
            .is_ok_and(|m| m.is_file() && m.len() == o.size)
}

async fn sync(s3: &Client, job: &BucketJob, l: &Layout) -> Result<Synced, Fail> {
    let started = Instant::now();
    let bucket = job.place.bucket.as_str();
    std::fs::create_dir_all(l.mirror.join(crate::engines::bucket::OBJECTS))
        .map_err(io_fail("making the mirror"))?;
    let _ = std::fs::remove_dir_all(l.tmp());
    std::fs::create_dir_all(l.tmp()).map_err(io_fail("making the mirror's state"))?;
    // The listing, sorted on disk.
    let mut sorter = Sorter::<Object>::new(&l.tmp()).map_err(io_fail("sorting the listing"))?;
    s3.list(&job.place.prefix, &mut |page| {
        for o in &page {
            sorter.push(o).map_err(|e| crate::s3::S3Error::Answer {
                what: "keeping the listing".into(),
                why: e.to_string(),
            })?;
        }
        Ok(())
    })
    .await
    .map_err(|e| s3_fail(bucket, e))?;
    let (listing, listed) = sorter
        .finish("listing")
        .map_err(io_fail("sorting the listing"))?;
    log(
        "info",
        format!(
            "bucket {bucket}: {listed} objects listed under {:?}",
            job.place.prefix
        ),
    );
    // Journals of runs that were stopped: their keys' bodies may have been replaced.
    let mut journals: Vec<(u64, PathBuf)> = std::fs::read_dir(&l.state)
        .map_err(io_fail("reading the mirror's state"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("journal.")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    journals.sort();
    let suspects = if journals.is_empty() {
        None
    } else {
        log(
            "warn",
            format!(
                "bucket {bucket}: an earlier backup was stopped half way; the objects it was replacing are read again"
            ),
        );
        let mut s = Sorter::<Object>::new(&l.tmp().join("journals"))
            .map_err(io_fail("reading the journals"))?;
        for (_, p) in &journals {
            let (items, stop) = sorted::read::<Object>(p).map_err(io_fail("reading a journal"))?;
            for o in items {
                s.push(&o).map_err(io_fail("reading a journal"))?;
            }
            // A journal's torn last line is expected of a killed run: what was read counts.
            drop(stop);
        }
        Some(
            s.finish("suspects")
                .map_err(io_fail("reading the journals"))?
                .0,
        )
    };
    let next_journal = l.state.join(format!(
        "journal.{}",
        journals.last().map(|(n, _)| n + 1).unwrap_or(1)
    ));
    let manifest = l.mirror.join(MANIFEST);
    let (list_items, list_stop) =
        sorted::read::<Object>(&listing).map_err(io_fail("reading the listing"))?;
    let (prev_items, prev_stop) =
        sorted::read::<Entry>(&manifest).map_err(io_fail("reading the last manifest"))?;
    let (susp_items, susp_stop) = match &suspects {
        Some(p) => sorted::read::<Object>(p).map_err(io_fail("reading the journals"))?,
        None => (
            Box::new(std::iter::empty()) as Box<dyn Iterator<Item = Object>>,
            Stopped::default(),
        ),
    };
    let merge_err = Stopped::default();
    let prevs = until_err(
        merge(prev_items, dedup(susp_items), |e| &e.key, |o| &o.key),
        merge_err.clone(),
    )
    .map(|p| match p {
        Paired::Left(e) => Prev {
            key: e.key.clone(),
            entry: Some(e),
            suspect: false,
        },
        Paired::Right(o) => Prev {
            key: o.key,
            entry: None,
            suspect: true,
        },
        Paired::Both(e, _) => Prev {
            key: e.key.clone(),
            entry: Some(e),
            suspect: true,
        },
    });
    let mirror = l.mirror.as_path();
    let steps = until_err(
        merge(dedup(list_items), prevs, |o| &o.key, |p| &p.key),
        merge_err.clone(),
    )
    .map(|p| match p {
        Paired::Right(prev) => Step::Remove(prev.key),
        Paired::Left(o) | Paired::Both(o, _) if !addressable(&o.key) => Step::Unaddressable(o),
        Paired::Both(o, prev) => match prev.entry {
            Some(e) if !prev.suspect && unchanged(&e, &o, mirror) => Step::Keep(Box::new(e)),
            _ => Step::Fetch(o),
        },
        Paired::Left(o) => Step::Fetch(o),
    });
    let mut journal = BufWriter::new(
        std::fs::File::create(&next_journal).map_err(io_fail("writing the journal"))?,
    );
    let next_manifest = l.state.join("manifest.new");
    let mut manifest_w = BufWriter::new(
        std::fs::File::create(&next_manifest).map_err(io_fail("writing the manifest"))?,
    );
    let list_path = l.state.join("paths");
    let mut paths_w =
        BufWriter::new(std::fs::File::create(&list_path).map_err(io_fail("writing the list"))?);
    writeln!(paths_w, "{HEADER}\n{MANIFEST}").map_err(io_fail("writing the list"))?;
    let limiter = job.limit.map(Limiter::new);
    let tmp = l.tmp();
    let mut n = 0u64;
    let mut out = Synced::default();
    {
        let limiter = limiter.as_ref();
        let mut fetches = futures::stream::iter(steps)
            .map(|step| {
                n += 1;
                // The journal names the key before its body can be replaced; a key it could
                // not name is not downloaded (the run fails).
                let journaled = match &step {
                    Step::Fetch(o) => {
                        let line = serde_json::to_string(o).unwrap_or_default();
                        writeln!(journal, "{line}").and_then(|()| journal.flush())
                    }
                    _ => Ok(()),
                };
                let tmp_file = tmp.join(format!("body-{n}"));
                async move {
                    journaled.map_err(io_fail("writing the journal"))?;
                    match step {
                        Step::Keep(e) => Ok(Done::Keep(*e)),
                        Step::Unaddressable(o) => {
                            remove_body(mirror, &o.key)?;
                            Ok(Done::Unaddressable(o.key))
                        }
                        Step::Remove(k) => Ok(Done::Removed(remove_body(mirror, &k)?)),
                        Step::Fetch(o) => fetch(s3, bucket, o, mirror, tmp_file, limiter).await,
                    }
                }
            })
            .buffered(FETCHES);
        let mut throttle = Throttle::default();
        let note = |keys: &mut Vec<String>, key: &str| {
            if keys.len() < KEYS_SHOWN {
                keys.push(key.to_owned());
            }
        };
        while let Some(done) = fetches.next().await {
            let (entry, fetched) = match done? {
                Done::Keep(e) => (e, None),
                Done::Fetched(e, changed) => (e, Some(changed)),
                Done::Gone(k) => {
                    out.gone += 1;
                    note(&mut out.gone_keys, &k);
                    log(
                        "warn",
                        format!(
                            "bucket {bucket}: {k:?} was listed but gone when read: not in the archive"
                        ),
                    );
                    continue;
                }
                Done::Removed(existed) => {
                    out.removed += u64::from(existed);
                    continue;
                }
                Done::Unaddressable(k) => {
                    out.unaddressable += 1;
                    note(&mut out.unaddressable_keys, &k);
                    continue;
                }
            };
            let line = serde_json::to_string(&entry)
                .map_err(|e| Fail::new(Failure::Failed, format!("writing the manifest: {e}")))?;
            writeln!(manifest_w, "{line}")
                .and_then(|()| writeln!(paths_w, "{}", body_path(&entry.key)))
                .map_err(io_fail("writing the manifest"))?;
            out.objects += 1;
            out.bytes += entry.meta.size;
            if let Some(changed) = fetched {
                out.fetched += 1;
                out.fetched_bytes += entry.meta.size;
                if changed {
                    out.changed += 1;
                    note(&mut out.changed_keys, &entry.key);
                    log(
                        "warn",
                        format!(
                            "bucket {bucket}: {:?} changed while the backup ran: the archive has the version read ({})",
                            entry.key,
                            entry.meta.etag.as_deref().unwrap_or("no ETag")
                        ),
                    );
                }
            }
            throttle.progress(out.fetched_bytes, None, out.objects);
        }
    }
    for (what, cell) in [
        ("the listing", &list_stop),
        ("the last manifest", &prev_stop),
        ("the journals", &susp_stop),
        ("the merge", &merge_err),
    ] {
        if let Some(e) = cell.borrow().as_ref() {
            return Err(Fail::new(
                Failure::Failed,
                format!(
                    "bucket {bucket}: {what} could not be read ({e}); nothing was archived (deleting the bucket's cache volume makes the next backup start afresh)"
                ),
            ));
        }
    }
    manifest_w
        .flush()
        .and_then(|()| paths_w.flush())
        .map_err(io_fail("writing the manifest"))?;
    drop((manifest_w, paths_w, journal));
    let header = Header {
        version: 1,
        endpoint: job.place.endpoint.clone(),
        bucket: bucket.to_owned(),
        prefix: job.place.prefix.clone(),
        objects: out.objects,
        bytes: out.bytes,
        gone: out.gone,
        changed: out.changed,
    };
    std::fs::write(
        l.mirror.join(HEADER),
        serde_json::to_vec_pretty(&header).unwrap_or_default(),
    )
    .map_err(io_fail("writing the bucket's header"))?;
    // The bodies reach the disk before the manifest that vouches for them.
    sync_volume(&l.mirror).map_err(io_fail("writing the mirror to its volume"))?;
    std::fs::rename(&next_manifest, &manifest).map_err(io_fail("writing the manifest"))?;
    for (_, p) in &journals {
        let _ = std::fs::remove_file(p);
    }
    let _ = std::fs::remove_file(&next_journal);
    let _ = std::fs::remove_dir_all(l.tmp());
    out.seconds = started.elapsed().as_secs_f64();
    log(
        "info",
        format!(
            "bucket {bucket}: {} objects ({} bytes), {} downloaded ({} bytes), {} removed from the mirror, {} gone and {} changed while read",
            out.objects,
            out.bytes,
            out.fetched,
            out.fetched_bytes,
            out.removed,
            out.gone,
            out.changed
        ),
    );
    Ok(out)
}

/// Removes a key's body from the mirror; whether there was one.
fn remove_body(mirror: &Path, key: &str) -> Result<bool, Fail> {
    match std::fs::remove_file(mirror.join(body_path(key))) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_fail("removing an object from the mirror")(e)),
    }
}

/// Flushes the filesystem `dir` is on (syncfs(2)).
fn sync_volume(dir: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let d = std::fs::File::open(dir)?;
    // SAFETY: the descriptor is open for the call's whole duration.
    if unsafe { libc::syncfs(d.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Downloads one object into the mirror (through a temporary file, renamed into place).
async fn fetch(
    s3: &Client,
    bucket: &str,
    o: Object,
    mirror: &Path,
    tmp: PathBuf,
    limiter: Option<&Limiter>,
) -> Result<Done, Fail> {
    let body = mirror.join(body_path(&o.key));
    let file = std::fs::File::create(&tmp).map_err(io_fail("writing a downloaded object"))?;
    let mut sink = Sink {
        file,
        hasher: EtagHasher::default(),
        limiter,
        pause: None,
    };
    match s3.get(&o.key, &mut sink).await {
        Ok(meta) => {
            sink.file
                .flush()
                .map_err(io_fail("writing a downloaded object"))?;
            let (md5, written_etag) = sink.hasher.finish();
            if let Some(parent) = body.parent() {
                std::fs::create_dir_all(parent).map_err(io_fail("writing the mirror"))?;
            }
            std::fs::rename(&tmp, &body).map_err(io_fail("writing the mirror"))?;
            let changed = meta.size != o.size
                || meta
                    .etag
                    .as_deref()
                    .is_some_and(|e| bare_etag(e) != bare_etag(&o.etag));
            // Another version than listed: the entry carries the ETag of the bytes read, and no
            // Last-Modified, so that the next run reads the object again.
            let (listed_etag, listed_modified) = match (&meta.etag, changed) {
                (Some(e), true) => (e.clone(), String::new()),
                (None, true) => (String::new(), String::new()),
                (_, false) => (o.etag, o.last_modified),
            };
            Ok(Done::Fetched(
                Entry {
                    key: o.key,
                    listed_etag,
                    listed_modified,
                    md5,
                    written_etag,
                    meta,
                },
                changed,
            ))
        }
        Err(e) if not_found(&e) => {
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::remove_file(&body);
            Ok(Done::Gone(o.key))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(s3_fail(bucket, e))
        }
    }
}

/// A download limit shared by every download of the run.
struct Limiter {
    rate: u64,
    start: Instant,
    bytes: AtomicU64,
}

impl Limiter {
    fn new(rate: u64) -> Limiter {
        Limiter {
            rate: rate.max(1),
            start: Instant::now(),
            bytes: AtomicU64::new(0),
        }
    }

    /// How long to pause after `n` more bytes, to stay under the rate.
    fn pause_after(&self, n: usize) -> Option<Duration> {
        let total = self.bytes.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        let due = Duration::from_secs_f64(total as f64 / self.rate as f64);
        due.checked_sub(self.start.elapsed())
            .filter(|d| !d.is_zero())
    }
}

/// A downloaded body's way into its file: hashed as it is written, paused by the limit.
struct Sink<'a> {
    file: std::fs::File,
    hasher: EtagHasher,
    limiter: Option<&'a Limiter>,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl tokio::io::AsyncWrite for Sink<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if let Some(p) = &mut this.pause {
            ready!(p.as_mut().poll(cx));
            this.pause = None;
        }
        this.file.write_all(buf)?;
        this.hasher.update(buf);
        if let Some(d) = this.limiter.and_then(|l| l.pause_after(buf.len())) {
            this.pause = Some(Box::pin(tokio::time::sleep(d)));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.get_mut().file.flush())
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
