//! A bucket in an archive, as data: where each object's body lies in the mirror a backup keeps
//! (its key written in hex, so any key is a file name and the engines' name order is the keys'
//! byte order), the manifest's lines (each object's metadata, in key order), the ETag a restore's
//! upload makes, whether a target object holds the same bytes, and the merge of two key-ordered
//! streams both directions are made of. No I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

/// The archive's description of the bucket (first in the archive).
pub const HEADER: &str = "bucket.json";
/// Every object's metadata, one JSON line each, in key order (second in the archive).
pub const MANIFEST: &str = "manifest";
/// The directory of the objects' bodies.
pub const OBJECTS: &str = "objects";
/// Hex characters per path segment (a file name stays under 255 bytes).
const SEGMENT: usize = 200;
/// A restore writes objects larger than this by a multipart upload.
pub const MULTIPART_ABOVE: u64 = 16 << 20;
/// The part size of a restore's multipart upload.
pub const PART_SIZE: u64 = 16 << 20;

/// An object as a listing gives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object {
    /// Its key.
    pub key: String,
    /// Bytes.
    pub size: u64,
    /// Its ETag, as the server writes it (quotes included).
    pub etag: String,
    /// Last-Modified, as the listing writes it (RFC 3339).
    pub last_modified: String,
}

/// What makes an object the same object again: its headers and user metadata, and what the
/// server says of it (size, ETag, Last-Modified; recorded, a write cannot set them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// Bytes.
    pub size: u64,
    /// `Content-Type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `Content-Encoding`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// `Content-Language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// `Content-Disposition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    /// `Cache-Control`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// `Expires`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// `x-amz-meta-*`, by lowercase name without the prefix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, String>,
    /// The ETag (quotes included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// `Last-Modified` (HTTP date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

/// One object of a manifest: its key, what the listing said of it (to tell an unchanged object
/// at the next backup), its bytes' MD5 and the ETag a restore's upload gives it, and its
/// metadata as its GET answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The listing's ETag.
    pub listed_etag: String,
    /// The listing's Last-Modified.
    pub listed_modified: String,
    /// MD5 of the bytes, hex.
    pub md5: String,
    /// The ETag a restore's write makes, quotes left out: the MD5 for a single PUT, the MD5 of
    /// the parts' MD5s and `-N` for a multipart upload in [`PART_SIZE`] parts.
    pub written_etag: String,
    /// The metadata.
    #[serde(flatten)]
    pub meta: Metadata,
}

/// The archive's description of the bucket ([`HEADER`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    /// Format version (1).
    pub version: u32,
    /// The endpoint the objects were read from.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// The prefix listed ("" for the whole bucket).
    pub prefix: String,
    /// Objects in the archive.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Listed objects gone when read (not in the archive).
    pub gone: u64,
    /// Listed objects another version of which was read (the archive has what was read).
    pub changed: u64,
}

/// The mirror path (relative to the mirror's root) of an object's body: [`OBJECTS`], then the
/// key's bytes in lowercase hex cut in segments of 200 characters, each but the last a
/// directory named with a `+` after it (`+` sorts before every hex digit, and a file `ab` before
/// a directory `ab…+`, so the engines' name order is the keys' byte order).
pub fn body_path(key: &str) -> String {
    let hex = hex(key.as_bytes());
    let mut out = String::from(OBJECTS);
    let mut rest = hex.as_str();
    while rest.len() > SEGMENT {
        out.push('/');
        out.push_str(&rest[..SEGMENT]);
        out.push('+');
        rest = &rest[SEGMENT..];
    }
    out.push('/');
    out.push_str(rest);
    out
}

/// The key a mirror path (as [`body_path`] writes it, relative, an archive's `./` or `/` in
/// front allowed) is the body of; `None` for any other path.
pub fn key_of(path: &str) -> Option<String> {
    let path = path.trim_start_matches("./").trim_start_matches('/');
    let rest = path.strip_prefix(OBJECTS)?.strip_prefix('/')?;
    let mut hex = String::new();
    let mut segments = rest.split('/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        let seg = if last {
            seg
        } else {
            seg.strip_suffix('+').filter(|s| s.len() == SEGMENT)?
        };
        if seg.is_empty() || seg.len() > SEGMENT {
            return None;
        }
        hex.push_str(seg);
    }
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            let pair = &hex[i..i + 2];
            if pair
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
            {
                u8::from_str_radix(pair, 16).ok()
            } else {
                None
            }
        })
        .collect();
    String::from_utf8(bytes?).ok()
}

/// An ETag without quotes, lowercase.
pub fn bare_etag(etag: &str) -> String {
    etag.trim().trim_matches('"').to_ascii_lowercase()
}

/// Whether a target object holds the bytes of `entry`: same size and an ETag that is the
/// source's, the bytes' MD5, or what a restore's upload of them makes.
pub fn same_bytes(entry: &Entry, size: u64, etag: &str) -> bool {
    let t = bare_etag(etag);
    size == entry.meta.size
        && !t.is_empty()
        && (t == bare_etag(&entry.listed_etag) || t == entry.md5 || t == entry.written_etag)
}

/// The MD5 of an object's bytes and the ETag a restore's upload of them makes, fed piece by
/// piece as the body is read.
#[derive(Clone, Debug, Default)]
pub struct EtagHasher {
    whole: Md5,
    part: Md5,
    in_part: u64,
    parts: Vec<[u8; 16]>,
    size: u64,
}

