//! Server-side apply and `managedFields`: which manager owns which field, conflicts between managers, and the
//! merge of an applied configuration into the live object.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::patch::merge_key;

/// A field path: `f:<name>` and `k:{"<key>":<value>}` elements, as in `fieldsV1`.
pub type FieldPath = Vec<String>;
/// A set of owned fields.
pub type FieldSet = BTreeSet<FieldPath>;

/// Fields outside the managed set (identity and server-owned metadata).
const SKIP_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// The leaf fields set in an object.
pub fn field_paths(obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    if let Some(m) = obj.as_object() {
        for (k, v) in m {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            if k == "metadata" {
                if let Some(meta) = v.as_object() {
                    for (mk, mv) in meta {
                        if !SKIP_META.contains(&mk.as_str()) {
                            walk(
                                mv,
                                vec!["f:metadata".into(), format!("f:{mk}")],
                                mk,
                                &mut out,
                            );
                        }
                    }
                }
                continue;
            }
            walk(v, vec![format!("f:{k}")], k, &mut out);
        }
    }
    out
}

fn walk(v: &Value, prefix: FieldPath, field: &str, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let mut p = prefix.clone();
                p.push(format!("f:{k}"));
                walk(child, p, k, out);
            }
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            let Some(key) = merge_key(field, items.first()) else {
                out.insert(prefix);
                return;
            };
            for item in items {
                let Some(kv) = item.get(key) else {
                    out.insert(prefix.clone());
                    return;
                };
                let mut p = prefix.clone();
                p.push(format!("k:{}", json!({ key: kv })));
                let rest: Map<String, Value> = item
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| k.as_str() != key)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if rest.is_empty() {
                    out.insert(p);
                } else {
                    walk(&Value::Object(rest), p, field, out);
                }
            }
        }
        _ => {
            out.insert(prefix);
        }
    }
}

/// The value at a field path.
pub fn get_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for el in path {
        cur = step(cur, el)?;
    }
    Some(cur)
}

fn step<'a>(cur: &'a Value, el: &str) -> Option<&'a Value> {
    if let Some(f) = el.strip_prefix("f:") {
        return cur.get(f);
    }
    let sel: Map<String, Value> = serde_json::from_str(el.strip_prefix("k:")?).ok()?;
    cur.as_array()?
        .iter()
        .find(|item| sel.iter().all(|(k, v)| item.get(k) == Some(v)))
}

fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for el in parents {
        let next = if let Some(f) = el.strip_prefix("f:") {
            cur.get_mut(f)
        } else {
            let Some(sel) = el
                .strip_prefix("k:")
                .and_then(|s| serde_json::from_str::<Map<String, Value>>(s).ok())
            else {
                return;
            };
            cur.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|item| sel.iter().all(|(k, v)| item.get(k) == Some(v)))
            })
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(sel) = last
        .strip_prefix("k:")
        .and_then(|s| serde_json::from_str::<Map<String, Value>>(s).ok())
        && let Some(a) = cur.as_array_mut()
    {
        a.retain(|item| !sel.iter().all(|(k, v)| item.get(k) == Some(v)));
    }
}

/// `.metadata.labels.owner` / `.spec.containers[name="c"].image`.
pub fn render_path(path: &[String]) -> String {
    let mut s = String::new();
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(sel) = el
            .strip_prefix("k:")
            .and_then(|k| serde_json::from_str::<Map<String, Value>>(k).ok())
        {
            let parts: Vec<String> = sel.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        }
    }
    s
}

/// `fieldsV1` JSON for a set.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for el in path {
            let entry = cur.entry(el.clone()).or_insert_with(|| json!({}));
            let Some(next) = entry.as_object_mut() else {
                break;
            };
            cur = next;
        }
    }
    Value::Object(root)
}

