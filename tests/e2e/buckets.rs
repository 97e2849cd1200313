//! S3 buckets through `kentledge backup` and `kentledge restore bucket` on the local test
//! cluster, against real S3 servers (SeaweedFS and `rclone serve s3`) and real borg and restic
//! repositories: every object comes back with its bytes and metadata, a second backup of an
//! unchanged bucket downloads no body (bytes counted by a proxy in front of the server),
//! objects that change during a backup are reported, and failures leave nothing behind.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::{Value, json};

use crate::backup::{empty_pvc, leftovers, passphrase_secret};
use crate::cluster::TestCluster;
use crate::servers::{S3_KEY, S3_SECRET};
use crate::support::run;
use kentledge::s3::{Client, Endpoint, Metadata};

/// The mirror volume of bucket `media` of config `shop` (its name says the config).
const MIRROR: &str = "kentledge-bucket-media-a847e0";

/// A TCP proxy in front of an S3 server that counts the bytes each way, and can hold what
/// clients send to a rate (a slow link to the bucket).
struct Proxy {
    port: u16,
    down: Arc<AtomicU64>,
    up: Arc<AtomicU64>,
}

/// Copies `from` into `to`, counting the bytes, at most `rate` bytes a second when given.
fn pump(mut from: TcpStream, mut to: TcpStream, counted: Arc<AtomicU64>, rate: Option<u64>) {
    let started = std::time::Instant::now();
    let mut sent = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                counted.fetch_add(n as u64, Ordering::Relaxed);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                sent += n as u64;
                if let Some(rate) = rate {
                    let due = std::time::Duration::from_secs_f64(sent as f64 / rate as f64);
                    std::thread::sleep(due.saturating_sub(started.elapsed()));
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

impl Proxy {
    fn start(to: u16) -> Proxy {
        Proxy::with_upload_rate(to, None)
    }

    /// A proxy that passes what clients send at `rate` bytes a second at most.
    fn with_upload_rate(to: u16, rate: Option<u64>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (down, up) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (counted_down, counted_up) = (down.clone(), up.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                    continue;
                };
                let (c, s) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let counted = counted_up.clone();
                std::thread::spawn(move || pump(c, s, counted, rate));
                let counted = counted_down.clone();
                std::thread::spawn(move || pump(server, client, counted, None));
            }
        });
        Proxy { port, down, up }
    }

    fn down(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }

    fn up(&self) -> u64 {
        self.up.load(Ordering::Relaxed)
    }
}

