//! The `restore-bucket` action: read the archive's header and manifest, list the target's
//! prefix, and plan: which objects are new, which the target has with the same bytes, which it
//! has with other bytes, which it has that the archive does not. Without `--overwrite` a
//! differing object, and without `--overwrite` or `--delete-extra` an extra one, stops the
//! restore before anything is written. Then the archive's tar stream (`borg export-tar`,
//! `restic dump`: objects in key order, as the mirror laid them out) is merged with the
//! manifest and the target's listing, and each object is written with its metadata (above
//! 16 MiB by a multipart upload), its bytes checked against the MD5 the backup recorded.
//! A mover stopped by SIGTERM (its pod deleted) stops between objects or parts and aborts an
//! upload in parts, so no invisible parts are left in the target.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::task::Poll;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};
use tokio::sync::mpsc;

use super::sorted;
use super::{client, io_fail, list_sorted, runtime, s3_fail};
use crate::engines::bucket::{
    Decision, Entry, HEADER, Header, MANIFEST, MULTIPART_ABOVE, Object, PART_SIZE, Paired, decide,
    key_of, merge, same_bytes, target_key,
};
use crate::engines::{borg, restic};
use crate::inpod::env::Env;
use crate::inpod::stop::{stop_on_sigterm, stopped};
use crate::inpod::{Fail, emit, log};
use crate::mover::job::{
    BucketPlan, BucketRestored, Engine, Failure, MoverEvent, RestoreBucketJob, paths,
};
use crate::s3::Client;

/// Keys of each kind the plan shows.
const KEYS_SHOWN: usize = 20;
/// Why the writing ended when the pod was deleted.
const STOPPED: &str = "stopped (SIGTERM): the mover pod was deleted";
/// Bytes of a body read from the tar stream at once.
const PIECE: usize = 1 << 20;

