//! Per-kind strategies: defaulting on create, decoding checks (MicroTime, Secret data) and the kind-specific
//! validation of the objects kentledge and the node agents write.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::clock;
use crate::registry::ResourceType;
use crate::status::Cause;
use crate::validation::{config_key_error, dns1123_label_errors};

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const POD_UPDATE_MSG: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let m = v.as_object_mut()?;
    let e = m.entry(key.to_string()).or_insert_with(|| json!({}));
    if !e.is_object() {
        *e = json!({});
    }
    e.as_object_mut()
}

/// `m[key]` as an object, created (or replaced when null) if needed.
fn obj_mut_in<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    let e = m.entry(key.to_string()).or_insert_with(|| json!({}));
    if e.is_null() {
        *e = json!({});
    }
    e.as_object_mut()
}

fn default(m: &mut Map<String, Value>, key: &str, value: Value) {
    m.entry(key.to_string()).or_insert(value);
}

/// Defaults applied on create (and to pod templates).
pub fn default_on_create(rt: &ResourceType, obj: &mut Value) {
    match (rt.group, rt.plural) {
        ("", "namespaces") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                default(spec, "finalizers", json!(["kubernetes"]));
            }
            obj["status"] = json!({"phase": "Active"});
            label_namespace(obj);
        }
        ("", "pods") => {
            if let Some(spec) = obj.get_mut("spec") {
                default_pod_spec(spec);
                default_pod_only(spec);
            }
            let qos = qos_class(obj.get("spec"));
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        ("", "persistentvolumeclaims") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                default(spec, "volumeMode", json!("Filesystem"));
            }
            obj["status"] = json!({"phase": "Pending"});
        }
        ("", "persistentvolumes") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
                default(spec, "volumeMode", json!("Filesystem"));
            }
            obj["status"] = json!({"phase": "Pending"});
        }
        ("", "secrets") => {
            if let Some(m) = obj.as_object_mut() {
                default(m, "type", json!("Opaque"));
            }
        }
        ("apps", "deployments") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                default(spec, "replicas", json!(1));
                default(spec, "revisionHistoryLimit", json!(10));
                default(spec, "progressDeadlineSeconds", json!(600));
                // Field by field, as SetDefaults_Deployment: kubectl sends `strategy: {}`.
                if let Some(st) = obj_mut_in(spec, "strategy") {
                    default(st, "type", json!("RollingUpdate"));
                    if st.get("type") == Some(&json!("RollingUpdate"))
                        && let Some(ru) = obj_mut_in(st, "rollingUpdate")
                    {
                        default(ru, "maxUnavailable", json!("25%"));
                        default(ru, "maxSurge", json!("25%"));
                    }
                }
            }
            default_template(obj);
        }
        ("apps", "statefulsets") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                default(spec, "replicas", json!(1));
                default(spec, "revisionHistoryLimit", json!(10));
                default(spec, "podManagementPolicy", json!("OrderedReady"));
                if let Some(st) = obj_mut_in(spec, "updateStrategy") {
                    default(st, "type", json!("RollingUpdate"));
                    if st.get("type") == Some(&json!("RollingUpdate"))
                        && let Some(ru) = obj_mut_in(st, "rollingUpdate")
                    {
                        default(ru, "partition", json!(0));
                    }
                }
                default(
                    spec,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
            }
            default_template(obj);
        }
        ("apps", "replicasets") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                default(spec, "replicas", json!(1));
            }
            default_template(obj);
        }
        ("batch", "jobs") => {
            let uid = obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
            let name = obj
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or(Value::Null);
            if let Some(spec) = obj_mut(obj, "spec") {
                default(spec, "parallelism", json!(1));
                default(spec, "completions", json!(1));
                default(spec, "backoffLimit", json!(6));
                default(spec, "completionMode", json!("NonIndexed"));
                default(spec, "suspend", json!(false));
                if spec.get("manualSelector").and_then(Value::as_bool) != Some(true) {
                    spec.insert(
                        "selector".into(),
                        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
                    );
                }
            }
            if let Some(labels) = obj
                .pointer_mut("/spec/template")
                .and_then(|t| obj_mut(t, "metadata"))
                .and_then(|m| {
                    let e = m.entry("labels").or_insert_with(|| json!({}));
                    e.as_object_mut()
                })
            {
                labels.insert("batch.kubernetes.io/controller-uid".into(), uid.clone());
                labels.insert("batch.kubernetes.io/job-name".into(), name.clone());
                labels.insert("controller-uid".into(), uid);
                labels.insert("job-name".into(), name);
            }
            default_template(obj);
        }
        ("storage.k8s.io", "storageclasses") => {
            if let Some(m) = obj.as_object_mut() {
                default(m, "reclaimPolicy", json!("Delete"));
                default(m, "volumeBindingMode", json!("Immediate"));
            }
        }
        _ => {}
    }
}