fn endpoint(port: u16, bucket: &str) -> Endpoint {
    Endpoint {
        url: format!("http://127.0.0.1:{port}"),
        region: "us-east-1".into(),
        bucket: bucket.into(),
        path_style: true,
        access_key: S3_KEY.into(),
        secret_key: S3_SECRET.into(),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The S3 keys' Secret, the repositories' passphrase and their PVCs.
fn setup(tc: &TestCluster, secret: &str) {
    passphrase_secret(tc);
    empty_pvc(tc, "borg-repo");
    empty_pvc(tc, "restic-repo");
    let _: Secret = tc.create(json!({
        "metadata": {"name": "s3-keys"},
        "stringData": {"access": S3_KEY, "secret": secret},
    }));
}

/// borg and restic repositories on PVCs and a bucket entry `media` reaching the server at
/// `port` (with a cache volume when `cache`), plus `mover` settings.
fn spec(port: u16, bucket: &str, prefix: &str, cache: bool, mover: &str) -> String {
    format!(
        r#"  repositories:
    - name: borg-local
      borg:
        pvc: {{claimName: borg-repo, path: shop}}
        passphrase: {{secret: repo-pass, key: passphrase}}
        init: true
      retention: {{last: 1}}
    - name: restic-local
      restic:
        pvc: {{claimName: restic-repo}}
        password: {{secret: repo-pass, key: passphrase}}
        init: true
      retention: {{last: 1}}
  offsite:
    buckets:
      - name: media
        endpoint: http://127.0.0.1:{port}
        bucket: {bucket}
        prefix: "{prefix}"
        credentials:
          accessKeyId: {{secret: s3-keys, key: access}}
          secretAccessKey: {{secret: s3-keys, key: secret}}
        repositories: [borg-local, restic-local]
{}{mover}"#,
        if cache {
            "        cache: {size: 1Gi}\n"
        } else {
            ""
        }
    )
}

/// An object to put: key, bytes, metadata.
struct Obj {
    key: String,
    body: Bytes,
    meta: Metadata,
}

fn obj(key: &str, body: impl Into<Bytes>) -> Obj {
    Obj {
        key: key.into(),
        body: body.into(),
        meta: Metadata::default(),
    }
}

fn put_all(c: &Client, rt: &tokio::runtime::Runtime, objects: &[Obj]) {
    rt.block_on(async {
        for o in objects {
            if o.body.len() > 32 << 20 {
                let mut r: &[u8] = &o.body;
                c.put_multipart(&o.key, &o.meta, &mut r, 16 << 20)
                    .await
                    .unwrap();
            } else {
                c.put(&o.key, &o.meta, o.body.clone()).await.unwrap();
            }
        }
    });
}

/// Every key under `prefix` with its bytes and the metadata a restore makes the same.
fn contents(
    c: &Client,
    rt: &tokio::runtime::Runtime,
    prefix: &str,
) -> std::collections::BTreeMap<String, (Vec<u8>, Metadata)> {
    rt.block_on(async {
        let mut keys = Vec::new();
        c.list(prefix, &mut |page| {
            keys.extend(page.into_iter().map(|o| o.key));
            Ok(())
        })
        .await
        .unwrap();
        let mut out = std::collections::BTreeMap::new();
        for k in keys {
            let mut body: Vec<u8> = Vec::new();
            let mut m = c.get(&k, &mut body).await.unwrap();
            m.etag = None;
            m.last_modified = None;
            out.insert(k.strip_prefix(prefix).unwrap().to_owned(), (body, m));
        }
        out
    })
}

/// The report's JSON (the last JSON document of stdout).
fn report(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Archives of the bucket series `media` in `repository`, newest first.
fn archives(tc: &TestCluster, cfg: &std::path::Path, repository: &str) -> Vec<String> {
    let r =
        run(tc
            .kentledge(cfg)
            .args(["list", "archives", "--repository", repository, "-o", "json"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = report(&r.stdout);
    let mut out = Vec::new();
    for s in v["series"].as_array().unwrap() {
        if s["kind"] == "bucket" && s["name"] == "media" {
            for a in s["archives"].as_array().unwrap() {
                out.push(a["archive"].as_str().unwrap().to_owned());
            }
        }
    }
    out
}

/// The objects under `prefix` after a restore of borg-local's newest archive into it.
fn restored_copy(
    tc: &TestCluster,
    cfg: &std::path::Path,
    src: &Client,
    rt: &tokio::runtime::Runtime,
    prefix: &str,
) -> std::collections::BTreeMap<String, (Vec<u8>, Metadata)> {
    let r = run(tc.kentledge(cfg).args([
        "restore",
        "bucket",
        "media",
        "--repository",
        "borg-local",
        "--to-prefix",
        prefix,
    ]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    contents(src, rt, prefix)
}

/// `kentledge backup --repository borg-local` started in the background; returned once the
/// server has sent `bytes` more through the proxy (a download is under way).
fn backup_under_way(
    tc: &TestCluster,
    cfg: &std::path::Path,
    proxy: &Proxy,
    extra: &[&str],
    bytes: u64,
) -> std::process::Child {
    let start = proxy.down();
    let child = tc
        .kentledge(cfg)
        .args(["backup", "--repository", "borg-local"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tc.wait(60, "a download to be under way", || {
        (proxy.down() - start > bytes).then_some(())
    });
    child
}

fn bucket_rows(r: &Value) -> &Vec<Value> {
    r["buckets"].as_array().unwrap()
}

#[test]
fn a_bucket_goes_to_borg_and_restic_and_comes_back_the_same_and_unchanged_objects_are_not_read_again()
 {
    let server = crate::servers::seaweedfs(&["media", "restored"]);
    let proxy = Proxy::start(server.port);
    let rt = rt();
    let src = Client::new(&endpoint(server.port, "media")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while rt.block_on(src.list("", &mut |_| Ok(()))).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "SeaweedFS made no bucket"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // ≥ 1,000 objects: many small ones, odd keys, empty ones, a directory marker, one over
    // 100 MB, and headers and user metadata.
    let mut objects: Vec<Obj> = (0..1000)
        .map(|i| {
            obj(
                &format!("photos/{i:04}.jpg"),
                format!("photo {i} ").repeat(1 + i % 50),
            )
        })
        .collect();
    let mut typed = obj("ünïcødé/東京 ✓.txt", "こんにちは\n");
    typed.meta.content_type = Some("text/plain; charset=utf-8".into());
    typed.meta.cache_control = Some("max-age=3600".into());
    typed.meta.content_disposition = Some("attachment; filename=\"tokyo.txt\"".into());
    typed.meta.content_language = Some("ja".into());
    typed.meta.expires = Some("Wed, 21 Oct 2037 07:28:00 GMT".into());
    typed.meta.user.insert("owner".into(), "shop".into());
    typed.meta.user.insert("checksum".into(), "abc123".into());
    objects.push(typed);
    let mut gz = obj("logs/a+b c.log.gz", vec![0x1fu8, 0x8b, 8, 0, 1, 2, 3]);
    gz.meta.content_type = Some("application/gzip".into());
    gz.meta.content_encoding = Some("gzip".into());
    objects.push(gz);
    objects.push(obj("with space/and+plus", "plus and space"));
    objects.push(obj("dir/", ""));
    // Keys whose hex is longer than a path segment (the mirror's `+` directories).
    objects.push(obj(&format!("long/{}", "k".repeat(145)), "a 150-byte key"));
    // (SeaweedFS takes at most 255 bytes between two `/`.)
    let deep = format!("{}/", "ü".repeat(60)).repeat(3);
    objects.push(obj(&format!("long/{deep}end"), "a 371-byte key"));
    objects.push(obj("empty", ""));
    let big: Vec<u8> = (0..(101u32 << 20) / 4)
        .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
        .collect();
    let mut video = obj("big/video.bin", big);
    video.meta.content_type = Some("video/mp4".into());
    objects.push(video);
    put_all(&src, &rt, &objects);
    let source = contents(&src, &rt, "");
    assert_eq!(source.len(), 1008);
    // The server keeps what the comparison below compares (it is not between two empties).
    let kept = &source["ünïcødé/東京 ✓.txt"].1;
    assert_eq!(
        kept.content_type.as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(kept.cache_control.as_deref(), Some("max-age=3600"));
    assert_eq!(kept.content_language.as_deref(), Some("ja"));
    assert_eq!(
        kept.expires.as_deref(),
        Some("Wed, 21 Oct 2037 07:28:00 GMT")
    );
    assert_eq!(kept.user.get("owner").map(String::as_str), Some("shop"));
    assert_eq!(
        source["logs/a+b c.log.gz"].1.content_encoding.as_deref(),
        Some("gzip")
    );

    let tc = TestCluster::start("shop");
    setup(&tc, S3_SECRET);
    let since = tc.requests().len();
    let cfg = tc.config("shop", &spec(proxy.port, "media", "", true, ""));
    let dry = run(tc.kentledge(&cfg).args(["backup", "--dry-run"]));
    assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);
    assert!(
        dry.stdout.contains("bucket media (s3 media/) → borg-local")
            && dry
                .stdout
                .contains("kentledge-bucket-media-a847e0 (the mirror"),
        "{}",
        dry.stdout
    );
    let first = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let r = report(&first.stdout);
    let rows = bucket_rows(&r);
    assert_eq!(rows.len(), 2, "{r}");
    for row in rows {
        assert_eq!(row["ok"], true, "{row}");
        assert_eq!(row["objects"], 1008, "{row}");
        assert_eq!(row["gone"], 0);
        assert_eq!(row["changed"], 0);
    }
    // The first copy downloaded every object, the second (same mirror) none.
    let fetched: Vec<u64> = rows
        .iter()
        .map(|r| r["fetched"].as_u64().unwrap())
        .collect();
    assert_eq!(fetched.iter().sum::<u64>(), 1008, "{r}");
    let body_bytes: u64 = source.values().map(|(b, _)| b.len() as u64).sum();
    assert!(
        proxy.down() >= body_bytes,
        "{} < {body_bytes}",
        proxy.down()
    );
    assert_eq!(leftovers(&tc), Vec::<String>::new());
    let said = crate::support::events_of(&tc, "PersistentVolumeClaim", MIRROR);
    assert_eq!(
        said.iter()
            .filter(|(t, r, m, _)| t == "Normal"
                && r == "BucketBackedUp"
                && m.contains("1008 objects"))
            .count(),
        2,
        "a Normal Event per copy: {said:?}"
    );

    // A second backup of the unchanged bucket: listings only, almost nothing added.
    let before = proxy.down();
    let second = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(second.code, 0, "{}{}", second.stdout, second.stderr);
    let downloaded = proxy.down() - before;
    assert!(
        downloaded < 2 << 20,
        "the second backup read {downloaded} bytes from the server (bodies: {body_bytes})"
    );
    let r2 = report(&second.stdout);
    for row in bucket_rows(&r2) {
        assert_eq!(row["ok"], true, "{row}");
        assert_eq!(row["fetched"], 0, "{row}");
        assert!(row["bytesAdded"].as_u64().unwrap() < 2 << 20, "{row}");
    }
    // Each bucket is its own series, listed, and pruned by the repository's retention.
    let mut newest = Vec::new();
    for repo in ["borg-local", "restic-local"] {
        let a = archives(&tc, &cfg, repo);
        assert_eq!(a.len(), 2, "{repo}: {a:?}");
        newest.push(a[0].clone());
    }
    let listed = run(tc.kentledge(&cfg).args(["list", "archives"]));
    assert!(listed.stdout.contains("bucket media"), "{}", listed.stdout);
    let p = run(tc.kentledge(&cfg).args(["prune", "--only", "repositories"]));
    assert_eq!(p.code, 0, "{}{}", p.stdout, p.stderr);
    for (repo, kept) in ["borg-local", "restic-local"].iter().zip(&newest) {
        assert_eq!(
            &archives(&tc, &cfg, repo),
            std::slice::from_ref(kept),
            "{repo}"
        );
    }

    // Restore each repository's newest archive into another bucket and prefix.
    let dst = Client::new(&endpoint(server.port, "restored")).unwrap();
    for (repo, prefix) in [
        ("borg-local", "from-borg/"),
        ("restic-local", "from-restic/"),
    ] {
        let dry = run(tc.kentledge(&cfg).args([
            "restore",
            "bucket",
            "media",
            "--repository",
            repo,
            "--to-bucket",
            "restored",
            "--to-prefix",
            prefix,
            "--dry-run",
        ]));
        assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);
        assert!(
            dry.stdout.contains("dry run: nothing was changed")
                && dry.stdout.contains("1008 objects")
                && dry.stdout.contains("1008 new"),
            "{}",
            dry.stdout
        );
        assert!(contents(&dst, &rt, prefix).is_empty(), "a dry run wrote");
        let r = run(tc.kentledge(&cfg).args([
            "restore",
            "bucket",
            "media",
            "--repository",
            repo,
            "--to-bucket",
            "restored",
            "--to-prefix",
            prefix,
            "-o",
            "json",
        ]));
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let v = report(&r.stdout);
        assert_eq!(v["restored"]["written"], 1008, "{v}");
        assert_eq!(v["plan"]["new"], 1008, "{v}");
        let restored = contents(&dst, &rt, prefix);
        assert_eq!(restored.len(), source.len(), "{repo}");
        for (k, (body, meta)) in &source {
            let (b, m) = restored
                .get(k)
                .unwrap_or_else(|| panic!("{repo}: {k:?} missing"));
            assert!(b == body, "{repo}: {k:?} has other bytes");
            assert_eq!(m, meta, "{repo}: {k:?} has other metadata");
        }
        crate::support::secret_nowhere(
            &tc,
            since,
            &[&r.stdout, &r.stderr, &dry.stdout, &dry.stderr],
            S3_SECRET,
            "",
        );
    }

    // Into a prefix that already has objects: a differing object and an extra one stop the
    // restore before anything changes; --overwrite and --delete-extra make it the same.
    rt.block_on(async {
        dst.put(
            "from-borg/photos/0001.jpg",
            &Metadata::default(),
            Bytes::from("changed"),
        )
        .await
        .unwrap();
        dst.put(
            "from-borg/extra.txt",
            &Metadata::default(),
            Bytes::from("extra"),
        )
        .await
        .unwrap();
        dst.delete("from-borg/photos/0002.jpg").await.unwrap();
    });
    let restore = |extra: &[&str]| {
        let mut args = vec![
            "restore",
            "bucket",
            "media",
            "--repository",
            "borg-local",
            "--to-bucket",
            "restored",
            "--to-prefix",
            "from-borg/",
        ];
        args.extend_from_slice(extra);
        run(tc.kentledge(&cfg).args(&args))
    };
    rt.block_on(async {
        // The same bytes with other metadata differ too.
        let mut m = source["ünïcødé/東京 ✓.txt"].1.clone();
        m.content_type = Some("text/html".into());
        m.user.insert("owner".into(), "someone else".into());
        let body = Bytes::from(source["ünïcødé/東京 ✓.txt"].0.clone());
        dst.put("from-borg/ünïcødé/東京 ✓.txt", &m, body)
            .await
            .unwrap();
    });
    let refused = restore(&[]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stdout.contains("nothing was changed")
            && refused.stdout.contains("\"from-borg/photos/0001.jpg\"")
            && refused.stdout.contains("\"from-borg/ünïcødé/東京 ✓.txt\"")
            && refused.stdout.contains("\"from-borg/extra.txt\""),
        "{}",
        refused.stdout
    );
    let v = report(&restore(&["--dry-run", "-o", "json"]).stdout);
    let plan = &v["plan"];
    assert_eq!(
        (&plan["new"], &plan["differ"], &plan["extra"], &plan["same"]),
        (&json!(1), &json!(2), &json!(1), &json!(1005)),
        "{v}"
    );
    let now = contents(&dst, &rt, "from-borg/");
    assert_eq!(now["photos/0001.jpg"].0, b"changed");
    assert!(
        !now.contains_key("photos/0002.jpg"),
        "the refused restore wrote"
    );
    let fixed = restore(&["--overwrite", "--delete-extra", "-o", "json"]);
    assert_eq!(fixed.code, 0, "{}{}", fixed.stdout, fixed.stderr);
    let done = &report(&fixed.stdout)["restored"];
    assert_eq!(
        (
            &done["written"],
            &done["overwritten"],
            &done["deleted"],
            &done["same"]
        ),
        (&json!(3), &json!(2), &json!(1), &json!(1005)),
        "{done}"
    );
    let now = contents(&dst, &rt, "from-borg/");
    assert_eq!(now.len(), source.len());
    assert!(
        now == source,
        "after --overwrite --delete-extra the prefix is the archive's"
    );
    assert_eq!(leftovers(&tc), Vec::<String>::new());
}

#[test]
fn objects_that_change_while_a_backup_reads_are_reported_and_the_archive_has_what_was_read() {
    let server = crate::servers::s3();
    std::fs::create_dir(server.dir.path().join("live")).unwrap();
    let proxy = Proxy::start(server.port);
    let rt = rt();
    let src = Client::new(&endpoint(server.port, "live")).unwrap();
    // The first object is big and the download limited, so the others are read seconds later.
    let mut objects = vec![obj("app/a-big.bin", vec![7u8; 24 << 20])];
    objects.extend((0..200).map(|i| obj(&format!("app/b-{i:03}"), format!("object {i}"))));
    objects.push(obj("outside/not-copied", "not under the prefix"));
    put_all(&src, &rt, &objects);

    let tc = TestCluster::start("shop");
    setup(&tc, S3_SECRET);
    let cfg = tc.config(
        "shop",
        &spec(
            proxy.port,
            "live",
            "app/",
            true,
            "  mover:\n    bandwidthLimit: 8MiB\n",
        ),
    );
    let child = backup_under_way(&tc, &cfg, &proxy, &["-o", "json"], 4 << 20);
    rt.block_on(async {
        src.delete("app/b-150").await.unwrap();
        src.put(
            "app/b-160",
            &Metadata::default(),
            Bytes::from("written during the backup"),
        )
        .await
        .unwrap();
    });
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let r = report(&stdout);
    let row = &bucket_rows(&r)[0];
    assert_eq!(row["ok"], true, "{row}");
    assert_eq!(row["objects"], 200, "{row}");
    assert_eq!(row["gone"], 1, "{row}");
    assert_eq!(row["goneKeys"], json!(["app/b-150"]), "{row}");
    assert_eq!(row["changed"], 1, "{row}");
    assert_eq!(row["changedKeys"], json!(["app/b-160"]), "{row}");
    assert!(
        stderr.contains("app/b-150") && stderr.contains("gone when read"),
        "the log names the key: {stderr}"
    );
    // The archive is a restore point of what was read.
    let copy = restored_copy(&tc, &cfg, &src, &rt, "copy/");
    assert_eq!(copy.len(), 200);
    assert!(!copy.contains_key("b-150"));
    assert_eq!(copy["b-160"].0, b"written during the backup");
    assert_eq!(copy["a-big.bin"].0.len(), 24 << 20);
    assert_eq!(copy["b-007"].0, b"object 7");
    assert!(!copy.keys().any(|k| k.contains("not-copied")));
    // Into the original prefix: the same bytes everywhere (b-150 is gone from both), so
    // nothing needs a flag; with b-160 put back as it was listed, the archive's version (the
    // one read) differs from it.
    let back = || {
        let r = run(tc.kentledge(&cfg).args([
            "restore",
            "bucket",
            "media",
            "--repository",
            "borg-local",
            "--dry-run",
            "-o",
            "json",
        ]));
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        report(&r.stdout)["plan"].clone()
    };
    let plan = back();
    assert_eq!(
        (&plan["same"], &plan["new"]),
        (&json!(200), &json!(0)),
        "{plan}"
    );
    rt.block_on(async {
        src.put("app/b-160", &Metadata::default(), Bytes::from("object 160"))
            .await
            .unwrap();
    });
    let plan = back();
    assert_eq!(plan["differ"], 1, "{plan}");
    assert_eq!(plan["differKeys"], json!(["app/b-160"]), "{plan}");

    // A backup stopped after it replaced a body but before its manifest: the journal names
    // the key, and the next backup reads it again instead of trusting the mirror.
    let mirror = tc.volume_dir(MIRROR);
    let hex: String = "app/b-007".bytes().map(|b| format!("{b:02x}")).collect();
    let body = mirror.join("mirror/objects").join(&hex);
    assert_eq!(
        std::fs::read(&body).unwrap(),
        b"object 7",
        "the mirror holds the body"
    );
    std::fs::write(&body, b"garbage!").unwrap();
    std::fs::write(
        mirror.join("state/journal.1"),
        "{\"key\":\"app/b-007\",\"size\":8,\"etag\":\"x\",\"lastModified\":\"x\"}\n{\"key\":\"app/b-0",
    )
    .unwrap();
    let again =
        run(tc
            .kentledge(&cfg)
            .args(["backup", "--repository", "borg-local", "-o", "json"]));
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    let again = report(&again.stdout);
    let row = &bucket_rows(&again)[0];
    // b-007 (the journal's) and b-160 (changed) are read again, nothing else.
    assert_eq!(row["fetched"], 2, "{row}");
    assert!(
        !mirror.join("state/journal.1").exists(),
        "the journal is done with"
    );
    let copy = restored_copy(&tc, &cfg, &src, &rt, "copy2/");
    assert_eq!(copy["b-007"].0, b"object 7");
    assert_eq!(copy["b-160"].0, b"object 160");
    assert_eq!(leftovers(&tc), Vec::<String>::new());
}

#[test]
fn wrong_keys_a_missing_bucket_or_an_unreachable_endpoint_fail_plainly_and_leave_nothing() {
    let server = crate::servers::s3();
    std::fs::create_dir(server.dir.path().join("media")).unwrap();
    let rt = rt();
    let src = Client::new(&endpoint(server.port, "media")).unwrap();
    put_all(&src, &rt, &[obj("a.txt", "a")]);
    let wrong = "not-the-secret-3b2a1f";
    let tc = TestCluster::start("shop");
    setup(&tc, wrong);
    let since = tc.requests().len();
    let dead = crate::servers::free_port();
    let cases = [
        (server.port, "media", "HTTP 403"),
        (server.port, "nosuchbucket", "HTTP 404"),
        (dead, "media", "is the endpoint reachable"),
    ];
    let mut said = Vec::new();
    let mut said_more = Vec::new();
    for (i, (port, bucket, expect)) in cases.iter().enumerate() {
        if i == 1 {
            // The right keys from now on: the bucket is what is wrong.
            let secrets: Api<Secret> = Api::namespaced(tc.client(), &tc.namespace);
            let patch = json!({"stringData": {"secret": S3_SECRET}});
            tc.block_on(secrets.patch(
                "s3-keys",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            ))
            .unwrap();
        }
        let cfg = tc.config("shop", &spec(*port, bucket, "", true, ""));
        let r = run(tc.kentledge(&cfg).args(["backup"]));
        assert_eq!(r.code, 1, "{bucket}: {}{}", r.stdout, r.stderr);
        if i == 0 {
            // The same failure again: one Warning Event on the cache volume, counted twice.
            let again = run(tc.kentledge(&cfg).args(["backup"]));
            assert_eq!(again.code, 1, "{}{}", again.stdout, again.stderr);
            let said = crate::support::events_of(&tc, "PersistentVolumeClaim", MIRROR);
            let failed: Vec<_> = said
                .iter()
                .filter(|(t, r, m, _)| {
                    t == "Warning" && r == "BucketBackupFailed" && m.contains("to borg-local")
                })
                .collect();
            assert_eq!(failed.len(), 1, "{said:?}");
            assert_eq!(failed[0].3, 2, "{said:?}");
            assert!(failed[0].2.contains("HTTP 403"), "{said:?}");
            said_more.push(again.stdout);
            said_more.push(again.stderr);
        }
        assert!(
            r.stdout.contains(expect) && r.stdout.contains("bucket"),
            "{bucket} ({expect}): {}",
            r.stdout
        );
        assert_eq!(leftovers(&tc), Vec::<String>::new(), "{bucket}");
        for repo in ["borg-local", "restic-local"] {
            assert!(
                archives(&tc, &cfg, repo).is_empty(),
                "{bucket}: an archive in {repo}"
            );
        }
        said.push(r.stdout);
        said.push(r.stderr);
    }
    said.append(&mut said_more);
    // Without a cache volume a backup works too (every object downloaded into an emptyDir).
    let cfg = tc.config("shop", &spec(server.port, "media", "", false, ""));
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for row in bucket_rows(&report(&r.stdout)) {
        assert_eq!(row["ok"], true, "{row}");
        assert_eq!(row["objects"], 1, "{row}");
        assert_eq!(row["fetched"], 1, "{row}");
    }
    assert!(
        r.stderr.contains("no cache volume"),
        "the run says every object is downloaded: {}",
        r.stderr
    );
    said.push(r.stdout);
    said.push(r.stderr);
    let said: Vec<&str> = said.iter().map(String::as_str).collect();
    crate::support::secret_nowhere(&tc, since, &said, wrong, "");
    crate::support::secret_nowhere(&tc, since, &said, S3_SECRET, "");
}

/// Puts `a-big.bin` (`mib` MiB made from `mult`) and `small` small objects after it.
fn put_big_and_small(c: &Client, rt: &tokio::runtime::Runtime, mib: u32, small: usize, mult: u32) {
    let big: Vec<u8> = (0..(mib << 20) / 4)
        .flat_map(|i| i.wrapping_mul(mult).to_le_bytes())
        .collect();
    let mut objects = vec![obj("a-big.bin", big)];
    objects.extend((0..small).map(|i| obj(&format!("b-{i:02}"), format!("small {i}"))));
    put_all(c, rt, &objects);
}

#[test]
fn a_bucket_backup_stopped_by_sigterm_leaves_nothing_behind_and_the_next_one_is_whole() {
    let server = crate::servers::s3();
    std::fs::create_dir(server.dir.path().join("media")).unwrap();
    let proxy = Proxy::start(server.port);
    let rt = rt();
    let src = Client::new(&endpoint(server.port, "media")).unwrap();
    put_big_and_small(&src, &rt, 32, 20, 40_503);
    let source = contents(&src, &rt, "");
    let tc = TestCluster::start("shop");
    setup(&tc, S3_SECRET);
    let slow = tc.config(
        "shop",
        &spec(
            proxy.port,
            "media",
            "",
            true,
            "  mover:\n    bandwidthLimit: 4MiB\n",
        ),
    );
    let child = backup_under_way(&tc, &slow, &proxy, &[], 2 << 20);
    // SAFETY: the child is ours and still running.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(143),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(leftovers(&tc), Vec::<String>::new());
    assert!(
        archives(&tc, &slow, "borg-local").is_empty(),
        "no archive of a stopped copy"
    );
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(tc.client(), &tc.namespace);
    let events = tc.block_on(events.list(&Default::default())).unwrap().items;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("BucketBackupFailed")
                && e.involved_object.name.as_deref() == Some(MIRROR)),
        "a BucketBackupFailed Event on the cache volume: {events:?}"
    );
    // The next backup (no limit) starts from what the stopped one left and is whole.
    let cfg = tc.config("shop", &spec(proxy.port, "media", "", true, ""));
    let r = run(tc
        .kentledge(&cfg)
        .args(["backup", "--repository", "borg-local", "-o", "json"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = report(&r.stdout);
    assert_eq!(bucket_rows(&v)[0]["objects"], 21, "{v}");
    let copy = restored_copy(&tc, &cfg, &src, &rt, "copy/");
    for (k, (body, _)) in &source {
        assert!(copy.get(k).is_some_and(|(b, _)| b == body), "{k:?} differs");
    }
    assert_eq!(leftovers(&tc), Vec::<String>::new());
}

/// The keys of the multipart uploads begun and never finished nor aborted in `bucket` of the
/// server at `port` (parts that are stored, and paid for, but no listing shows), as rclone's
/// S3 client lists them.
fn unfinished_uploads(port: u16, bucket: &str) -> Vec<String> {
    let o = std::process::Command::new("rclone")
        .args(["--config", "/dev/null", "backend", "list-multipart-uploads"])
        .arg(format!("s3:{bucket}"))
        .env("RCLONE_CONFIG_S3_TYPE", "s3")
        .env("RCLONE_CONFIG_S3_PROVIDER", "Other")
        .env(
            "RCLONE_CONFIG_S3_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        )
        .env("RCLONE_CONFIG_S3_ACCESS_KEY_ID", S3_KEY)
        .env("RCLONE_CONFIG_S3_SECRET_ACCESS_KEY", S3_SECRET)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v[bucket]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| u["Key"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_bucket_restore_stopped_by_sigterm_or_sigkill_leaves_no_parts_behind_and_the_next_one_finishes_it()
 {
    use crate::signals::{after_takeover, holder};
    use crate::support::signal_when;
    let server = crate::servers::s3();
    std::fs::create_dir(server.dir.path().join("media")).unwrap();
    // Writes reach the bucket at 16 MB/s: the 48 MiB object takes its three parts' time.
    let proxy = Proxy::with_upload_rate(server.port, Some(16_000_000));
    let rt = rt();
    let src = Client::new(&endpoint(server.port, "media")).unwrap();
    put_big_and_small(&src, &rt, 48, 10, 2_654_435_761);
    let source = contents(&src, &rt, "");
    // A new client for each look after a restore (the server closes idle connections).
    let fresh = || Client::new(&endpoint(server.port, "media")).unwrap();
    let tc = TestCluster::start("shop");
    setup(&tc, S3_SECRET);
    let cfg = tc.config("shop", &spec(proxy.port, "media", "", true, ""));
    let b = run(tc
        .kentledge(&cfg)
        .args(["backup", "--repository", "borg-local"]));
    assert_eq!(b.code, 0, "{}{}", b.stdout, b.stderr);
    let lease = "kentledge-shop-backup";
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGKILL, 137)] {
        let prefix = format!("copy-{code}/");
        let args = [
            "restore",
            "bucket",
            "media",
            "--repository",
            "borg-local",
            "--to-prefix",
            prefix.as_str(),
        ];
        let start = proxy.up();
        // Once the first part of the big object is on its way (the second follows it).
        let r = signal_when(
            tc.kentledge(&cfg).args(args),
            "of bucket media under",
            || proxy.up() - start > 20 << 20,
            signal,
            120,
        );
        assert_eq!(r.code, code, "{}{}", r.stdout, r.stderr);
        if signal == libc::SIGTERM {
            assert!(
                r.stdout.contains("NOT restored") && r.stdout.contains("interrupted (exit 143)"),
                "{}",
                r.stdout
            );
            assert_eq!(leftovers(&tc), Vec::<String>::new());
            assert_eq!(holder(&tc, lease), None, "the Lease is released");
            // The mover stopped between two parts and aborted the upload: the object is not
            // there, and neither are its parts.
            let written = contents(&fresh(), &rt, &prefix);
            assert!(!written.contains_key("a-big.bin"), "{:?}", written.keys());
            assert_eq!(
                unfinished_uploads(server.port, "media"),
                Vec::<String>::new()
            );
            let again = run(tc.kentledge(&cfg).args(args));
            assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
        } else {
            // The killed run's mover may still be writing: the next run of the config takes
            // the locks over, stops it (its upload aborted) and restores what is missing.
            crate::signals::age_killed_restore_leases(&tc, "shop");
            let again = after_takeover(&tc, lease, tc.kentledge(&cfg).args(args), "SIGKILL");
            crate::signals::swept_a_mover(&again);
        }
        assert_eq!(
            unfinished_uploads(server.port, "media"),
            Vec::<String>::new()
        );
        assert_eq!(leftovers(&tc), Vec::<String>::new());
        let copy = contents(&fresh(), &rt, &prefix);
        assert_eq!(copy.len(), source.len(), "{prefix}");
        for (k, (body, meta)) in &source {
            let (b, m) = copy.get(k).unwrap_or_else(|| panic!("{prefix}{k} missing"));
            assert!(b == body, "{prefix}{k} has other bytes");
            assert_eq!(m, meta, "{prefix}{k} has other metadata");
        }
    }
}
