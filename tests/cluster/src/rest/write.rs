//! Create, update (PUT), patch (all four content types) and the status subresource write path.

use serde_json::{Value, json};

use crate::admission;
use crate::apply;
use crate::auth::random_uid;
use crate::clock;
use crate::cluster::Cluster;
use crate::kinds;
use crate::patch::{self, PatchError};
use crate::registry::ResourceType;
use crate::rest::{check_namespace_for_create, meta_mut, meta_str};
use crate::status::{ApiError, Cause};
use crate::store::{Mutation, Outcome};
use crate::validation::validate_meta;

/// Options common to writes.
#[derive(Debug, Clone)]
pub struct WriteOpts {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// The field manager (query `fieldManager`, else the User-Agent's product).
    pub manager: String,
}

/// Which part of an object a write targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource: `.status` is ignored when the type has a status subresource.
    Main,
    /// The `/status` subresource: only `.status` changes (and labels/annotations for built-ins).
    Status,
}

const GENERATE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `prefix[:58]` plus 5 random characters.
pub fn generate_name(prefix: &str) -> String {
    let cut: String = prefix.chars().take(58).collect();
    let suffix: String = (0..5)
        .map(|_| GENERATE_ALPHABET[fastrand::usize(..GENERATE_ALPHABET.len())] as char)
        .collect();
    format!("{cut}{suffix}")
}

fn decode(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: json: cannot unmarshal {} into Go value of type struct",
            rt.kind,
            rt.version,
            rt.kind,
            if obj.is_array() { "array" } else { "value" }
        )));
    }
    kinds::decode(rt, obj).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: {e}",
            rt.kind, rt.version, rt.kind
        ))
    })
}

fn invalid(rt: &ResourceType, name: &str, causes: Vec<Cause>) -> ApiError {
    let group = if rt.builtin { "" } else { rt.group };
    ApiError::invalid(rt.kind, group, name, causes)
}

fn check_namespace_matches(rt: &ResourceType, obj: &mut Value, ns: &str) -> Result<(), ApiError> {
    let Some(meta) = meta_mut(obj) else {
        return Ok(());
    };
    if rt.namespaced {
        let body_ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta.insert("namespace".into(), json!(ns));
    } else {
        meta.remove("namespace");
    }
    Ok(())
}

/// Create an object (POST). `applied` carries managedFields already computed by server-side apply.
pub fn create(
    cl: &Cluster,
    rt: &ResourceType,
    ns: &str,
    mut obj: Value,
    opts: &WriteOpts,
    applied: bool,
) -> Result<Value, ApiError> {
    decode(rt, &mut obj)?;
    check_namespace_matches(rt, &mut obj, ns)?;
    if let Some(m) = obj.as_object_mut() {
        m.insert("kind".into(), json!(rt.kind));
        m.insert("apiVersion".into(), json!(rt.api_version()));
    }
    // Admission runs before the name is generated, so its errors name the generateName.
    let admission_name = admission::display_name(&obj);
    let mut causes = Vec::new();
    let name = {
        let Some(meta) = meta_mut(&mut obj) else {
            return Err(ApiError::bad_request("metadata must be an object"));
        };
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let generate = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = if name.is_empty() && !generate.is_empty() {
            generate_name(&generate)
        } else {
            name
        };
        if !name.is_empty() {
            meta.insert("name".into(), json!(name));
        }
        for k in [
            "uid",
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(k);
        }
        meta.insert("uid".into(), json!(random_uid()));
        meta.insert("creationTimestamp".into(), json!(clock::now_time()));
        if rt.generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        if !applied {
            meta.remove("managedFields");
        }
        name
    };
    if rt.namespaced {
        check_namespace_for_create(cl, rt, ns, &name)?;
    }
    if rt.has_status_subresource()
        && rt.plural != "nodes"
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    kinds::default_on_create(rt, &mut obj);
    // Defaults belong to the request's manager; what admission adds does not.
    if !applied {
        let before = json!({"metadata": {}});
        apply::record_update(
            &before,
            &mut obj,
            &opts.manager,
            &rt.api_version(),
            &clock::now_time(),
        );
    }
    admission::admit_create(cl, rt, ns, &admission_name, &mut obj)?;
    validate_meta(
        rt.name_rule,
        obj.get("metadata").unwrap_or(&Value::Null),
        &mut causes,
    );
    causes.extend(kinds::validate(rt, &obj, None));
    if !causes.is_empty() {
        return Err(invalid(rt, &name, causes));
    }
    let mut stored = cl
        .store
        .create(rt.key(), obj, opts.dry_run)
        .map_err(|_| ApiError::already_exists(rt.name(), &name))?;
    if opts.dry_run
        && let Some(meta) = meta_mut(&mut stored)
    {
        meta.remove("resourceVersion");
    }
    Ok(stored)
}