impl EtagHasher {
    /// Adds the next bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.whole.update(data);
        self.size += data.len() as u64;
        while !data.is_empty() {
            let room = (PART_SIZE - self.in_part) as usize;
            let n = room.min(data.len());
            self.part.update(&data[..n]);
            self.in_part += n as u64;
            data = &data[n..];
            if self.in_part == PART_SIZE {
                self.parts.push(digest16(std::mem::take(&mut self.part)));
                self.in_part = 0;
            }
        }
    }

    /// The MD5 (hex) and the written ETag.
    pub fn finish(mut self) -> (String, String) {
        let md5 = hex(&self.whole.finalize());
        if self.size <= MULTIPART_ABOVE {
            return (md5.clone(), md5);
        }
        if self.in_part > 0 {
            self.parts.push(digest16(self.part));
        }
        let mut of_parts = Md5::new();
        for p in &self.parts {
            of_parts.update(p);
        }
        let etag = format!("{}-{}", hex(&of_parts.finalize()), self.parts.len());
        (md5, etag)
    }
}

fn digest16(h: Md5) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&h.finalize());
    a
}

/// Bytes in lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The key an object of the archive gets in the target: its key with the archive's prefix
/// replaced by the target's (`None` when that leaves an empty key).
pub fn target_key(key: &str, from_prefix: &str, to_prefix: &str) -> Option<String> {
    let rest = key.strip_prefix(from_prefix).unwrap_or(key);
    let k = format!("{to_prefix}{rest}");
    (!k.is_empty()).then_some(k)
}

/// A step of the merge of two streams ordered by the same key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Paired<A, B> {
    /// Only the left stream has the key.
    Left(A),
    /// Only the right stream has the key.
    Right(B),
    /// Both have it.
    Both(A, B),
}

/// Merges two streams, each in ascending byte order of its items' keys, into one in that
/// order. An item out of order in either stream is an error (the stream is not what the
/// merge needs, and a merge of it would pair the wrong items).
pub struct Merge<A: Iterator, B: Iterator, KA, KB> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
    key_a: KA,
    key_b: KB,
    last_a: Option<String>,
    last_b: Option<String>,
}

/// See [`Merge`].
pub fn merge<A, B, KA, KB>(a: A, b: B, key_a: KA, key_b: KB) -> Merge<A, B, KA, KB>
where
    A: Iterator,
    B: Iterator,
    KA: Fn(&A::Item) -> &str,
    KB: Fn(&B::Item) -> &str,
{
    Merge {
        a: a.peekable(),
        b: b.peekable(),
        key_a,
        key_b,
        last_a: None,
        last_b: None,
    }
}

fn in_order(last: &mut Option<String>, key: &str, which: &str) -> Result<(), String> {
    if let Some(l) = last
        && l.as_bytes() >= key.as_bytes()
    {
        return Err(format!(
            "the {which} is not in key order ({key:?} after {l:?})"
        ));
    }
    *last = Some(key.to_owned());
    Ok(())
}

impl<A, B, KA, KB> Iterator for Merge<A, B, KA, KB>
where
    A: Iterator,
    B: Iterator,
    KA: Fn(&A::Item) -> &str,
    KB: Fn(&B::Item) -> &str,
{
    type Item = Result<Paired<A::Item, B::Item>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let order = match (self.a.peek(), self.b.peek()) {
            (None, None) => return None,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => (self.key_a)(x).as_bytes().cmp((self.key_b)(y).as_bytes()),
        };
        let step = match order {
            std::cmp::Ordering::Less => {
                let x = self.a.next()?;
                if let Err(e) = in_order(&mut self.last_a, (self.key_a)(&x), "first stream") {
                    return Some(Err(e));
                }
                Paired::Left(x)
            }
            std::cmp::Ordering::Greater => {
                let y = self.b.next()?;
                if let Err(e) = in_order(&mut self.last_b, (self.key_b)(&y), "second stream") {
                    return Some(Err(e));
                }
                Paired::Right(y)
            }
            std::cmp::Ordering::Equal => {
                let x = self.a.next()?;
                let y = self.b.next()?;
                if let Err(e) = in_order(&mut self.last_a, (self.key_a)(&x), "first stream")
                    .and_then(|()| in_order(&mut self.last_b, (self.key_b)(&y), "second stream"))
                {
                    return Some(Err(e));
                }
                Paired::Both(x, y)
            }
        };
        Some(Ok(step))
    }
}

/// What a restore does with one object of the archive, given the target's object of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Decision {
    /// The target has no such key: write it.
    Write,
    /// The target has the same bytes: leave it.
    Same,
    /// The target's bytes differ and `--overwrite` was given: write it.
    Overwrite,
    /// The target's bytes differ and `--overwrite` was not given: leave it, and change nothing.
    Conflict,
}

/// Whether two objects' headers and user metadata (what a write sets) are the same.
pub fn same_metadata(a: &Metadata, b: &Metadata) -> bool {
    a.content_type == b.content_type
        && a.content_encoding == b.content_encoding
        && a.content_language == b.content_language
        && a.content_disposition == b.content_disposition
        && a.cache_control == b.cache_control
        && a.expires == b.expires
        && a.user == b.user
}

/// Whether the target's object (as its HEAD answers) is the archive's: the same bytes and the
/// same metadata.
pub fn same_object(entry: &Entry, target: &Metadata) -> bool {
    same_bytes(
        entry,
        target.size,
        target.etag.as_deref().unwrap_or_default(),
    ) && same_metadata(&entry.meta, target)
}

/// The decision for one object, given the target's object of its key as its HEAD answers.
pub fn decide(entry: &Entry, target: Option<&Metadata>, overwrite: bool) -> Decision {
    match target {
        None => Decision::Write,
        Some(t) if same_object(entry, t) => Decision::Same,
        Some(_) if overwrite => Decision::Overwrite,
        Some(_) => Decision::Conflict,
    }
}

#[cfg(test)]
mod tests;