pub(in crate::inpod) fn bucket_restore(env: &Env, job: &RestoreBucketJob) -> Result<(), Fail> {
    // Deleting the pod stops the writing between two objects or two parts; an upload in
    // parts is aborted then, so the target is left without parts nobody can see.
    stop_on_sigterm();
    let scratch = Path::new(paths::CACHE).join(format!("bucket-restore-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(io_fail("making a scratch directory"))?;
    let result = restore_in(env, job, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn restore_in(env: &Env, job: &RestoreBucketJob, scratch: &Path) -> Result<(), Fail> {
    let header_file = scratch.join(HEADER);
    extract_file(env, &job.archive, HEADER, &header_file)?;
    let header: Header = serde_json::from_slice(
        &std::fs::read(&header_file).map_err(io_fail("reading the archive's header"))?,
    )
    .map_err(|e| {
        Fail::new(
            Failure::Failed,
            format!(
                "archive {} is not a kentledge bucket archive ({HEADER}: {e})",
                job.archive
            ),
        )
    })?;
    let manifest = scratch.join(MANIFEST);
    extract_file(env, &job.archive, MANIFEST, &manifest)?;
    log(
        "info",
        format!(
            "archive {}: {} objects ({} bytes) of bucket {} under {:?}",
            job.archive, header.objects, header.bytes, header.bucket, header.prefix
        ),
    );
    let rt = runtime()?;
    let s3 = client(&job.target)?;
    rt.block_on(async {
        let (listing, _) = list_sorted(&s3, &job.target, &scratch.join("target"), "listing").await?;
        let plan = plan(job, &header, &s3, &manifest, &listing).await?;
        emit(&MoverEvent::BucketPlan(plan.clone()));
        if job.dry_run {
            return Ok(());
        }
        if !plan.proceed {
            let mut why = Vec::new();
            if plan.differ > 0 && !job.overwrite {
                why.push(format!(
                    "{} object(s) under the target prefix have other bytes (--overwrite rewrites them)",
                    plan.differ
                ));
            }
            if plan.extra > 0 && !job.overwrite && !job.delete_extra {
                why.push(format!(
                    "{} object(s) under the target prefix are not in the archive (--delete-extra deletes them, --overwrite leaves them)",
                    plan.extra
                ));
            }
            return Err(Fail::new(
                Failure::Failed,
                format!("nothing was changed: {}", why.join("; ")),
            ));
        }
        apply(env, job, &header, &s3, &manifest, &listing).await
    })
}

/// Writes one file of the archive into `to`.
fn extract_file(env: &Env, archive: &str, file: &str, to: &Path) -> Result<(), Fail> {
    let argv = match env.access.engine {
        Engine::Borg => borg::extract_stdout(&env.borg_repo(60), archive, file),
        Engine::Restic => env.restic_argv(restic::dump(archive, file)),
    };
    let out = std::fs::File::create(to).map_err(io_fail("writing a scratch file"))?;
    let mut child = spawn(env, &argv, Stdio::from(out))?;
    let said = read_stderr(&mut child);
    let status = child.wait().map_err(io_fail("waiting for the engine"))?;
    if status.success() {
        Ok(())
    } else {
        Err(Fail::new(
            Failure::Failed,
            format!(
                "reading {file} of archive {archive}: {}",
                said.unwrap_or_else(|| format!("the engine exited with {status}"))
            ),
        ))
    }
}

fn spawn(env: &Env, argv: &[String], stdout: Stdio) -> Result<Child, Fail> {
    Command::new(&argv[0])
        .args(&argv[1..])
        .envs(env.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Fail::new(Failure::Failed, format!("starting {}: {e}", argv[0])))
}

/// The engine's last words (borg's JSON log messages, restic's lines), if it said any.
fn read_stderr(child: &mut Child) -> Option<String> {
    last_words(child.stderr.take()?)
}

/// The last three things said on `err` until it ends.
fn last_words(err: impl Read) -> Option<String> {
    let mut last = Vec::new();
    for line in BufReader::new(err).lines().map_while(Result::ok) {
        let text = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v["message"].as_str().map(String::from))
            .unwrap_or(line);
        if !text.trim().is_empty() {
            last.push(text);
        }
    }
    let tail: Vec<String> = last.into_iter().rev().take(3).collect();
    (!tail.is_empty()).then(|| tail.into_iter().rev().collect::<Vec<_>>().join("; "))
}

/// The merge of the archive's objects (with their target keys) and the target's listing.
type Joined = Box<dyn Iterator<Item = Result<Paired<(String, Entry), Object>, String>>>;

/// Where each stream of a [`Joined`] stopped early, by name.
type Stops = [(&'static str, sorted::Stopped); 2];

/// The archive's manifest joined with the target's listing, and where reading them stopped
/// early (check once the steps are used up).
fn joined(
    job: &RestoreBucketJob,
    header: &Header,
    manifest: &Path,
    listing: &Path,
) -> Result<(Joined, Stops), Fail> {
    let (entries, m_stop) =
        sorted::read::<Entry>(manifest).map_err(io_fail("reading the manifest"))?;
    let (targets, t_stop) =
        sorted::read::<Object>(listing).map_err(io_fail("reading the listing"))?;
    let (from, to) = (header.prefix.clone(), job.target.prefix.clone());
    let mapped = entries.filter_map(move |e| match target_key(&e.key, &from, &to) {
        Some(k) => Some((k, e)),
        None => {
            // A directory marker of the archive's prefix itself, restored to no prefix.
            log(
                "warn",
                format!(
                    "object {:?} would have an empty key under the target prefix: not restored",
                    e.key
                ),
            );
            None
        }
    });
    let steps = merge(mapped, targets, |(k, _)| k, |o| &o.key);
    Ok((
        Box::new(steps),
        [("the manifest", m_stop), ("the target's listing", t_stop)],
    ))
}

fn check(cells: &[(&'static str, sorted::Stopped)]) -> Result<(), Fail> {
    for (what, cell) in cells {
        if let Some(e) = cell.borrow().as_ref() {
            return Err(Fail::new(
                Failure::Failed,
                format!("{what}: {e}; nothing more was changed"),
            ));
        }
    }
    Ok(())
}

async fn plan(
    job: &RestoreBucketJob,
    header: &Header,
    s3: &Client,
    manifest: &Path,
    listing: &Path,
) -> Result<BucketPlan, Fail> {
    let (steps, stops) = joined(job, header, manifest, listing)?;
    let mut p = BucketPlan::default();
    for step in steps {
        let step = step.map_err(|e| Fail::new(Failure::Failed, e))?;
        let (k, e, present) = match step {
            Paired::Right(t) => {
                p.extra += 1;
                if p.extra_keys.len() < KEYS_SHOWN {
                    p.extra_keys.push(t.key);
                }
                continue;
            }
            Paired::Left((k, e)) => (k, e, None),
            Paired::Both((k, e), t) => (k, e, Some(t)),
        };
        p.objects += 1;
        p.bytes += e.meta.size;
        // The listing tells the bytes; the metadata of an object with the same bytes takes
        // its HEAD.
        let target = match present {
            Some(t) if same_bytes(&e, t.size, &t.etag) => s3
                .head(&k)
                .await
                .map_err(|x| s3_fail(&job.target.bucket, x))?,
            Some(t) => Some(crate::engines::bucket::Metadata {
                size: t.size,
                etag: Some(t.etag),
                ..Default::default()
            }),
            None => None,
        };
        match decide(&e, target.as_ref(), false) {
            Decision::Write => {
                p.new += 1;
                p.new_bytes += e.meta.size;
            }
            Decision::Same => p.same += 1,
            _ => {
                p.differ += 1;
                p.differ_bytes += e.meta.size;
                if p.differ_keys.len() < KEYS_SHOWN {
                    p.differ_keys.push(k);
                }
            }
        }
    }
    check(&stops)?;
    let differ_ok = p.differ == 0 || job.overwrite;
    let extra_ok = p.extra == 0 || job.overwrite || job.delete_extra;
    p.proceed = !job.dry_run && differ_ok && extra_ok;
    Ok(p)
}

/// A piece of the archive's tar stream.
enum Piece {
    /// An object's body starts (its key in the archive, its size).
    Start(String, u64),
    /// Bytes of it.
    Data(Bytes),
    /// It ended.
    End,
    /// The stream could not be read.
    Broken(String),
}

/// Reads the tar stream, passing on the objects' bodies (other entries are skipped).
fn read_tar(from: impl Read, tx: &mpsc::Sender<Piece>) -> Result<(), String> {
    let mut ar = tar::Archive::new(from);
    for e in ar.entries().map_err(|e| e.to_string())? {
        let mut e = e.map_err(|e| e.to_string())?;
        if !e.header().entry_type().is_file() {
            continue;
        }
        let path = e
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        let Some(key) = key_of(&path) else { continue };
        // The entry's size (a PAX header's for a body of 8 GiB or more), not the ustar field's.
        let size = e.size();
        if tx.blocking_send(Piece::Start(key, size)).is_err() {
            return Ok(());
        }
        let mut buf = vec![0u8; PIECE];
        loop {
            let n = e.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            if tx
                .blocking_send(Piece::Data(Bytes::copy_from_slice(&buf[..n])))
                .is_err()
            {
                return Ok(());
            }
        }
        if tx.blocking_send(Piece::End).is_err() {
            return Ok(());
        }
    }
    // The archive's end blocks and padding: read to the end, so the engine exits on its own.
    std::io::copy(&mut ar.into_inner(), &mut std::io::sink()).map_err(|e| e.to_string())?;
    Ok(())
}

/// The archive's bodies in order, as the restore takes them.
struct Bodies {
    rx: mpsc::Receiver<Piece>,
    orphans: u64,
}

impl Bodies {
    /// Moves to the start of `key`'s body; bodies before it that the manifest does not list
    /// are skipped (and counted).
    async fn seek(&mut self, key: &str) -> Result<u64, Fail> {
        loop {
            match self.rx.recv().await {
                Some(Piece::Start(k, size)) if k == key => return Ok(size),
                Some(Piece::Start(k, _)) if k.as_bytes() < key.as_bytes() => {
                    self.orphans += 1;
                    self.skip().await?;
                }
                Some(Piece::Start(k, _)) => {
                    return Err(Fail::new(
                        Failure::Failed,
                        format!("the archive lacks the body of {key:?} (next is {k:?})"),
                    ));
                }
                Some(Piece::Broken(why)) => return Err(broken(&why)),
                Some(_) => {}
                None => {
                    return Err(Fail::new(
                        Failure::Failed,
                        format!("the archive ended before the body of {key:?}"),
                    ));
                }
            }
        }
    }

    /// Reads past the rest of the current body.
    async fn skip(&mut self) -> Result<(), Fail> {
        loop {
            match self.rx.recv().await {
                Some(Piece::Data(_)) => {}
                Some(Piece::End) | None => return Ok(()),
                Some(Piece::Broken(why)) => return Err(broken(&why)),
                Some(Piece::Start(..)) => return Ok(()),
            }
        }
    }

    /// The rest of the current body, whole (a small object).
    async fn whole(&mut self, size: u64) -> Result<Bytes, Fail> {
        let mut b = BytesMut::with_capacity(size as usize);
        loop {
            match self.rx.recv().await {
                Some(Piece::Data(d)) => b.extend_from_slice(&d),
                Some(Piece::End) => return Ok(b.freeze()),
                Some(Piece::Broken(why)) => return Err(broken(&why)),
                _ => return Err(broken("a body ended early")),
            }
        }
    }
}

fn broken(why: &str) -> Fail {
    Fail::new(
        Failure::Failed,
        format!("the archive's tar stream cannot be read: {why}"),
    )
}

fn md5_hex(bytes: &[u8]) -> String {
    crate::engines::bucket::hex(&Md5::digest(bytes))
}

/// The current body as a reader for a multipart upload: its MD5 checked at its end (a
/// mismatch fails the read, so the upload is aborted).
struct BodyReader<'a> {
    bodies: &'a mut Bodies,
    piece: Bytes,
    md5: Md5,
    want: &'a str,
    done: bool,
}

impl tokio::io::AsyncRead for BodyReader<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if stopped() {
            return Poll::Ready(Err(std::io::Error::other(STOPPED)));
        }
        while this.piece.is_empty() && !this.done {
            match std::task::ready!(this.bodies.rx.poll_recv(cx)) {
                Some(Piece::Data(d)) => {
                    this.md5.update(&d);
                    this.piece = d;
                }
                Some(Piece::End) => {
                    this.done = true;
                    let got =
                        crate::engines::bucket::hex(&std::mem::take(&mut this.md5).finalize());
                    if got != this.want {
                        return Poll::Ready(Err(std::io::Error::other(format!(
                            "the archive's bytes have MD5 {got}, the backup recorded {}",
                            this.want
                        ))));
                    }
                }
                Some(Piece::Broken(why)) => {
                    return Poll::Ready(Err(std::io::Error::other(why)));
                }
                _ => return Poll::Ready(Err(std::io::Error::other("a body ended early"))),
            }
        }
        let n = this.piece.len().min(buf.remaining());
        buf.put_slice(&this.piece.split_to(n));
        Poll::Ready(Ok(()))
    }
}

async fn apply(
    env: &Env,
    job: &RestoreBucketJob,
    header: &Header,
    s3: &Client,
    manifest: &Path,
    listing: &Path,
) -> Result<(), Fail> {
    let started = Instant::now();
    let bucket = job.target.bucket.as_str();
    let argv = match env.access.engine {
        Engine::Borg => borg::export_tar(&env.borg_repo(60), &job.archive),
        Engine::Restic => env.restic_argv(restic::dump_tree(&job.archive)),
    };
    let mut child = spawn(env, &argv, Stdio::piped())?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Fail::new(Failure::Failed, "the engine's output is missing"))?;
    // The engine's words are read as they come, so a full stderr pipe never stalls the stream.
    let stderr = child.stderr.take();
    let words = std::thread::spawn(move || stderr.and_then(last_words));
    let (tx, rx) = mpsc::channel(16);
    let reader = std::thread::spawn(move || {
        if let Err(why) = read_tar(stdout, &tx) {
            let _ = tx.blocking_send(Piece::Broken(why));
        }
    });
    let mut bodies = Bodies { rx, orphans: 0 };
    let result = write_all(job, header, s3, manifest, listing, &mut bodies, started).await;
    if result.is_ok() {
        // Bodies after the manifest's last object (none the manifest lists) are read through.
        while let Some(p) = bodies.rx.recv().await {
            if matches!(p, Piece::Start(..)) {
                bodies.orphans += 1;
            }
        }
    } else {
        // The stream is not wanted any more: the engine stops (its pipe closes too).
        let _ = child.kill();
    }
    if bodies.orphans > 0 {
        log(
            "warn",
            format!(
                "the archive holds {} bodies its manifest does not list: not restored",
                bodies.orphans
            ),
        );
    }
    drop(bodies);
    let _ = reader.join();
    let status = child.wait().map_err(io_fail("waiting for the engine"))?;
    let said = words
        .join()
        .unwrap_or_else(|_| Some("(its error output could not be read)".into()));
    let done = result?;
    if !status.success() {
        return Err(Fail::new(
            Failure::Failed,
            format!(
                "{} objects were written, but the engine did not read the archive to its end: {}",
                done.written,
                said.map(|w| format!("{w} ({status})"))
                    .unwrap_or_else(|| format!("{status}"))
            ),
        ));
    }
    log(
        "info",
        format!(
            "bucket {bucket}: {} objects written ({} bytes, {} overwritten), {} left as they were, {} deleted",
            done.written, done.bytes, done.overwritten, done.same, done.deleted
        ),
    );
    emit(&MoverEvent::BucketRestored(done));
    Ok(())
}

async fn write_all(
    job: &RestoreBucketJob,
    header: &Header,
    s3: &Client,
    manifest: &Path,
    listing: &Path,
    bodies: &mut Bodies,
    started: Instant,
) -> Result<BucketRestored, Fail> {
    let bucket = job.target.bucket.as_str();
    let (steps, stops) = joined(job, header, manifest, listing)?;
    let mut done = BucketRestored::default();
    let mut conflicts = 0u64;
    let mut throttle = crate::inpod::process::Throttle::default();
    for step in steps {
        if stopped() {
            return Err(Fail::new(
                Failure::Failed,
                format!("{STOPPED} ({} objects were written before)", done.written),
            ));
        }
        let step = step.map_err(|e| Fail::new(Failure::Failed, e))?;
        let (key, entry) = match step {
            Paired::Right(_) => continue,
            Paired::Left(x) | Paired::Both(x, _) => x,
        };
        // The target as it is now (it may have changed since the plan's listing): a key that
        // appeared meanwhile is not written over without --overwrite.
        let now = s3.head(&key).await.map_err(|e| s3_fail(bucket, e))?;
        let decision = decide(&entry, now.as_ref(), job.overwrite);
        let size = bodies.seek(&entry.key).await?;
        if size != entry.meta.size {
            return Err(Fail::new(
                Failure::Failed,
                format!(
                    "the archive's body of {:?} has {size} bytes, the manifest says {}",
                    entry.key, entry.meta.size
                ),
            ));
        }
        match decision {
            Decision::Same => {
                done.same += 1;
                bodies.skip().await?;
                continue;
            }
            Decision::Conflict => {
                conflicts += 1;
                bodies.skip().await?;
                continue;
            }
            Decision::Write | Decision::Overwrite => {}
        }
        let fail = |e| {
            let f = s3_fail(bucket, e);
            Fail::new(
                f.failure,
                format!(
                    "{} ({} objects were written before)",
                    f.message, done.written
                ),
            )
        };
        if size <= MULTIPART_ABOVE {
            let body = bodies.whole(size).await?;
            let got = md5_hex(&body);
            if got != entry.md5 {
                return Err(Fail::new(
                    Failure::Failed,
                    format!(
                        "the archive's bytes of {:?} have MD5 {got}, the backup recorded {}",
                        entry.key, entry.md5
                    ),
                ));
            }
            s3.put(&key, &entry.meta, body).await.map_err(fail)?;
        } else {
            let mut reader = BodyReader {
                bodies: &mut *bodies,
                piece: Bytes::new(),
                md5: Md5::new(),
                want: &entry.md5,
                done: false,
            };
            // Parts of 16 MiB, larger for objects that would need more than S3's 10,000.
            let part = PART_SIZE
                .max(size.div_ceil(u64::from(crate::s3::MAX_PARTS)))
                .next_multiple_of(1 << 20);
            s3.put_multipart(&key, &entry.meta, &mut reader, part as usize)
                .await
                .map_err(fail)?;
        }
        done.written += 1;
        done.bytes += size;
        if decision == Decision::Overwrite {
            done.overwritten += 1;
        }
        throttle.progress(done.bytes, None, done.written);
    }
    check(&stops)?;
    if conflicts == 0 && job.delete_extra {
        // Extra objects go only once every object of the archive is in place.
        let (steps, stops) = joined(job, header, manifest, listing)?;
        for step in steps {
            if let Paired::Right(t) = step.map_err(|e| Fail::new(Failure::Failed, e))? {
                s3.delete(&t.key).await.map_err(|e| {
                    let f = s3_fail(bucket, e);
                    Fail::new(
                        f.failure,
                        format!(
                            "{} (every object of the archive was written; {} extra objects were deleted before)",
                            f.message, done.deleted
                        ),
                    )
                })?;
                done.deleted += 1;
            }
        }
        check(&stops)?;
    }
    done.seconds = started.elapsed().as_secs_f64();
    if conflicts > 0 {
        return Err(Fail::new(
            Failure::Failed,
            format!(
                "{conflicts} object(s) appeared or changed under the target prefix while the restore ran: left as they were ({} written{})",
                done.written,
                if job.delete_extra {
                    ", no extra object deleted"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(done)
}