/// How managedFields are maintained by [`prepare_update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Managed {
    /// Record the write as an Update by the manager.
    Record,
    /// Already computed by server-side apply.
    Applied,
}

fn strip_for_generation(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

fn prepare_update(
    rt: &ResourceType,
    cur: &Value,
    new: Value,
    part: Part,
    opts: &WriteOpts,
    managed: Managed,
) -> Result<Mutation, ApiError> {
    let name = meta_str(cur, "name").to_string();
    let want_rv = meta_str(&new, "resourceVersion").to_string();
    if !want_rv.is_empty() && want_rv != meta_str(cur, "resourceVersion") {
        return Err(ApiError::conflict(rt.name(), &name));
    }
    let mut out = match part {
        Part::Status => {
            let mut o = cur.clone();
            if let Some(m) = o.as_object_mut() {
                match new.get("status") {
                    Some(s) => m.insert("status".into(), s.clone()),
                    None => m.remove("status"),
                };
            }
            if rt.builtin {
                for k in ["labels", "annotations"] {
                    let v = new.get("metadata").and_then(|m| m.get(k)).cloned();
                    if let Some(meta) = meta_mut(&mut o) {
                        match v {
                            Some(v) => meta.insert(k.into(), v),
                            None => meta.remove(k),
                        };
                    }
                }
            }
            o
        }
        Part::Main => {
            let mut o = new.clone();
            if rt.has_status_subresource()
                && let Some(m) = o.as_object_mut()
            {
                match cur.get("status") {
                    Some(s) => m.insert("status".into(), s.clone()),
                    None => m.remove("status"),
                };
            }
            o
        }
    };
    if let Some(m) = out.as_object_mut() {
        m.insert("kind".into(), json!(rt.kind));
        m.insert("apiVersion".into(), json!(rt.api_version()));
    }
    let cur_meta = cur.get("metadata").cloned().unwrap_or(json!({}));
    if let Some(meta) = meta_mut(&mut out) {
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
            "resourceVersion",
        ] {
            match cur_meta.get(k) {
                Some(v) => meta.insert(k.into(), v.clone()),
                None => meta.remove(k),
            };
        }
        if managed == Managed::Record {
            match cur_meta.get("managedFields") {
                Some(v) => meta.insert("managedFields".into(), v.clone()),
                None => meta.remove("managedFields"),
            };
        }
    }
    if part == Part::Main {
        admission::admit_update(rt, cur, &mut out);
    }
    if rt.group.is_empty() && rt.plural == "namespaces" {
        kinds::label_namespace(&mut out);
    }
    let deleting = cur_meta.get("deletionTimestamp").is_some();
    let fins = |v: &Value| -> Vec<String> {
        v.pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect()
    };
    let mut causes = Vec::new();
    if deleting {
        let old = fins(cur);
        let added: Vec<String> = fins(&out)
            .into_iter()
            .filter(|f| !old.contains(f))
            .collect();
        if !added.is_empty() {
            let list = added
                .iter()
                .map(|f| format!("{f:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            let msg = format!(
                "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"
            );
            causes.push(Cause::forbidden("metadata.finalizers", &msg));
            causes.push(Cause::forbidden("metadata.finalizers", &msg));
        }
    }
    validate_meta(
        rt.name_rule,
        out.get("metadata").unwrap_or(&Value::Null),
        &mut causes,
    );
    if part == Part::Main {
        causes.extend(kinds::validate(rt, &out, Some(cur)));
    }
    if !causes.is_empty() {
        return Err(invalid(rt, &name, causes));
    }
    if rt.generation
        && part == Part::Main
        && strip_for_generation(cur) != strip_for_generation(&out)
    {
        let g = cur_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        if let Some(meta) = meta_mut(&mut out) {
            meta.insert("generation".into(), json!(g));
        }
    }
    if managed == Managed::Record {
        apply::record_update(
            cur,
            &mut out,
            &opts.manager,
            &rt.api_version(),
            &clock::now_time(),
        );
    }
    let grace_zero = out
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        == 0;
    let spec_fins_empty = out
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if deleting
        && fins(&out).is_empty()
        && grace_zero
        && (rt.plural != "namespaces" || spec_fins_empty)
    {
        return Ok(Mutation::Delete(out));
    }
    Ok(Mutation::Replace(out))
}

fn outcome_value(o: Outcome) -> Value {
    match o {
        Outcome::Unchanged(v) | Outcome::Updated(v) | Outcome::Deleted(v) => v,
    }
}

/// PUT of an object or its status.
pub fn update(
    cl: &Cluster,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    mut body: Value,
    part: Part,
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    decode(rt, &mut body)?;
    check_namespace_matches(rt, &mut body, ns)?;
    if let Some(meta) = meta_mut(&mut body) {
        let body_name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if body_name.is_empty() {
            meta.insert("name".into(), json!(name));
        } else if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
    }
    let out = cl
        .store
        .mutate(rt.key(), ns, name, opts.dry_run, |cur| {
            prepare_update(rt, cur, body, part, opts, Managed::Record)
        })?
        .ok_or_else(|| ApiError::not_found(rt.name(), name))?;
    Ok(outcome_value(out))
}

/// The PATCH content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml`.
    Apply,
}