/// The `kubernetes.io/metadata.name` label the namespace strategy keeps equal to the name (on create and update).
pub fn label_namespace(obj: &mut Value) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        return;
    }
    if let Some(labels) = obj_mut(obj, "metadata").and_then(|m| {
        let e = m.entry("labels").or_insert_with(|| json!({}));
        if !e.is_object() {
            *e = json!({});
        }
        e.as_object_mut()
    }) {
        labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
}

fn default_template(obj: &mut Value) {
    if let Some(spec) = obj.pointer_mut("/spec/template/spec") {
        default_pod_spec(spec);
    }
}

/// `SetDefaults_Pod`: what only pods get, not pod templates (`enableServiceLinks`, requests from limits).
/// The service account and its token volume come from the ServiceAccount admission (`admission.rs`).
fn default_pod_only(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    default(m, "enableServiceLinks", json!(true));
    for_each_container(m, &["containers", "initContainers"], |c| {
        let Some(limits) = c
            .get("resources")
            .and_then(|r| r.get("limits"))
            .and_then(Value::as_object)
            .cloned()
        else {
            return;
        };
        if let Some(res) = c.get_mut("resources").and_then(Value::as_object_mut) {
            let req = res.entry("requests").or_insert_with(|| json!({}));
            if let Some(req) = req.as_object_mut() {
                for (k, v) in limits {
                    req.entry(k).or_insert(v);
                }
            }
        }
    });
}

/// Run `f` on every container (object) of the pod spec's `lists` (`containers`, `initContainers`…),
/// list by list, in order.
pub(crate) fn for_each_container(
    spec: &mut Map<String, Value>,
    lists: &[&str],
    mut f: impl FnMut(&mut Map<String, Value>),
) {
    for list in lists {
        for c in spec
            .get_mut(*list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            f(c);
        }
    }
}

/// `SetDefaults_PodSpec` and the volume sources' defaults, shared by pods and pod templates.
fn default_pod_spec(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    default(m, "restartPolicy", json!("Always"));
    default(m, "terminationGracePeriodSeconds", json!(30));
    default(m, "dnsPolicy", json!("ClusterFirst"));
    default(m, "schedulerName", json!("default-scheduler"));
    default(m, "securityContext", json!({}));
    // The deprecated `serviceAccount` mirrors `serviceAccountName` (conversion), both ways.
    let sa = m
        .get("serviceAccountName")
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        .or(m.get("serviceAccount"))
        .cloned();
    if let Some(sa) = sa.filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
        m.insert("serviceAccountName".into(), sa.clone());
        m.insert("serviceAccount".into(), sa);
    }
    for v in m
        .get_mut("volumes")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        for source in ["secret", "configMap", "downwardAPI", "projected"] {
            if let Some(src) = v.get_mut(source).and_then(Value::as_object_mut) {
                default(src, "defaultMode", json!(420));
            }
        }
    }
    for_each_container(m, &["containers", "initContainers"], |c| {
        let image = c
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let tag_latest = !image.contains(':') || image.ends_with(":latest");
        default(
            c,
            "imagePullPolicy",
            json!(if tag_latest && !image.contains('@') {
                "Always"
            } else {
                "IfNotPresent"
            }),
        );
        for port in c
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            default(port, "protocol", json!("TCP"));
        }
        default(c, "terminationMessagePath", json!("/dev/termination-log"));
        default(c, "terminationMessagePolicy", json!("File"));
        default(c, "resources", json!({}));
    });
}

