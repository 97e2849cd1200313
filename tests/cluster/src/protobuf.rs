//! Request bodies in the Kubernetes protobuf encoding, for the kinds kubectl sends that way
//! (`create namespace|configmap|secret|serviceaccount`, `create token`, `auth can-i`). A real API server
//! accepts protobuf for every built-in kind. Here the envelope (`k8s\0` + `runtime.Unknown`)
//! and these few messages are decoded into the same JSON the handlers already take.

use serde_json::{Map, Value, json};

/// A decoded field: its number and value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

/// The fields of one message, in order.
fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (num, wire) = (key >> 3, key & 7);
        match wire {
            0 => out.push((num, Field::Varint(varint(buf, &mut pos)?))),
            2 => {
                let len =
                    usize::try_from(varint(buf, &mut pos)?).map_err(|_| "length too large")?;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or("truncated field")?;
                out.push((num, Field::Bytes(&buf[pos..end])));
                pos = end;
            }
            1 => pos += 8,
            5 => pos += 4,
            w => return Err(format!("unsupported wire type {w}")),
        }
    }
    Ok(out)
}

fn text(b: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(b).into_owned())
}

fn base64(b: &[u8]) -> Value {
    use base64::Engine;
    Value::String(base64::engine::general_purpose::STANDARD.encode(b))
}

/// A map entry (`key` = 1, `value` = 2).
fn entry(b: &[u8], value: Render) -> Result<(String, Value), String> {
    let mut k = String::new();
    let mut v = Value::String(String::new());
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => k = String::from_utf8_lossy(x).into_owned(),
            (2, Field::Bytes(x)) => v = value(x),
            _ => {}
        }
    }
    Ok((k, v))
}

/// How a map's values are rendered (text, or base64 for bytes).
type Render = fn(&[u8]) -> Value;
/// A nested message's shape.
type Nested = fn() -> Shape;

/// Reads `message` into a JSON object: `strings` name the string fields, `maps` the
/// string-keyed maps (with how to render values), `messages` the nested messages.
struct Shape {
    strings: &'static [(u64, &'static str)],
    repeated: &'static [(u64, &'static str)],
    varints: &'static [(u64, &'static str, bool)],
    maps: &'static [(u64, &'static str, Render)],
    messages: &'static [(u64, &'static str, Nested)],
}

fn read(b: &[u8], shape: &Shape) -> Result<Value, String> {
    let mut obj = Map::new();
    for (n, f) in fields(b)? {
        match f {
            Field::Bytes(x) => {
                if let Some((_, name)) = shape.strings.iter().find(|(k, _)| *k == n) {
                    obj.insert((*name).into(), text(x));
                } else if let Some((_, name)) = shape.repeated.iter().find(|(k, _)| *k == n) {
                    let list = obj.entry(*name).or_insert_with(|| json!([]));
                    if let Some(a) = list.as_array_mut() {
                        a.push(text(x));
                    }
                } else if let Some((_, name, render)) = shape.maps.iter().find(|(k, _, _)| *k == n)
                {
                    let (k, v) = entry(x, *render)?;
                    let m = obj.entry(*name).or_insert_with(|| json!({}));
                    if let Some(m) = m.as_object_mut() {
                        m.insert(k, v);
                    }
                } else if let Some((_, name, sub)) = shape.messages.iter().find(|(k, _, _)| *k == n)
                {
                    obj.insert((*name).into(), read(x, &sub())?);
                }
            }
            Field::Varint(v) => {
                if let Some((_, name, is_bool)) = shape.varints.iter().find(|(k, _, _)| *k == n) {
                    obj.insert(
                        (*name).into(),
                        if *is_bool {
                            json!(v != 0)
                        } else {
                            json!(v as i64)
                        },
                    );
                }
            }
        }
    }
    Ok(Value::Object(obj))
}

const NONE: Shape = Shape {
    strings: &[],
    repeated: &[],
    varints: &[],
    maps: &[],
    messages: &[],
};

fn object_meta() -> Shape {
    Shape {
        strings: &[(1, "name"), (2, "generateName"), (3, "namespace")],
        repeated: &[(14, "finalizers")],
        varints: &[],
        maps: &[(11, "labels", text), (12, "annotations", text)],
        messages: &[],
    }
}

