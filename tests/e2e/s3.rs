//! kentledge's S3 client (`kentledge::s3`, the building block of bucket backups) against a real
//! S3 server (`rclone serve s3`, SigV4): objects written with their metadata come back the same
//! (unicode keys, `+` and spaces, empty objects), listings page past 1,000 keys, errors say
//! what and never hold the secret.

use bytes::Bytes;
use kentledge::s3::{Client, Endpoint, Metadata, S3Error};

use crate::servers::{S3_KEY, S3_SECRET, s3};

fn endpoint(port: u16, bucket: &str, secret: &str) -> Endpoint {
    Endpoint {
        url: format!("http://127.0.0.1:{port}"),
        region: "us-east-1".into(),
        bucket: bucket.into(),
        path_style: true,
        access_key: S3_KEY.into(),
        secret_key: secret.into(),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn objects_come_back_with_their_metadata_and_listings_page_past_1000_keys() {
    let server = s3();
    std::fs::create_dir(server.dir.path().join("media")).unwrap();
    let c = Client::new(&endpoint(server.port, "media", S3_SECRET)).unwrap();
    round_trip(&c, &rt(), &[]);
}

#[test]
fn seaweedfs_gives_the_same_objects_back_also_keys_ending_in_a_slash() {
    let server = crate::servers::seaweedfs(&["media"]);
    let c = Client::new(&endpoint(server.port, "media", S3_SECRET)).unwrap();
    // One runtime for the client's whole life: its pooled connections run on it.
    let rt = rt();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while rt.block_on(c.list("", &mut |_| Ok(()))).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "SeaweedFS made no bucket"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    round_trip(&c, &rt, &["folder/"]);
}

/// Objects written with metadata list, read and delete back the same (`extra` keys too, empty).
fn round_trip(c: &Client, rt: &tokio::runtime::Runtime, extra: &[&str]) {
    let mut meta = Metadata {
        content_type: Some("text/plain; charset=utf-8".into()),
        cache_control: Some("max-age=60".into()),
        content_disposition: Some("attachment; filename=\"a.txt\"".into()),
        ..Metadata::default()
    };
    meta.user.insert("owner".into(), "shop".into());
    let mut keys = vec![
        "a.txt",
        "ünï/cødé ✓.txt",
        "a+b c.txt",
        "empty",
        "deep/er/still.bin",
    ];
    keys.extend_from_slice(extra);
    let body = |k: &str| {
        if k == "empty" || k.ends_with('/') {
            Bytes::new()
        } else {
            Bytes::from(format!("the bytes of {k}\n").repeat(100))
        }
    };
    rt.block_on(async {
        for k in &keys {
            let etag = c.put(k, &meta, body(k)).await.unwrap();
            assert!(!etag.is_empty(), "{k}");
        }
        for i in 0..1100 {
            c.put(
                &format!("many/{i:04}"),
                &Metadata::default(),
                Bytes::from(vec![b'x'; i % 7]),
            )
            .await
            .unwrap();
        }
    });
    // Every key, exactly, across pages.
    let mut pages = 0;
    let mut listed = Vec::new();
    let n = rt
        .block_on(c.list("", &mut |page| {
            pages += 1;
            listed.extend(page);
            Ok(())
        }))
        .unwrap();
    assert_eq!(n, 1100 + keys.len() as u64);
    assert!(pages >= 2, "{pages} pages");
    for k in &keys {
        assert!(
            listed.iter().any(|o| o.key == *k),
            "{k} listed: {:?}",
            listed
                .iter()
                .filter(|o| !o.key.starts_with("many/"))
                .map(|o| &o.key)
                .collect::<Vec<_>>()
        );
    }
    let under: Vec<String> = {
        let mut v = Vec::new();
        rt.block_on(c.list("ünï/", &mut |page| {
            v.extend(page.into_iter().map(|o| o.key));
            Ok(())
        }))
        .unwrap();
        v
    };
    assert_eq!(under, ["ünï/cødé ✓.txt"]);
    // Bytes and metadata come back.
    for k in &keys {
        let mut got = Vec::new();
        let m = rt.block_on(c.get(k, &mut got)).unwrap();
        assert_eq!(got, body(k).to_vec(), "{k}");
        assert_eq!(m.size, body(k).len() as u64);
        if k.ends_with('/') {
            // SeaweedFS keeps a directory marker's bytes (none) but not its headers: a bucket
            // backup records what the server gave back, and says when a restore cannot match.
            continue;
        }
        assert_eq!(m.content_type, meta.content_type, "{k}");
        assert_eq!(m.cache_control, meta.cache_control, "{k}");
        assert_eq!(m.content_disposition, meta.content_disposition, "{k}");
        assert_eq!(m.user, meta.user, "{k}");
        assert!(m.etag.is_some() && m.last_modified.is_some(), "{k}");
        let h = rt.block_on(c.head(k)).unwrap().unwrap();
        assert_eq!(h.etag, m.etag);
        assert_eq!(h.user, meta.user);
    }
    rt.block_on(c.delete("a.txt")).unwrap();
    assert_eq!(rt.block_on(c.head("a.txt")).unwrap(), None);
    // Keys the client cannot address exactly are refused, not sent elsewhere.
    for bad in ["/lead", "a/../b", "a//b", "./x"] {
        assert!(
            matches!(rt.block_on(c.head(bad)), Err(S3Error::Key(_))),
            "{bad}"
        );
    }
}

#[test]
fn errors_say_what_and_never_hold_the_secret() {
    let server = s3();
    std::fs::create_dir(server.dir.path().join("media")).unwrap();
    let rt = rt();
    let noop = &mut |_: Vec<kentledge::s3::Object>| Ok(());
    let wrong = "wrong-secret-0123456789";
    let e = rt
        .block_on(
            Client::new(&endpoint(server.port, "media", wrong))
                .unwrap()
                .list("", noop),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("HTTP 403"), "{e}");
    assert!(!e.contains(wrong) && !e.contains(S3_SECRET), "{e}");
    let e = rt
        .block_on(
            Client::new(&endpoint(server.port, "nope", S3_SECRET))
                .unwrap()
                .list("", noop),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("HTTP 404") && e.contains("NoSuchBucket"), "{e}");
    // Nothing listens on this port.
    let closed = crate::servers::free_port();
    let e = rt
        .block_on(
            Client::new(&endpoint(closed, "media", S3_SECRET))
                .unwrap()
                .list("", noop),
        )
        .unwrap_err();
    assert!(matches!(e, S3Error::Transport { .. }), "{e}");
    let e = e.to_string();
    assert!(
        !e.contains("X-Amz-Signature") && !e.contains(S3_SECRET),
        "{e}"
    );
}

/// Gives `n` bytes of a pattern, then fails.
struct Breaks {
    left: usize,
}

impl tokio::io::AsyncRead for Breaks {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.left == 0 {
            return std::task::Poll::Ready(Err(std::io::Error::other("the source broke")));
        }
        let n = self.left.min(buf.remaining()).min(64 * 1024);
        buf.put_slice(&vec![b'k'; n]);
        self.left -= n;
        std::task::Poll::Ready(Ok(()))
    }
}

#[test]
fn large_objects_go_up_in_parts_with_their_metadata_and_a_broken_upload_leaves_nothing() {
    let server = s3();
    std::fs::create_dir(server.dir.path().join("media")).unwrap();
    let c = Client::new(&endpoint(server.port, "media", S3_SECRET)).unwrap();
    let rt = rt();
    let data: Vec<u8> = (0..12 * 1024 * 1024 + 7).map(|i| (i % 251) as u8).collect();
    let mut meta = Metadata {
        content_type: Some("application/octet-stream".into()),
        ..Metadata::default()
    };
    meta.user.insert("kind".into(), "video".into());
    let etag = rt
        .block_on(c.put_multipart("big/video.bin", &meta, &mut &data[..], 5 << 20))
        .unwrap();
    assert!(!etag.is_empty());
    let mut got = Vec::new();
    let m = rt.block_on(c.get("big/video.bin", &mut got)).unwrap();
    assert!(got == data, "the bytes come back");
    assert_eq!(m.user, meta.user);
    assert_eq!(m.content_type, meta.content_type);
    // A source that breaks half way: an error, and no object.
    let e = rt
        .block_on(c.put_multipart(
            "big/broken.bin",
            &meta,
            &mut Breaks { left: 7 << 20 },
            5 << 20,
        ))
        .unwrap_err();
    assert!(e.to_string().contains("the source broke"), "{e}");
    assert_eq!(rt.block_on(c.head("big/broken.bin")).unwrap(), None);
}