fn qos_class(spec: Option<&Value>) -> &'static str {
    let containers: Vec<&Value> = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let res = |c: &Value, k: &str| {
        c.pointer(&format!("/resources/{k}"))
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
            .cloned()
    };
    if containers
        .iter()
        .all(|c| res(c, "requests").is_none() && res(c, "limits").is_none())
    {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let limits = res(c, "limits").unwrap_or_default();
        let requests = res(c, "requests").unwrap_or_else(|| limits.clone());
        ["cpu", "memory"]
            .iter()
            .all(|k| limits.get(*k).is_some() && limits.get(*k) == requests.get(*k))
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Decoding checks that the real server does while unmarshalling (400 on failure, message after the prefix).
pub fn decode(rt: &ResourceType, obj: &mut Value) -> Result<(), String> {
    match (rt.group, rt.plural) {
        ("coordination.k8s.io", "leases") => {
            for f in ["acquireTime", "renewTime"] {
                let Some(v) = obj.pointer(&format!("/spec/{f}")).cloned() else {
                    continue;
                };
                match v {
                    Value::Null => {}
                    Value::String(s) => {
                        let t = clock::parse_micro(&s)?;
                        obj["spec"][f] = json!(clock::format_micro(t));
                    }
                    _ => {
                        return Err(format!(
                            "json: cannot unmarshal {} into Go struct field LeaseSpec.spec.{f} of type string",
                            go_type(&v)
                        ));
                    }
                }
            }
            for f in ["leaseDurationSeconds", "leaseTransitions"] {
                if let Some(v) = obj.pointer(&format!("/spec/{f}"))
                    && !v.is_null()
                    && !v.is_i64()
                {
                    return Err(format!(
                        "json: cannot unmarshal {} into Go struct field LeaseSpec.spec.{f} of type int32",
                        go_type(v)
                    ));
                }
            }
            for f in ["holderIdentity", "strategy", "preferredHolder"] {
                if let Some(v) = obj.pointer(&format!("/spec/{f}"))
                    && !v.is_null()
                    && !v.is_string()
                {
                    return Err(format!(
                        "json: cannot unmarshal {} into Go struct field LeaseSpec.spec.{f} of type string",
                        go_type(v)
                    ));
                }
            }
        }
        ("", "secrets") => {
            if let Some(data) = obj.get("data").and_then(Value::as_object) {
                for v in data.values() {
                    let s = v.as_str().unwrap_or("");
                    if let Err(e) = STANDARD.decode(s) {
                        let pos = match e {
                            base64::DecodeError::InvalidByte(p, _)
                            | base64::DecodeError::InvalidLastSymbol(p, _) => p,
                            _ => s.len(),
                        };
                        return Err(format!("illegal base64 data at input byte {pos}"));
                    }
                }
            }
            if let Some(string_data) = obj.as_object_mut().and_then(|m| m.remove("stringData"))
                && let Some(sd) = string_data.as_object()
            {
                let data = obj_mut(obj, "data");
                if let Some(data) = data {
                    for (k, v) in sd {
                        data.insert(k.clone(), json!(STANDARD.encode(v.as_str().unwrap_or(""))));
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    }
}

fn has(v: Option<&Value>) -> bool {
    v.is_some_and(|v| !v.is_null())
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// Kind-specific validation; `old` is set for updates.
pub fn validate(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut c = Vec::new();
    match (rt.group, rt.plural) {
        ("", "pods") => {
            validate_pod_spec(obj.get("spec"), "spec", &[], &mut c);
            if let Some(old) = old {
                let mut masked = obj.get("spec").cloned().unwrap_or(Value::Null);
                let old_spec = old.get("spec").cloned().unwrap_or(Value::Null);
                for f in [
                    "activeDeadlineSeconds",
                    "tolerations",
                    "terminationGracePeriodSeconds",
                ] {
                    if let Some(m) = masked.as_object_mut() {
                        match old_spec.get(f) {
                            Some(v) => m.insert(f.into(), v.clone()),
                            None => m.remove(f),
                        };
                    }
                }
                for list in ["containers", "initContainers"] {
                    let olds = old_spec
                        .get(list)
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    if let Some(cs) = masked.get_mut(list).and_then(Value::as_array_mut) {
                        for (i, ct) in cs.iter_mut().enumerate() {
                            if let (Some(o), Some(m)) =
                                (olds.get(i).and_then(|o| o.get("image")), ct.as_object_mut())
                            {
                                m.insert("image".into(), o.clone());
                            }
                        }
                    }
                }
                if masked != old_spec {
                    c.push(Cause::forbidden("spec", POD_UPDATE_MSG));
                }
            }
        }
        ("", "persistentvolumeclaims") => {
            let modes = obj.pointer("/spec/accessModes").and_then(Value::as_array);
            match modes {
                Some(m) if !m.is_empty() => {
                    for mode in m {
                        let v = mode.as_str().unwrap_or("");
                        if !ACCESS_MODES.contains(&v) {
                            c.push(Cause::not_supported("spec.accessModes", v, ACCESS_MODES));
                        }
                    }
                }
                _ => c.push(Cause::required(
                    "spec.accessModes",
                    "at least 1 access mode is required",
                )),
            }
            match obj.pointer("/spec/resources/requests/storage") {
                None | Some(Value::Null) => c.push(Cause::required("spec.resources[storage]", "")),
                Some(q) => {
                    if quantity_is_zero(q) {
                        c.push(Cause::invalid(
                            "spec.resources.requests[storage]",
                            q,
                            "must be greater than zero",
                        ));
                    }
                }
            }
            if let Some(old) = old {
                // Immutable except resources.requests, volumeAttributesClassName, and volumeName while unbound.
                let strip = |v: &Value| {
                    let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
                    if let Some(m) = spec.as_object_mut() {
                        m.remove("resources");
                        m.remove("volumeAttributesClassName");
                        if s(old, "/spec/volumeName").is_empty() {
                            m.remove("volumeName");
                        }
                    }
                    spec
                };
                if strip(obj) != strip(old) {
                    c.push(Cause::forbidden(
                        "spec",
                        "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                    ));
                }
            }
        }
        ("", "persistentvolumes") => {
            if !has(obj.pointer("/spec/capacity/storage")) {
                c.push(Cause::required("spec.capacity", ""));
            }
            if obj
                .pointer("/spec/accessModes")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                c.push(Cause::required("spec.accessModes", ""));
            }
        }
        ("", "configmaps") | ("", "secrets") => {
            for field in ["data", "binaryData"] {
                for k in obj
                    .get(field)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                {
                    if let Some(e) = config_key_error(k) {
                        c.push(Cause::invalid(format!("{field}[{k}]"), &json!(k), &e));
                    }
                }
            }
            if let Some(old) = old
                && old.get("immutable").and_then(Value::as_bool) == Some(true)
            {
                if old.get("data") != obj.get("data") {
                    c.push(Cause::forbidden(
                        "data",
                        "field is immutable when `immutable` is set",
                    ));
                }
                if obj.get("immutable").and_then(Value::as_bool) != Some(true) {
                    c.push(Cause::forbidden(
                        "immutable",
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
            if rt.plural == "secrets"
                && let Some(old) = old
                && old.get("type") != obj.get("type")
            {
                c.push(Cause::invalid(
                    "type",
                    obj.get("type").unwrap_or(&Value::Null),
                    "field is immutable",
                ));
            }
        }
        ("coordination.k8s.io", "leases") => {
            if let Some(d) = obj
                .pointer("/spec/leaseDurationSeconds")
                .and_then(Value::as_i64)
                && d <= 0
            {
                c.push(Cause::invalid(
                    "spec.leaseDurationSeconds",
                    &json!(d),
                    "must be greater than 0",
                ));
            }
            if let Some(t) = obj
                .pointer("/spec/leaseTransitions")
                .and_then(Value::as_i64)
                && t < 0
            {
                c.push(Cause::invalid(
                    "spec.leaseTransitions",
                    &json!(t),
                    "must be greater than or equal to 0",
                ));
            }
        }
        ("apps", _) | ("batch", "jobs") => {
            if rt.plural != "jobs" && !has(obj.pointer("/spec/selector")) {
                c.push(Cause::required("spec.selector", ""));
            }
            if let Some(ml) = obj
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
            {
                let labels = obj.pointer("/spec/template/metadata/labels");
                let ok = ml
                    .iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
                if !ok {
                    c.push(Cause::invalid(
                        "spec.template.metadata.labels",
                        labels.unwrap_or(&Value::Null),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
            if let Some(r) = obj.pointer("/spec/replicas").and_then(Value::as_i64)
                && r < 0
            {
                c.push(Cause::invalid(
                    "spec.replicas",
                    &json!(r),
                    "must be greater than or equal to 0",
                ));
            }
            // A StatefulSet's containers mount its volumeClaimTemplates by name.
            let claim_templates: Vec<&str> = obj
                .pointer("/spec/volumeClaimTemplates")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| t.pointer("/metadata/name").and_then(Value::as_str))
                .collect();
            validate_pod_spec(
                obj.pointer("/spec/template/spec"),
                "spec.template.spec",
                &claim_templates,
                &mut c,
            );
            if rt.plural == "jobs" {
                let rp = s(obj, "/spec/template/spec/restartPolicy");
                if rp != "OnFailure" && rp != "Never" {
                    c.push(Cause::required(
                        "spec.template.spec.restartPolicy",
                        "valid values: \"OnFailure\", \"Never\"",
                    ));
                }
                if let Some(old) = old
                    && old.pointer("/spec/template") != obj.pointer("/spec/template")
                {
                    c.push(Cause::invalid(
                        "spec.template",
                        obj.pointer("/spec/template").unwrap_or(&Value::Null),
                        "field is immutable",
                    ));
                }
            }
        }
        ("snapshot.storage.k8s.io", "volumesnapshots") => match obj.get("spec") {
            None | Some(Value::Null) => c.push(Cause::required("spec", "")),
            Some(spec) => match spec.get("source") {
                None | Some(Value::Null) => c.push(Cause::required("spec.source", "")),
                Some(src) => {
                    let pvc = has(src.get("persistentVolumeClaimName"));
                    let content = has(src.get("volumeSnapshotContentName"));
                    if pvc == content {
                        c.push(Cause::invalid(
                                "spec.source",
                                &json!("object"),
                                "Exactly one of volumeSnapshotContentName and persistentVolumeClaimName must be set",
                            ));
                    }
                    if let Some(old) = old {
                        for f in ["persistentVolumeClaimName", "volumeSnapshotContentName"] {
                            if old.pointer(&format!("/spec/source/{f}")) != src.get(f) {
                                c.push(Cause::invalid(
                                    format!("spec.source.{f}"),
                                    &json!("string"),
                                    &format!("{f} is immutable"),
                                ));
                            }
                        }
                    }
                }
            },
        },
        ("snapshot.storage.k8s.io", "volumesnapshotcontents") => {
            for f in ["driver", "deletionPolicy"] {
                if s(obj, &format!("/spec/{f}")).is_empty() {
                    c.push(Cause::required(format!("spec.{f}"), ""));
                }
            }
            let dp = s(obj, "/spec/deletionPolicy");
            if !dp.is_empty() && dp != "Delete" && dp != "Retain" {
                c.push(Cause::not_supported(
                    "spec.deletionPolicy",
                    dp,
                    &["Delete", "Retain"],
                ));
            }
            let vh = has(obj.pointer("/spec/source/volumeHandle"));
            let sh = has(obj.pointer("/spec/source/snapshotHandle"));
            if vh == sh {
                c.push(Cause::invalid(
                    "spec.source",
                    &json!("object"),
                    "Exactly one of volumeHandle and snapshotHandle must be set",
                ));
            }
            if !has(obj.pointer("/spec/volumeSnapshotRef")) {
                c.push(Cause::required("spec.volumeSnapshotRef", ""));
            }
        }
        ("snapshot.storage.k8s.io", "volumesnapshotclasses") => {
            if s(obj, "/driver").is_empty() {
                c.push(Cause::required("driver", ""));
            }
            let dp = s(obj, "/deletionPolicy");
            if dp != "Delete" && dp != "Retain" {
                c.push(if dp.is_empty() {
                    Cause::required("deletionPolicy", "")
                } else {
                    Cause::not_supported("deletionPolicy", dp, &["Delete", "Retain"])
                });
            }
        }
        ("rbac.authorization.k8s.io", "roles" | "clusterroles") => {
            for (i, r) in obj
                .get("rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                if r.get("verbs")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty)
                {
                    c.push(Cause::required(
                        format!("rules[{i}].verbs"),
                        "verbs must contain at least one value",
                    ));
                }
                let nonres = r
                    .get("nonResourceURLs")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
                if !nonres
                    && r.get("apiGroups")
                        .and_then(Value::as_array)
                        .is_none_or(Vec::is_empty)
                {
                    c.push(Cause::required(
                        format!("rules[{i}].apiGroups"),
                        "resource rules must supply at least one api group",
                    ));
                }
                if nonres && rt.plural == "roles" {
                    c.push(Cause::invalid(
                        format!("rules[{i}].nonResourceURLs"),
                        r.get("nonResourceURLs").unwrap_or(&Value::Null),
                        "namespaced rules cannot apply to non-resource URLs",
                    ));
                }
            }
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            let kind = s(obj, "/roleRef/kind");
            let allowed: &[&str] = if rt.plural == "rolebindings" {
                &["Role", "ClusterRole"]
            } else {
                &["ClusterRole"]
            };
            if !allowed.contains(&kind) {
                c.push(Cause::not_supported("roleRef.kind", kind, allowed));
            }
            if s(obj, "/roleRef/name").is_empty() {
                c.push(Cause::required("roleRef.name", ""));
            }
            for (i, subj) in obj
                .get("subjects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let k = s(subj, "/kind");
                if !["User", "Group", "ServiceAccount"].contains(&k) {
                    c.push(Cause::not_supported(
                        format!("subjects[{i}].kind"),
                        k,
                        &["ServiceAccount", "User", "Group"],
                    ));
                }
                if s(subj, "/name").is_empty() {
                    c.push(Cause::required(format!("subjects[{i}].name"), ""));
                }
                if k == "ServiceAccount"
                    && s(subj, "/namespace").is_empty()
                    && rt.plural == "clusterrolebindings"
                {
                    c.push(Cause::required(format!("subjects[{i}].namespace"), ""));
                }
            }
            if let Some(old) = old
                && old.get("roleRef") != obj.get("roleRef")
            {
                c.push(Cause::invalid(
                    "roleRef",
                    obj.get("roleRef").unwrap_or(&Value::Null),
                    "cannot change roleRef",
                ));
            }
        }
        _ => {}
    }
    c
}

fn quantity_is_zero(q: &Value) -> bool {
    match q {
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s
            .trim_start_matches(['0', '.'])
            .chars()
            .next()
            .is_none_or(|ch| !ch.is_ascii_digit()),
        _ => false,
    }
}

fn validate_pod_spec(spec: Option<&Value>, path: &str, extra_volumes: &[&str], c: &mut Vec<Cause>) {
    let Some(spec) = spec.filter(|s| s.is_object()) else {
        c.push(Cause::required(format!("{path}.containers"), ""));
        return;
    };
    let mut volumes: Vec<&str> = Vec::new();
    for (i, v) in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = s(v, "/name");
        let field = format!("{path}.volumes[{i}].name");
        if name.is_empty() {
            c.push(Cause::required(field, ""));
        } else {
            for e in dns1123_label_errors(name) {
                c.push(Cause::invalid(field.clone(), &json!(name), &e));
            }
            if volumes.contains(&name) {
                c.push(Cause::duplicate(field, &json!(name)));
            }
            volumes.push(name);
        }
    }
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(Vec::is_empty) {
        c.push(Cause::required(format!("{path}.containers"), ""));
    }
    let mut names: Vec<&str> = Vec::new();
    for list in ["initContainers", "containers"] {
        for (i, ct) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let base = format!("{path}.{list}[{i}]");
            let name = s(ct, "/name");
            if name.is_empty() {
                c.push(Cause::required(format!("{base}.name"), ""));
            } else {
                for e in dns1123_label_errors(name) {
                    c.push(Cause::invalid(format!("{base}.name"), &json!(name), &e));
                }
                if names.contains(&name) {
                    c.push(Cause::duplicate(format!("{base}.name"), &json!(name)));
                }
                names.push(name);
            }
            if s(ct, "/image").trim().is_empty() {
                c.push(Cause::required(format!("{base}.image"), ""));
            }
            for (j, m) in ct
                .get("volumeMounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let vm = s(m, "/name");
                if vm.is_empty() {
                    c.push(Cause::required(
                        format!("{base}.volumeMounts[{j}].name"),
                        "",
                    ));
                } else if !volumes.contains(&vm) && !extra_volumes.contains(&vm) {
                    c.push(Cause {
                        reason: "FieldValueNotFound",
                        message: format!("Not found: {vm:?}"),
                        field: format!("{base}.volumeMounts[{j}].name"),
                    });
                }
                if s(m, "/mountPath").is_empty() {
                    c.push(Cause::required(
                        format!("{base}.volumeMounts[{j}].mountPath"),
                        "",
                    ));
                }
            }
        }
    }
    let rp = s(spec, "/restartPolicy");
    if !rp.is_empty() && !["Always", "OnFailure", "Never"].contains(&rp) {
        c.push(Cause::not_supported(
            format!("{path}.restartPolicy"),
            rp,
            &["Always", "OnFailure", "Never"],
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn pods_need_named_containers_with_images() {
        let r = Registry::new();
        let pods = r.find("", "v1", "pods").unwrap();
        let causes = validate(
            pods,
            &json!({"spec": {"containers": [{"image": ""}]}}),
            None,
        );
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["spec.containers[0].name", "spec.containers[0].image"]
        );
        assert_eq!(
            validate(pods, &json!({"spec": {}}), None)[0].field,
            "spec.containers"
        );
    }

    #[test]
    fn snapshots_need_exactly_one_source_and_pvcs_storage() {
        let r = Registry::new();
        let vs = r
            .find("snapshot.storage.k8s.io", "v1", "volumesnapshots")
            .unwrap();
        assert_eq!(
            validate(vs, &json!({"spec": {"source": {}}}), None).len(),
            1
        );
        assert!(
            validate(
                vs,
                &json!({"spec": {"source": {"persistentVolumeClaimName": "p"}}}),
                None
            )
            .is_empty()
        );
        let pvc = r.find("", "v1", "persistentvolumeclaims").unwrap();
        let causes = validate(pvc, &json!({"spec": {}}), None);
        assert_eq!(
            causes[0].message,
            "Required value: at least 1 access mode is required"
        );
        assert_eq!(causes[1].field, "spec.resources[storage]");
    }

    #[test]
    fn lease_times_are_decoded_strictly() {
        let r = Registry::new();
        let lease = r.find("coordination.k8s.io", "v1", "leases").unwrap();
        let mut ok = json!({"spec": {"renewTime": "2026-11-22T11:44:06.500000+02:00"}});
        decode(lease, &mut ok).unwrap();
        assert_eq!(ok["spec"]["renewTime"], "2026-11-22T09:44:06.500000Z");
        assert!(
            decode(
                lease,
                &mut json!({"spec": {"renewTime": "2026-11-22T09:44:00Z"}})
            )
            .is_err()
        );
        assert!(decode(lease, &mut json!({"spec": {"leaseDurationSeconds": "15"}})).is_err());
    }

    #[test]
    fn secrets_take_string_data() {
        let r = Registry::new();
        let sec = r.find("", "v1", "secrets").unwrap();
        let mut s = json!({"stringData": {"k": "v"}});
        decode(sec, &mut s).unwrap();
        assert_eq!(s, json!({"data": {"k": "dg=="}}));
        assert_eq!(
            decode(sec, &mut json!({"data": {"k": "!!"}})).unwrap_err(),
            "illegal base64 data at input byte 0"
        );
    }
}