/// Map a Content-Type to a patch type, with the 415 answers.
pub fn patch_type(rt: &ResourceType, content_type: &str) -> Result<PatchType, ApiError> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    match ct {
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/apply-patch+yaml" => Ok(PatchType::Apply),
        "application/strategic-merge-patch+json" if rt.builtin => Ok(PatchType::Strategic),
        "application/strategic-merge-patch+json" => Err(ApiError::unsupported_media_type(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            false,
        )),
        _ => Err(ApiError::unsupported_media_type(
            "415: Unsupported Media Type",
            true,
        )),
    }
}

fn patch_options_invalid(field: &str, cause: Cause) -> ApiError {
    let _ = field;
    ApiError::invalid("PatchOptions", "meta.k8s.io", "", vec![cause])
}

/// PATCH of an object or its status. Returns the HTTP code (201 when apply created the object) and the object.
#[allow(clippy::too_many_arguments)]
pub fn patch(
    cl: &Cluster,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    ptype: PatchType,
    body: &[u8],
    part: Part,
    opts: &WriteOpts,
    force: bool,
) -> Result<(u16, Value), ApiError> {
    if force && ptype != PatchType::Apply {
        return Err(patch_options_invalid(
            "force",
            Cause::forbidden("force", "may not be specified for non-apply patch"),
        ));
    }
    match ptype {
        PatchType::Apply => apply_patch(cl, rt, ns, name, body, part, opts, force),
        _ => {
            let parsed: Option<Value> = match ptype {
                PatchType::Json => None,
                _ => Some(serde_json::from_slice(body).map_err(|e| {
                    ApiError::bad_request(format!(
                        "error decoding patch: {}",
                        patch::go_json_error(&e)
                    ))
                })?),
            };
            if ptype == PatchType::Json {
                // Validate the shape up front so a malformed body is a 400, not a 422.
                serde_json::from_slice::<json_patch::Patch>(body).map_err(|e| {
                    ApiError::bad_request(format!(
                        "error decoding patch: {}",
                        patch::go_json_error(&e)
                    ))
                })?;
            }
            let out = cl
                .store
                .mutate(rt.key(), ns, name, opts.dry_run, |cur| {
                    let patched = match (ptype, &parsed) {
                        (PatchType::Merge, Some(p)) => patch::merge_patch(cur, p),
                        (PatchType::Strategic, Some(p)) => patch::strategic_merge(cur, p)
                            .map_err(|e| ApiError::bad_request(e.to_string()))?,
                        _ => patch::json_patch(cur, body).map_err(|e| match e {
                            PatchError::Decode(m) => {
                                ApiError::bad_request(format!("error decoding patch: {m}"))
                            }
                            PatchError::Failed(_) => ApiError::invalid_generic(),
                        })?,
                    };
                    let mut patched = patched;
                    decode(rt, &mut patched)?;
                    check_name_unchanged(&patched, name)?;
                    prepare_update(rt, cur, patched, part, opts, Managed::Record)
                })?
                .ok_or_else(|| ApiError::not_found(rt.name(), name))?;
            Ok((200, outcome_value(out)))
        }
    }
}

