//! A tricky file tree (nested and empty directories, symlinks, hard links, sparse and large
//! files, unicode names, modes, owners, xattrs, mtimes) and a manifest of everything a restore
//! must bring back, to compare a restored tree with its source.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

/// Fills `dir` with the tricky tree; returns its total apparent size.
pub fn build(dir: &Path) -> u64 {
    let w = |p: &str, data: &[u8]| {
        let f = dir.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, data).unwrap();
    };
    w("a/b/c/d/deep.txt", b"deep inside\n");
    w("top.txt", b"top level\n");
    w("ünïcødé-文件 with spaces.txt", "unicode ✓\n".as_bytes());
    std::fs::create_dir_all(dir.join("empty/also-empty")).unwrap();
    // A large file of incompressible-ish bytes (xorshift), 6 MiB.
    let big = crate::support::incompressible(6 * 1024 * 1024, 0x9e37_79b9_7f4a_7c15);
    w("big.bin", &big);
    // A sparse file: 64 MiB apparent, one block of data at the end.
    let sparse = dir.join("sparse.img");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(&sparse).unwrap();
        f.seek(SeekFrom::Start(64 * 1024 * 1024 - 4096)).unwrap();
        f.write_all(&[7u8; 4096]).unwrap();
    }
    // Links.
    std::fs::hard_link(dir.join("top.txt"), dir.join("a/hard-link-to-top")).unwrap();
    symlink("b/c/d/deep.txt", dir.join("a/relative-link")).unwrap();
    symlink("/nonexistent/target", dir.join("dangling-link")).unwrap();
    // Modes and owners.
    w("secret.key", b"not really\n");
    std::fs::set_permissions(
        dir.join("secret.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    w("bin/tool.sh", b"#!/bin/sh\necho hi\n");
    std::fs::set_permissions(
        dir.join("bin/tool.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(dir.join("a/b"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::lchown(dir.join("secret.key"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::lchown(dir.join("a/b"), Some(999), Some(999)).unwrap();
    std::os::unix::fs::lchown(dir.join("a/relative-link"), Some(4321), Some(4321)).unwrap();
    // Extended attributes.
    set_xattr(&dir.join("top.txt"), "user.origin", b"kentledge test");
    set_xattr(&dir.join("a/b/c"), "user.dir-note", b"on a directory");
    // Known mtimes.
    let t = std::fs::FileTimes::new()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000));
    std::fs::File::options()
        .write(true)
        .open(dir.join("top.txt"))
        .unwrap()
        .set_times(t)
        .unwrap();
    big.len() as u64 + 64 * 1024 * 1024
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let path = CString::new(p.as_os_str().as_bytes()).unwrap();
    let name = CString::new(name).unwrap();
    // SAFETY: valid NUL-terminated strings and a byte slice.
    let rc = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "setxattr {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let path = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 4096];
    // SAFETY: the buffer is as long as we say.
    let n = unsafe { libc::llistxattr(path.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    let mut out = BTreeMap::new();
    if n <= 0 {
        return out;
    }
    for name in names[..n as usize]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
    {
        let s = String::from_utf8_lossy(name).into_owned();
        if !s.starts_with("user.") {
            continue; // security.* and system.* differ between filesystems
        }
        let cname = CString::new(name).unwrap();
        let mut val = vec![0u8; 4096];
        // SAFETY: as above.
        let m = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                cname.as_ptr(),
                val.as_mut_ptr().cast(),
                val.len(),
            )
        };
        if m >= 0 {
            val.truncate(m as usize);
            out.insert(s, val);
        }
    }
    out
}

/// One entry of a tree as a restore must reproduce it.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    /// Content digest (files) or link target (symlinks).
    content: String,
    /// For files: the first path of its hard-link group.
    link_group: String,
    mtime: Option<i64>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

fn digest(p: &Path) -> String {
    let data = std::fs::read(p).unwrap();
    // FNV-1a 64 over the bytes plus the length: enough to tell different contents apart here.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in &data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}:{}", data.len())
}

/// Every entry under `root`, by relative path.
pub fn manifest(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut groups: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let (kind, content, size, mtime) = if ft.is_symlink() {
                (
                    "symlink",
                    std::fs::read_link(&p).unwrap().display().to_string(),
                    0,
                    None,
                )
            } else if ft.is_dir() {
                stack.push(p.clone());
                ("dir", String::new(), 0, None)
            } else {
                ("file", digest(&p), md.size(), Some(md.mtime()))
            };
            let link_group = if kind == "file" && md.nlink() > 1 {
                groups
                    .entry((md.dev(), md.ino()))
                    .or_insert_with(|| rel.clone())
                    .clone()
            } else {
                String::new()
            };
            out.insert(
                rel,
                Entry {
                    kind,
                    mode: if kind == "symlink" {
                        0
                    } else {
                        md.mode() & 0o7777
                    },
                    uid: md.uid(),
                    gid: md.gid(),
                    size,
                    content,
                    link_group,
                    mtime,
                    xattrs: xattrs(&p),
                },
            );
        }
    }
    out
}

/// Hard-link groups are named by their first path in walk order, which can differ between two
/// trees; name each by its sorted member list instead.
fn normalise(m: BTreeMap<String, Entry>) -> BTreeMap<String, Entry> {
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (p, e) in &m {
        if !e.link_group.is_empty() {
            members
                .entry(e.link_group.clone())
                .or_default()
                .push(p.clone());
        }
    }
    m.into_iter()
        .map(|(p, mut e)| {
            if !e.link_group.is_empty() {
                let mut v = members[&e.link_group].clone();
                v.sort();
                e.link_group = v.join("|");
            }
            (p, e)
        })
        .collect()
}

/// Asserts that `restored` has exactly what `source` has.
pub fn assert_same(source: &Path, restored: &Path) {
    let a = normalise(manifest(source));
    let b = normalise(manifest(restored));
    let keys_a: Vec<&String> = a.keys().collect();
    let keys_b: Vec<&String> = b.keys().collect();
    pretty_assertions::assert_eq!(keys_a, keys_b, "the same paths");
    for (k, ea) in &a {
        pretty_assertions::assert_eq!(ea, &b[k], "entry {k}");
    }
}

/// Whether a file is stored sparsely (fewer blocks than its size needs).
pub fn is_sparse(p: &Path) -> bool {
    let md = std::fs::metadata(p).unwrap();
    md.blocks() * 512 < md.size() / 2
}