fn kind_shape(kind: &str) -> Option<Shape> {
    Some(match kind {
        "Namespace" => Shape {
            messages: &[
                (1, "metadata", object_meta),
                (2, "spec", || Shape {
                    repeated: &[(1, "finalizers")],
                    ..NONE
                }),
            ],
            ..NONE
        },
        "ConfigMap" => Shape {
            varints: &[(4, "immutable", true)],
            maps: &[(2, "data", text), (3, "binaryData", base64)],
            messages: &[(1, "metadata", object_meta)],
            ..NONE
        },
        "Secret" => Shape {
            strings: &[(3, "type")],
            varints: &[(5, "immutable", true)],
            maps: &[(2, "data", base64), (4, "stringData", text)],
            messages: &[(1, "metadata", object_meta)],
            ..NONE
        },
        "ServiceAccount" => Shape {
            varints: &[(4, "automountServiceAccountToken", true)],
            messages: &[(1, "metadata", object_meta)],
            ..NONE
        },
        "TokenRequest" => Shape {
            messages: &[
                (1, "metadata", object_meta),
                (2, "spec", || Shape {
                    repeated: &[(1, "audiences")],
                    varints: &[(4, "expirationSeconds", false)],
                    messages: &[(3, "boundObjectRef", || Shape {
                        strings: &[(1, "kind"), (2, "apiVersion"), (3, "name"), (4, "uid")],
                        ..NONE
                    })],
                    ..NONE
                }),
            ],
            ..NONE
        },
        "SelfSubjectAccessReview" => Shape {
            messages: &[
                (1, "metadata", object_meta),
                (2, "spec", || Shape {
                    messages: &[
                        (1, "resourceAttributes", || Shape {
                            strings: &[
                                (1, "namespace"),
                                (2, "verb"),
                                (3, "group"),
                                (4, "version"),
                                (5, "resource"),
                                (6, "subresource"),
                                (7, "name"),
                            ],
                            ..NONE
                        }),
                        (2, "nonResourceAttributes", || Shape {
                            strings: &[(1, "path"), (2, "verb")],
                            ..NONE
                        }),
                    ],
                    ..NONE
                }),
            ],
            ..NONE
        },
        _ => return None,
    })
}

/// Decodes a protobuf request body into JSON; `Err` says why it cannot be.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(b"k8s\0")
        .ok_or("not a Kubernetes protobuf envelope")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(rest)? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                for (m, g) in fields(tm)? {
                    match (m, g) {
                        (1, Field::Bytes(v)) => {
                            api_version = String::from_utf8_lossy(v).into_owned()
                        }
                        (2, Field::Bytes(v)) => kind = String::from_utf8_lossy(v).into_owned(),
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(r)) => raw = r,
            _ => {}
        }
    }
    let shape = kind_shape(&kind).ok_or_else(|| {
        format!("protobuf bodies of kind {kind:?} are not supported by the local test cluster")
    })?;
    let mut v = read(raw, &shape)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("apiVersion".into(), json!(api_version));
        o.insert("kind".into(), json!(kind));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn a_self_subject_access_review_decodes() {
        let attrs = [
            field(1, b"demo"),
            field(2, b"create"),
            field(5, b"pods"),
            field(6, b"exec"),
        ]
        .concat();
        let spec = field(1, &attrs);
        let raw = [field(1, &[]), field(2, &spec)].concat();
        let type_meta = [
            field(1, b"authorization.k8s.io/v1"),
            field(2, b"SelfSubjectAccessReview"),
        ]
        .concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &raw)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(v["kind"], "SelfSubjectAccessReview");
        assert_eq!(
            v["spec"]["resourceAttributes"],
            json!({"namespace": "demo", "verb": "create", "resource": "pods", "subresource": "exec"})
        );
    }

    #[test]
    fn unknown_kinds_and_garbage_are_refused() {
        let type_meta = [field(1, b"v1"), field(2, b"Pod")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta)].concat();
        assert!(decode(&body).unwrap_err().contains("\"Pod\""));
        assert!(decode(b"{}").is_err());
        assert!(decode(b"k8s\0\x0a\xff").is_err());
    }
}