fn check_name_unchanged(obj: &Value, name: &str) -> Result<(), ApiError> {
    let n = meta_str(obj, "name");
    if !n.is_empty() && n != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn apply_patch(
    cl: &Cluster,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    body: &[u8],
    part: Part,
    opts: &WriteOpts,
    force: bool,
) -> Result<(u16, Value), ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    let mut applied: Value = serde_saphyr::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    decode(rt, &mut applied)?;
    check_namespace_matches(rt, &mut applied, ns)?;
    check_name_unchanged(&applied, name)?;
    if let Some(meta) = meta_mut(&mut applied) {
        meta.insert("name".into(), json!(name));
    }
    if part == Part::Main
        && rt.has_status_subresource()
        && let Some(m) = applied.as_object_mut()
    {
        m.remove("status");
    }
    let now = clock::now_time();
    let api_version = rt.api_version();
    let conflict = |c: apply::Conflicts| {
        let (message, causes) = apply::conflict_message(&c);
        let causes: Vec<Value> = causes
            .into_iter()
            .map(|(m, f)| json!({"reason": "FieldManagerConflict", "message": m, "field": f}))
            .collect();
        let mut e = ApiError::conflict_with(rt.name(), name, "");
        e.message = message;
        e.details = Some(json!({"causes": causes}));
        e
    };
    let out = cl.store.mutate(rt.key(), ns, name, opts.dry_run, |cur| {
        let merged = apply::apply(cur, &applied, &opts.manager, force, &api_version, &now)
            .map_err(conflict)?;
        prepare_update(rt, cur, merged, part, opts, Managed::Applied)
    })?;
    match out {
        Some(o) => Ok((200, outcome_value(o))),
        None => {
            let base = json!({"metadata": {"name": name}});
            let merged = apply::apply(&base, &applied, &opts.manager, force, &api_version, &now)
                .map_err(conflict)?;
            Ok((201, create(cl, rt, ns, merged, opts, true)?))
        }
    }
}

/// The `fieldManager` check for apply, done by the caller that knows whether the query carried one.
pub fn require_field_manager(has_manager: bool) -> Result<(), ApiError> {
    if has_manager {
        Ok(())
    } else {
        Err(patch_options_invalid(
            "fieldManager",
            Cause::required("fieldManager", "is required for apply patch"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_use_the_real_alphabet_and_cut_long_prefixes() {
        let n = generate_name("cm-");
        assert_eq!(n.len(), 8);
        assert!(n[3..].bytes().all(|b| GENERATE_ALPHABET.contains(&b)));
        assert_eq!(generate_name(&"a".repeat(71)).len(), 63);
    }
}
