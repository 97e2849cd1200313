//! PATCH bodies: JSON merge patch (RFC 7386), strategic merge patch (merge keys of the built-in types, `$patch`
//! directives) and JSON patch (RFC 6902).

use serde_json::{Map, Value};

/// A patch that could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The body is not valid for its content type (400).
    #[error("error decoding patch: {0}")]
    Decode(String),
    /// A JSON patch operation failed (422 with the generic message).
    #[error("json patch failed: {0}")]
    Failed(String),
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let mut out = target.clone();
    json_patch::merge(&mut out, patch);
    out
}

/// RFC 6902 JSON patch.
pub fn json_patch(target: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_slice(body).map_err(|e| PatchError::Decode(go_json_error(&e)))?;
    let mut out = target.clone();
    json_patch::patch(&mut out, &ops.0).map_err(|e| PatchError::Failed(e.to_string()))?;
    Ok(out)
}

/// The merge key of a list field under the built-in types' `patchMergeKey` tags (by field name).
pub fn merge_key(field: &str, sample: Option<&Value>) -> Option<&'static str> {
    let has = |k: &str| sample.is_some_and(|s| s.get(k).is_some());
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ports" if has("containerPort") || sample.is_none() => Some("containerPort"),
        "ports" => Some("port"),
        "conditions" | "addresses" => Some("type"),
        "ownerReferences" => Some("uid"),
        "topologySpreadConstraints" => Some("topologyKey"),
        "hostAliases" => Some("ip"),
        _ => None,
    }
}

fn is_primitive_merge_list(field: &str) -> bool {
    field == "finalizers"
}

/// Strategic merge patch for the built-in types.
pub fn strategic_merge(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            Ok(smp_map(t, p).map(Value::Object).unwrap_or(Value::Null))
        }
        (_, Value::Object(p)) => Ok(smp_map(&Map::new(), p)
            .map(Value::Object)
            .unwrap_or(Value::Null)),
        _ => Err(PatchError::Decode(
            "json: cannot unmarshal array into Go value of type map[string]interface {}".into(),
        )),
    }
}

fn strip_directives(p: &Map<String, Value>) -> Map<String, Value> {
    p.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), strip_value(v)))
        .collect()
}

fn strip_value(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(strip_directives(m)),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|e| e.get("$patch").is_none())
                .map(strip_value)
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Merge a patch map into a target map; `None` means `$patch: delete` removed the whole map.
fn smp_map(target: &Map<String, Value>, patch: &Map<String, Value>) -> Option<Map<String, Value>> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("delete") => return None,
        Some("replace") => return Some(strip_directives(patch)),
        _ => {}
    }
    let mut out = target.clone();
    for (k, pv) in patch {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Some(remove)) = (out.get_mut(field), pv.as_array()) {
                cur.retain(|e| !remove.contains(e));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if pv.is_null() {
            out.remove(k);
            continue;
        }
        let merged = match (out.get(k), pv) {
            (Some(Value::Object(t)), Value::Object(p)) => smp_map(t, p).map(Value::Object),
            (None, Value::Object(p)) => smp_map(&Map::new(), p).map(Value::Object),
            (Some(Value::Array(t)), Value::Array(p)) => Some(Value::Array(smp_list(k, t, p))),
            (None, Value::Array(p)) => Some(Value::Array(smp_list(k, &[], p))),
            (_, other) => Some(strip_value(other)),
        };
        match merged {
            Some(v) => {
                out.insert(k.clone(), v);
            }
            None => {
                out.remove(k);
            }
        }
    }
    if let Some(keep) = patch.get("$retainKeys").and_then(Value::as_array) {
        out.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k)));
    }
    Some(out)
}