/// A set from `fieldsV1` JSON.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn go(v: &Value, prefix: FieldPath, out: &mut FieldSet) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, child) in m {
                    if k == "." {
                        out.insert(prefix.clone());
                        continue;
                    }
                    let mut p = prefix.clone();
                    p.push(k.clone());
                    go(child, p, out);
                }
            }
            _ => {
                if !prefix.is_empty() {
                    out.insert(prefix);
                }
            }
        }
    }
    let mut out = FieldSet::new();
    go(v, Vec::new(), &mut out);
    out
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
pub struct Manager {
    /// Manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// apiVersion of the write.
    pub api_version: String,
    /// Time of the last write.
    pub time: String,
    /// Owned fields.
    pub fields: FieldSet,
}

/// Read `metadata.managedFields`.
pub fn read_managers(obj: &Value) -> Vec<Manager> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| Manager {
            manager: e
                .get("manager")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            operation: e
                .get("operation")
                .and_then(Value::as_str)
                .unwrap_or("Update")
                .to_string(),
            api_version: e
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            time: e
                .get("time")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
        })
        .collect()
}

fn write_managers(obj: &mut Value, managers: &[Manager]) {
    let entries: Vec<Value> = managers
        .iter()
        .filter(|m| !m.fields.is_empty())
        .map(|m| {
            json!({"manager": m.manager, "operation": m.operation, "apiVersion": m.api_version, "time": m.time,
                   "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&m.fields)})
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(entries));
        }
    }
}

/// Structural merge of an applied configuration: maps recursively, keyed lists element-wise, others replaced.
pub fn merge_applied(target: &Value, applied: &Value, field: &str) -> Value {
    match (target, applied) {
        (Value::Object(t), Value::Object(a)) => {
            let mut out = t.clone();
            for (k, v) in a {
                let merged = match out.get(k) {
                    Some(cur) => merge_applied(cur, v, k),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(t), Value::Array(a)) if a.iter().all(Value::is_object) => {
            let Some(key) = merge_key(field, a.first().or(t.first())) else {
                return applied.clone();
            };
            let mut out = t.clone();
            for item in a {
                match out
                    .iter()
                    .position(|x| item.get(key).is_some() && x.get(key) == item.get(key))
                {
                    Some(i) => out[i] = merge_applied(&out[i], item, field),
                    None => out.push(item.clone()),
                }
            }
            Value::Array(out)
        }
        _ => applied.clone(),
    }
}

/// Conflicts of an apply: `(manager, rendered field)`.
pub type Conflicts = Vec<(String, String)>;

/// Server-side apply of `applied` by `manager` onto `current` (an empty object for a create).
pub fn apply(
    current: &Value,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    now: &str,
) -> Result<Value, Conflicts> {
    let applied_fields = field_paths(applied);
    let mut managers = read_managers(current);
    let mut conflicts = Conflicts::new();
    for m in managers
        .iter_mut()
        .filter(|m| !(m.manager == manager && m.operation == "Apply"))
    {
        let clash: Vec<FieldPath> = m
            .fields
            .intersection(&applied_fields)
            .filter(|p| get_at(current, p) != get_at(applied, p))
            .cloned()
            .collect();
        if force {
            for p in &clash {
                m.fields.remove(p);
            }
        } else {
            conflicts.extend(clash.iter().map(|p| (m.manager.clone(), render_path(p))));
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let previous: FieldSet = managers
        .iter()
        .find(|m| m.manager == manager && m.operation == "Apply")
        .map(|m| m.fields.clone())
        .unwrap_or_default();
    let mut out = current.clone();
    for p in previous.difference(&applied_fields) {
        let owned_elsewhere = managers
            .iter()
            .any(|m| !(m.manager == manager && m.operation == "Apply") && m.fields.contains(p));
        if !owned_elsewhere {
            remove_at(&mut out, p);
        }
    }
    out = merge_applied(&out, applied, "");
    managers.retain(|m| !(m.manager == manager && m.operation == "Apply"));
    managers.push(Manager {
        manager: manager.into(),
        operation: "Apply".into(),
        api_version: api_version.into(),
        time: now.into(),
        fields: applied_fields,
    });
    write_managers(&mut out, &managers);
    Ok(out)
}

/// Record a non-apply write: fields it changed move to `manager` (operation Update).
pub fn record_update(old: &Value, new: &mut Value, manager: &str, api_version: &str, now: &str) {
    let before = field_paths(old);
    let after = field_paths(new);
    let changed: FieldSet = after
        .iter()
        .filter(|p| get_at(old, p) != get_at(new, p))
        .cloned()
        .collect();
    let removed: FieldSet = before.difference(&after).cloned().collect();
    let mut managers = read_managers(old);
    if changed.is_empty() && removed.is_empty() && managers.is_empty() {
        write_managers(new, &managers);
        return;
    }
    for m in managers.iter_mut() {
        m.fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    if !changed.is_empty() {
        match managers
            .iter_mut()
            .find(|m| m.manager == manager && m.operation == "Update")
        {
            Some(m) => {
                m.fields.extend(changed);
                m.time = now.into();
                m.api_version = api_version.into();
            }
            None => managers.push(Manager {
                manager: manager.into(),
                operation: "Update".into(),
                api_version: api_version.into(),
                time: now.into(),
                fields: changed,
            }),
        }
    }
    write_managers(new, &managers);
}

/// The `Apply failed with N conflict(s)` message and causes.
pub fn conflict_message(conflicts: &Conflicts) -> (String, Vec<(String, String)>) {
    let mut by_manager: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (m, f) in conflicts {
        by_manager.entry(m).or_default().push(f);
    }
    let n = conflicts.len();
    let head = if n == 1 {
        "Apply failed with 1 conflict".to_string()
    } else {
        format!("Apply failed with {n} conflicts")
    };
    let body = if n == 1 {
        format!("conflict with {:?}: {}", conflicts[0].0, conflicts[0].1)
    } else {
        by_manager
            .iter()
            .map(|(m, fs)| {
                format!(
                    "conflicts with {m:?}:\n{}",
                    fs.iter()
                        .map(|f| format!("- {f}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let causes = conflicts
        .iter()
        .map(|(m, f)| (format!("conflict with {m:?}"), f.clone()))
        .collect();
    (format!("{head}: {body}"), causes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_manager_conflicts_unless_forced() {
        let a = json!({"metadata": {"name": "s", "labels": {"owner": "a"}}, "spec": {"source": {"persistentVolumeClaimName": "p"}}});
        let out = apply(
            &json!({"metadata": {"name": "s"}}),
            &a,
            "tool-a",
            false,
            "v1",
            "t",
        )
        .unwrap();
        assert_eq!(
            out["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:metadata": {"f:labels": {"f:owner": {}}}, "f:spec": {"f:source": {"f:persistentVolumeClaimName": {}}}})
        );
        let b = json!({"metadata": {"name": "s", "labels": {"owner": "b"}}});
        let err = apply(&out, &b, "tool-b", false, "v1", "t").unwrap_err();
        assert_eq!(
            conflict_message(&err).0,
            "Apply failed with 1 conflict: conflict with \"tool-a\": .metadata.labels.owner"
        );
        let forced = apply(&out, &b, "tool-b", true, "v1", "t").unwrap();
        assert_eq!(forced["metadata"]["labels"]["owner"], "b");
        let mf = read_managers(&forced);
        assert_eq!(mf[0].manager, "tool-a");
        assert_eq!(
            to_fields_v1(&mf[0].fields),
            json!({"f:spec": {"f:source": {"f:persistentVolumeClaimName": {}}}})
        );
        // Same value: shared ownership, no conflict.
        assert!(apply(&out, &a, "tool-c", false, "v1", "t").is_ok());
    }

    #[test]
    fn fields_dropped_from_an_apply_are_removed() {
        let one = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let out = apply(&json!({"metadata": {}}), &one, "m", false, "v1", "t").unwrap();
        let out = apply(
            &out,
            &json!({"metadata": {"labels": {"a": "1"}}}),
            "m",
            false,
            "v1",
            "t",
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"a": "1"}));
    }

    #[test]
    fn keyed_lists_render_with_their_key() {
        let obj = json!({"spec": {"containers": [{"name": "c", "image": "i"}]}});
        let paths = field_paths(&obj);
        let p = paths.iter().next().unwrap();
        assert_eq!(render_path(p), ".spec.containers[name=\"c\"].image");
        assert_eq!(get_at(&obj, p), Some(&json!("i")));
    }
}
