use super::*;

fn entry(key: &str, size: u64, md5: &str) -> Entry {
    Entry {
        key: key.into(),
        listed_etag: "\"src\"".into(),
        listed_modified: "2026-01-01T00:00:00Z".into(),
        md5: md5.into(),
        written_etag: format!("{md5}-2"),
        meta: Metadata {
            size,
            ..Metadata::default()
        },
    }
}

#[test]
fn body_paths_round_trip_and_sort_as_the_keys_do() {
    let long = "x".repeat(250);
    let keys = [
        "a",
        "a b",
        "a+b",
        "a-c",
        "a/",
        "a/b",
        "dir/",
        "é/ü",
        "日本/語",
        long.as_str(),
        &format!("{long}y"),
        &"z".repeat(100),
        &format!("{}/q", "z".repeat(100)),
    ];
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for k in &keys {
        let p = body_path(k);
        assert_eq!(key_of(&p).as_deref(), Some(*k), "{p}");
        assert_eq!(key_of(&format!("./{p}")).as_deref(), Some(*k));
        assert_eq!(key_of(&format!("/{p}")).as_deref(), Some(*k));
        for seg in p.split('/') {
            assert!(seg.len() <= 201, "{seg}");
        }
    }
    // The engines sort names within each directory; compare as a tree walk does.
    let mut by_path: Vec<&str> = keys.to_vec();
    by_path.sort_by(|a, b| {
        let pa = body_path(a);
        let pb = body_path(b);
        pa.split('/').cmp(pb.split('/'))
    });
    assert_eq!(by_path, sorted);
    assert_eq!(body_path("a"), "objects/61");
    assert_eq!(key_of("manifest"), None);
    assert_eq!(key_of("objects/6"), None);
    assert_eq!(key_of("objects/zz"), None);
    assert_eq!(key_of("objects/61+/62"), None);
    assert_eq!(key_of("objects/"), None);
    assert_eq!(key_of("objects/ff"), None, "not UTF-8");
}

#[test]
fn same_bytes_takes_any_etag_of_the_same_content() {
    let e = entry("k", 5, "abc");
    assert!(same_bytes(&e, 5, "\"SRC\""));
    assert!(same_bytes(&e, 5, "abc"));
    assert!(same_bytes(&e, 5, "\"abc-2\""));
    assert!(!same_bytes(&e, 6, "abc"));
    assert!(!same_bytes(&e, 5, "\"other\""));
    assert!(!same_bytes(&e, 5, ""));
}

#[test]
fn decisions_compare_bytes_and_metadata() {
    let mut e = entry("k", 5, "abc");
    e.meta.content_type = Some("text/plain".into());
    e.meta.user.insert("owner".into(), "shop".into());
    let t = |etag: &str| Metadata {
        etag: Some(etag.into()),
        last_modified: Some("other".into()),
        ..e.meta.clone()
    };
    assert_eq!(decide(&e, None, false), Decision::Write);
    assert_eq!(decide(&e, Some(&t("\"abc\"")), false), Decision::Same);
    assert_eq!(decide(&e, Some(&t("zzz")), false), Decision::Conflict);
    assert_eq!(decide(&e, Some(&t("zzz")), true), Decision::Overwrite);
    // The same bytes with other metadata differ too.
    let mut other = t("abc");
    other.user.insert("owner".into(), "someone".into());
    assert_eq!(decide(&e, Some(&other), false), Decision::Conflict);
    let mut other = t("abc");
    other.content_type = None;
    assert_eq!(decide(&e, Some(&other), true), Decision::Overwrite);
    let mut no_etag = t("abc");
    no_etag.etag = None;
    assert_eq!(decide(&e, Some(&no_etag), false), Decision::Conflict);
}

#[test]
fn etags_of_single_and_multipart_writes() {
    let mut h = EtagHasher::default();
    h.update(b"hello");
    let (md5, etag) = h.finish();
    assert_eq!(md5, "5d41402abc4b2a76b9719d911017c592");
    assert_eq!(etag, md5);
    // 16 MiB + 1 byte fed in odd pieces: two parts.
    let part = PART_SIZE as usize;
    let data = vec![7u8; part + 1];
    let mut h = EtagHasher::default();
    for piece in data.chunks(1_000_003) {
        h.update(piece);
    }
    let (md5, etag) = h.finish();
    let whole = super::hex(&Md5::digest(&data));
    assert_eq!(md5, whole);
    let mut of = Md5::new();
    of.update(Md5::digest(&data[..part]));
    of.update(Md5::digest(&data[part..]));
    assert_eq!(etag, format!("{}-2", super::hex(&of.finalize())));
    // Exactly the threshold: one PUT.
    let mut h = EtagHasher::default();
    h.update(&vec![1u8; MULTIPART_ABOVE as usize]);
    let (md5, etag) = h.finish();
    assert_eq!(md5, etag);
}

#[test]
fn target_keys() {
    assert_eq!(target_key("p/a", "p/", "q/").as_deref(), Some("q/a"));
    assert_eq!(target_key("p/a", "p/", "").as_deref(), Some("a"));
    assert_eq!(target_key("p/", "p/", ""), None);
    assert_eq!(
        target_key("a", "", "restored/").as_deref(),
        Some("restored/a")
    );
}

#[test]
fn merge_pairs_and_refuses_disorder() {
    let a = ["a", "c", "d"];
    let b = ["b", "c", "e"];
    let got: Vec<_> = merge(a.iter(), b.iter(), |x| x, |y| y)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        got,
        vec![
            Paired::Left(&"a"),
            Paired::Right(&"b"),
            Paired::Both(&"c", &"c"),
            Paired::Left(&"d"),
            Paired::Right(&"e"),
        ]
    );
    let bad = ["b", "a"];
    let r: Result<Vec<_>, _> = merge(bad.iter(), b.iter(), |x| x, |y| y).collect();
    assert!(r.unwrap_err().contains("not in key order"));
    // Byte order, not char order: "é" (0xc3…) after "z".
    let c = ["z", "é"];
    assert!(merge(c.iter(), [].iter(), |x: &&&str| **x, |y: &&&str| **y).all(|r| r.is_ok()));
}