fn smp_list(field: &str, target: &[Value], patch: &[Value]) -> Vec<Value> {
    if patch
        .iter()
        .any(|e| e.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return patch
            .iter()
            .filter(|e| e.get("$patch").is_none())
            .map(strip_value)
            .collect();
    }
    if is_primitive_merge_list(field) {
        let mut out = target.to_vec();
        for e in patch {
            if !out.contains(e) {
                out.push(e.clone());
            }
        }
        return out;
    }
    let sample = patch.iter().chain(target.iter()).find(|e| e.is_object());
    let Some(key) = merge_key(field, sample) else {
        return patch.iter().map(strip_value).collect();
    };
    if !patch.iter().all(Value::is_object) {
        return patch.iter().map(strip_value).collect();
    }
    let mut out = target.to_vec();
    for pe in patch {
        let Some(pm) = pe.as_object() else { continue };
        let kv = pm.get(key);
        let pos = out.iter().position(|t| kv.is_some() && t.get(key) == kv);
        match (pm.get("$patch").and_then(Value::as_str), pos) {
            (Some("delete"), Some(i)) => {
                out.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => {
                if let Some(tm) = out[i].as_object() {
                    match smp_map(tm, pm) {
                        Some(m) => out[i] = Value::Object(m),
                        None => {
                            out.remove(i);
                        }
                    }
                }
            }
            (_, None) => out.push(Value::Object(strip_directives(pm))),
        }
    }
    out
}

/// Go's `encoding/json` message for a few common decode errors.
pub fn go_json_error(e: &serde_json::Error) -> String {
    if e.is_eof() {
        "unexpected end of JSON input".into()
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_removes_nulls() {
        let t = json!({"metadata": {"labels": {"x": "1", "k": "v"}}});
        let out = merge_patch(
            &t,
            &json!({"metadata": {"labels": {"merge": "yes", "x": null}}}),
        );
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"k": "v", "merge": "yes"}}})
        );
    }

    #[test]
    fn json_patch_ops_and_failures() {
        let t = json!({"metadata": {"labels": {"y": "1"}}, "a": [1, 2]});
        let body = br#"[{"op":"add","path":"/metadata/labels/jp","value":"yes"},{"op":"remove","path":"/metadata/labels/y"},
            {"op":"test","path":"/a/0","value":1},{"op":"move","from":"/a/1","path":"/b"},{"op":"copy","from":"/b","path":"/c"},
            {"op":"replace","path":"/c","value":3}]"#;
        let out = json_patch(&t, body).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"jp": "yes"}}, "a": [1], "b": 2, "c": 3})
        );
        assert!(matches!(
            json_patch(&t, br#"[{"op":"test","path":"/a/0","value":9}]"#),
            Err(PatchError::Failed(_))
        ));
        assert!(matches!(
            json_patch(&t, br#"[{"op":"remove","path":"/nope"}]"#),
            Err(PatchError::Failed(_))
        ));
        assert_eq!(
            json_patch(&t, b"[").unwrap_err().to_string(),
            "error decoding patch: unexpected end of JSON input"
        );
    }

    #[test]
    fn strategic_merge_merges_containers_by_name_and_honours_directives() {
        let t = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}],
            "tolerations": [{"key": "k"}]}, "metadata": {"finalizers": ["f1"]}});
        let p = json!({"spec": {"containers": [{"name": "a", "image": "x2"}, {"name": "b", "$patch": "delete"}, {"name": "c", "image": "z"}],
            "tolerations": [{"key": "k2"}], "$setElementOrder/containers": [{"name": "a"}]},
            "metadata": {"finalizers": ["f2"], "labels": {"smp": "yes"}}});
        let out = strategic_merge(&t, &p).unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "a", "image": "x2"}, {"name": "c", "image": "z"}])
        );
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "k2"}]));
        assert_eq!(out["metadata"]["finalizers"], json!(["f1", "f2"]));
        assert_eq!(out["metadata"]["labels"], json!({"smp": "yes"}));
        let out = strategic_merge(&out, &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["f1"]}, "spec": {"$patch": "replace", "x": 1}})).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["f2"]));
        assert_eq!(out["spec"], json!({"x": 1}));
    }
}
