//! A map between field paths (`spec.snapshots.targets[0].pvc`) and their line:column in the
//! YAML source, built from a second, untyped parse. It lets typed parsing and semantic
//! validation stay free of span bookkeeping while every error still points at its place.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A line and column, both 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

#[derive(Debug)]
enum Node {
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any YAML node")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(k) = a.next_key::<Spanned<KeyText>>()? {
                    let v = a.next_value::<Spanned<Node>>()?;
                    let key = Spanned {
                        value: k.value.0,
                        referenced: k.referenced,
                        defined: k.defined,
                    };
                    entries.push((key, v));
                }
                Ok(Node::Map(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(n) = a.next_element::<Spanned<Node>>()? {
                    items.push(n);
                }
                Ok(Node::Seq(items))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
        }
        d.deserialize_any(NodeVisitor)
    }
}

/// A mapping key of any scalar type, as text.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a scalar key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".into()))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

/// One node of the document: its path, where its key is (for mapping entries) and where its value starts.
#[derive(Clone, Debug)]
struct Entry {
    path: String,
    key: Option<Pos>,
    value: Pos,
    is_map: bool,
}

/// Field paths and their source positions, for one document.
#[derive(Clone, Debug, Default)]
pub struct SpanIndex {
    entries: Vec<Entry>,
}

fn pos(loc: &serde_saphyr::Location) -> Pos {
    Pos {
        line: loc.line() as u32,
        column: loc.column() as u32,
    }
}

impl SpanIndex {
    /// Builds the index of a YAML document; an empty index when the text does not parse
    /// (the typed parse then reports the syntax error with its own position).
    pub fn build(text: &str) -> SpanIndex {
        let mut index = SpanIndex::default();
        if let Ok(root) = serde_saphyr::from_str::<Spanned<Node>>(text) {
            index.walk(String::new(), None, &root);
        }
        index
    }

    fn walk(&mut self, path: String, key: Option<Pos>, node: &Spanned<Node>) {
        let is_map = matches!(node.value, Node::Map(_));
        self.entries.push(Entry {
            path: path.clone(),
            key,
            value: pos(&node.referenced),
            is_map,
        });
        match &node.value {
            Node::Map(entries) => {
                for (k, v) in entries {
                    let child = if path.is_empty() {
                        k.value.clone()
                    } else {
                        format!("{path}.{}", k.value)
                    };
                    self.walk(child, Some(pos(&k.referenced)), v);
                }
            }
            Node::Seq(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.walk(format!("{path}[{i}]"), None, v);
                }
            }
            Node::Scalar => {}
        }
    }

    /// Where a field path is written: its key if it has one, else its value. A path that is not
    /// in the document (a missing field) resolves to its nearest written ancestor.
    pub fn position_of(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(e) = self.entries.iter().find(|e| e.path == p) {
                return Some(e.key.unwrap_or(e.value));
            }
            if p.is_empty() {
                return None;
            }
            p = parent_path(p);
        }
    }

    /// The path of the deepest mapping whose value starts at `at`.
    pub fn map_at(&self, at: Pos) -> Option<&str> {
        self.entries
            .iter()
            .filter(|e| e.is_map && e.value == at)
            .max_by_key(|e| e.path.len())
            .map(|e| e.path.as_str())
    }

    /// The path of the deepest mapping entry whose key is at `at`.
    pub fn key_at(&self, at: Pos) -> Option<&str> {
        self.entries
            .iter()
            .filter(|e| e.key == Some(at))
            .max_by_key(|e| e.path.len())
            .map(|e| e.path.as_str())
    }

    /// The path of the deepest node whose value starts at `at`, else of the last node that
    /// starts before it.
    pub fn node_at(&self, at: Pos) -> Option<&str> {
        self.entries
            .iter()
            .filter(|e| e.value == at)
            .max_by_key(|e| e.path.len())
            .or_else(|| {
                self.entries
                    .iter()
                    .filter(|e| e.value <= at)
                    .max_by_key(|e| e.value)
            })
            .map(|e| e.path.as_str())
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → ``.
pub fn parent_path(path: &str) -> &str {
    match path.rfind(['.', '[']) {
        Some(i) => &path[..i],
        None => "",
    }
}

/// Appends a field to a path.
pub fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "a: 1\nb:\n  c: [1, 2]\n  d:\n    - e: x\n      f: y\n";

    #[test]
    fn positions_of_paths() {
        let idx = SpanIndex::build(DOC);
        assert_eq!(idx.position_of("a"), Some(Pos { line: 1, column: 1 }));
        assert_eq!(idx.position_of("b.c"), Some(Pos { line: 3, column: 3 }));
        assert_eq!(
            idx.position_of("b.c[1]"),
            Some(Pos {
                line: 3,
                column: 10
            })
        );
        assert_eq!(
            idx.position_of("b.d[0].f"),
            Some(Pos { line: 6, column: 7 })
        );
        // a missing field resolves to its nearest ancestor
        assert_eq!(
            idx.position_of("b.d[0].zz"),
            Some(Pos { line: 5, column: 7 })
        );
    }

    #[test]
    fn paths_at_positions() {
        let idx = SpanIndex::build(DOC);
        assert_eq!(idx.key_at(Pos { line: 6, column: 7 }), Some("b.d[0].f"));
        assert_eq!(idx.map_at(Pos { line: 5, column: 7 }), Some("b.d[0]"));
        assert_eq!(
            idx.node_at(Pos {
                line: 6,
                column: 10
            }),
            Some("b.d[0].f")
        );
    }

    #[test]
    fn parents() {
        assert_eq!(parent_path("a.b[2].c"), "a.b[2]");
        assert_eq!(parent_path("a.b[2]"), "a.b");
        assert_eq!(parent_path("a"), "");
    }
}
