//! Files of JSON lines in ascending byte order of their keys: a listing pushed in any order and
//! sorted on disk in runs of bounded size, then merged; and a reader that stops at the first
//! line it cannot read and says so afterwards.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bytes of items held in memory before a sorted run is written out.
const RUN_BYTES: usize = 32 << 20;

/// Something with a key.
pub(super) trait Keyed {
    /// The key.
    fn key(&self) -> &str;
}

impl Keyed for crate::engines::bucket::Object {
    fn key(&self) -> &str {
        &self.key
    }
}

impl Keyed for crate::engines::bucket::Entry {
    fn key(&self) -> &str {
        &self.key
    }
}

/// Sorts items by key on disk: runs of at most [`RUN_BYTES`] sorted in memory, then merged.
pub(super) struct Sorter<T> {
    dir: PathBuf,
    held: Vec<(String, String)>,
    bytes: usize,
    runs: Vec<PathBuf>,
    count: u64,
    _of: std::marker::PhantomData<T>,
}

impl<T: Keyed + Serialize> Sorter<T> {
    /// A sorter writing its runs into `dir` (made if missing).
    pub(super) fn new(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Sorter {
            dir: dir.to_owned(),
            held: Vec::new(),
            bytes: 0,
            runs: Vec::new(),
            count: 0,
            _of: std::marker::PhantomData,
        })
    }

    /// Adds an item.
    pub(super) fn push(&mut self, item: &T) -> std::io::Result<()> {
        let line = serde_json::to_string(item).map_err(std::io::Error::other)?;
        self.bytes += line.len() + item.key().len() + 48;
        self.held.push((item.key().to_owned(), line));
        self.count += 1;
        if self.bytes >= RUN_BYTES {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> std::io::Result<()> {
        self.held.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let path = self.dir.join(format!("run-{}", self.runs.len()));
        let mut w = BufWriter::new(File::create(&path)?);
        for (_, line) in self.held.drain(..) {
            writeln!(w, "{line}")?;
        }
        w.flush()?;
        self.runs.push(path);
        self.bytes = 0;
        Ok(())
    }

    /// The sorted file (in the sorter's directory) and how many items it holds.
    pub(super) fn finish(mut self, name: &str) -> std::io::Result<(PathBuf, u64)> {
        let out = self.dir.join(name);
        if self.runs.is_empty() {
            self.spill()?;
            std::fs::rename(&self.runs[0], &out)?;
            return Ok((out, self.count));
        }
        if !self.held.is_empty() {
            self.spill()?;
        }
        let mut readers: Vec<_> = self
            .runs
            .iter()
            .map(|p| File::open(p).map(|f| BufReader::new(f).lines()))
            .collect::<Result<_, _>>()?;
        let mut heap = BinaryHeap::new();
        let key_of = |line: &str| -> std::io::Result<Vec<u8>> {
            let v: serde_json::Value = serde_json::from_str(line).map_err(std::io::Error::other)?;
            Ok(v["key"].as_str().unwrap_or_default().as_bytes().to_vec())
        };
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(line) = r.next() {
                let line = line?;
                heap.push(Reverse((key_of(&line)?, i, line)));
            }
        }
        let mut w = BufWriter::new(File::create(&out)?);
        while let Some(Reverse((_, i, line))) = heap.pop() {
            writeln!(w, "{line}")?;
            if let Some(next) = readers[i].next() {
                let next = next?;
                heap.push(Reverse((key_of(&next)?, i, next)));
            }
        }
        w.flush()?;
        for r in &self.runs {
            let _ = std::fs::remove_file(r);
        }
        Ok((out, self.count))
    }
}

/// Where a [`read`] stopped early, and why.
pub(super) type Stopped = Rc<RefCell<Option<String>>>;

/// The items of a JSON-lines file, in file order; a line that cannot be read ends the items
/// and is said in the returned cell (check it once the items are used up). A missing file has
/// no items.
pub(super) fn read<T: DeserializeOwned + 'static>(
    path: &Path,
) -> std::io::Result<(Box<dyn Iterator<Item = T>>, Stopped)> {
    let stopped: Stopped = Rc::new(RefCell::new(None));
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Box::new(std::iter::empty()), stopped));
        }
        Err(e) => return Err(e),
    };
    let cell = stopped.clone();
    let name = path.display().to_string();
    let mut lines = BufReader::new(file).lines();
    let iter = std::iter::from_fn(move || {
        if cell.borrow().is_some() {
            return None;
        }
        let line = match lines.next()? {
            Ok(l) => l,
            Err(e) => {
                *cell.borrow_mut() = Some(format!("reading {name}: {e}"));
                return None;
            }
        };
        match serde_json::from_str(&line) {
            Ok(v) => Some(v),
            Err(e) => {
                *cell.borrow_mut() = Some(format!("reading {name}: {e}"));
                None
            }
        }
    });
    Ok((Box::new(iter), stopped))
}

/// Drops items whose key equals the one before (journals of two interrupted runs may both
/// name a key).
pub(super) fn dedup<T: Keyed>(items: impl Iterator<Item = T>) -> impl Iterator<Item = T> {
    let mut last: Option<String> = None;
    items.filter(move |x| {
        let dup = last.as_deref() == Some(x.key());
        last = Some(x.key().to_owned());
        !dup
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::bucket::Object;

    fn obj(k: &str) -> Object {
        Object {
            key: k.into(),
            size: 1,
            etag: "e".into(),
            last_modified: "t".into(),
        }
    }

    #[test]
    fn sorts_in_runs_and_merges() {
        let dir = std::env::temp_dir().join(format!("kentledge-sort-{}", std::process::id()));
        let mut s = Sorter::<Object>::new(&dir).unwrap();
        let mut keys: Vec<String> = (0..5000)
            .map(|i| format!("k{}", (i * 7919) % 5000))
            .collect();
        keys.push("é".into());
        keys.push("z".into());
        for k in &keys {
            s.push(&obj(k)).unwrap();
            if s.held.len() == 1000 {
                s.spill().unwrap();
            }
        }
        let (path, n) = s.finish("sorted").unwrap();
        assert_eq!(n, keys.len() as u64);
        let (items, stopped) = read::<Object>(&path).unwrap();
        let got: Vec<String> = items.map(|o| o.key).collect();
        assert!(stopped.borrow().is_none());
        keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(got, keys);
        assert_eq!(got.last().map(String::as_str), Some("é"));
        std::fs::write(
            dir.join("bad"),
            "{\"key\":\"a\",\"size\":1,\"etag\":\"\",\"lastModified\":\"\"}\nnot json\n",
        )
        .unwrap();
        let (items, stopped) = read::<Object>(&dir.join("bad")).unwrap();
        assert_eq!(items.count(), 1);
        assert!(stopped.borrow().as_deref().unwrap().contains("bad"));
        let (items, _) = read::<Object>(&dir.join("missing")).unwrap();
        assert_eq!(items.count(), 0);
        let d: Vec<String> = dedup(["a", "a", "b"].into_iter().map(obj))
            .map(|o| o.key)
            .collect();
        assert_eq!(d, ["a", "b"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
