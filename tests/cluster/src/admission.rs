//! Admission: the mutating plugins a real kube-apiserver runs after defaulting and before validation, in
//! its order (ServiceAccount, Priority, DefaultTolerationSeconds, DefaultStorageClass,
//! StorageObjectInUseProtection), with their Forbidden messages. The controllers that complete them
//! (the `default` ServiceAccount, `kube-root-ca.crt`, pvc-/pv-protection) are in `controllers.rs`.

use serde_json::{Map, Value, json};

use crate::cluster::{Cluster, SERVICE_ACCOUNTS};
use crate::registry::{GroupResource, ResourceType};
use crate::rest::write::{self, WriteOpts};
use crate::status::ApiError;

/// Where the ServiceAccount admission mounts the token volume.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The prefix of the projected token volume's generated name.
pub const TOKEN_VOLUME_PREFIX: &str = "kube-api-access-";
/// The ConfigMap with the cluster CA that every namespace gets.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// The finalizer StorageObjectInUseProtection puts on claims.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// The finalizer StorageObjectInUseProtection puts on volumes.
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";
/// The token lifetime the admission asks for (the kubelet's `WarnOnlyBoundTokenExpirationSeconds`).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

const STORAGE_CLASSES: GroupResource = GroupResource {
    group: "storage.k8s.io",
    plural: "storageclasses",
};
const MIRROR_POD: &str = "kubernetes.io/config.mirror";

/// The built-in PriorityClasses every cluster bootstraps (PriorityClasses are not served here).
const SYSTEM_PRIORITY_CLASSES: &[(&str, i64)] = &[
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// The name admission errors use: the object's name, else its generateName (names are generated later).
pub fn display_name(obj: &Value) -> String {
    let meta = |k: &str| {
        obj.pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = meta("name");
    if name.is_empty() {
        meta("generateName")
    } else {
        name
    }
}

fn forbidden(rt: &ResourceType, name: &str, why: &str) -> ApiError {
    let res = rt.name();
    let message = if name.is_empty() {
        format!("{} is forbidden: {why}", res.qualified())
    } else {
        format!("{} {name:?} is forbidden: {why}", res.qualified())
    };
    ApiError::forbidden(res, (!name.is_empty()).then_some(name), message)
}

/// Mutating admission of a create, after defaulting and before validation.
pub fn admit_create(
    cl: &Cluster,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    obj: &mut Value,
) -> Result<(), ApiError> {
    match (rt.group, rt.plural) {
        ("", "pods") => {
            if obj
                .pointer(&format!(
                    "/metadata/annotations/{}",
                    MIRROR_POD.replace('/', "~1")
                ))
                .is_some()
            {
                return Ok(());
            }
            let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
                return Ok(());
            };
            service_account(cl, rt, ns, name, spec)?;
            priority(rt, name, spec)?;
            default_toleration_seconds(spec);
        }
        ("", "persistentvolumeclaims") => {
            default_storage_class(cl, obj);
            add_finalizer(obj, PVC_PROTECTION);
        }
        ("", "persistentvolumes") => add_finalizer(obj, PV_PROTECTION),
        _ => {}
    }
    Ok(())
}

/// Mutating admission of an update of the main resource: Priority keeps the computed priority and
/// DefaultTolerationSeconds keeps its tolerations.
pub fn admit_update(rt: &ResourceType, old: &Value, new: &mut Value) {
    if !(rt.group.is_empty() && rt.plural == "pods") {
        return;
    }
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for k in ["priority", "preemptionPolicy"] {
        if let Some(v) = old.pointer(&format!("/spec/{k}"))
            && spec.get(k).is_none_or(Value::is_null)
        {
            spec.insert(k.into(), v.clone());
        }
    }
    default_toleration_seconds(spec);
}

fn str_of<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

/// The ServiceAccount plugin: default `serviceAccountName`, require the account, mount the projected token
/// volume in every (init) container unless automount is off, copy the account's imagePullSecrets.
fn service_account(
    cl: &Cluster,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    spec: &mut Map<String, Value>,
) -> Result<(), ApiError> {
    let sa_name = match str_of(spec, "serviceAccountName") {
        "" => "default".to_string(),
        n => n.to_string(),
    };
    spec.insert("serviceAccountName".into(), json!(sa_name));
    spec.insert("serviceAccount".into(), json!(sa_name));
    let mut sa = cl.store.get(SERVICE_ACCOUNTS, ns, &sa_name);
    if sa.is_none() && sa_name == "default" {
        // The real plugin retries the default account for ~1-2 s while the ServiceAccount controller
        // creates it; here the controller's work is done at once.
        sa = ensure_default_service_account(cl, ns);
    }
    let Some(sa) = sa else {
        return Err(forbidden(
            rt,
            name,
            &format!(
                "error looking up service account {ns}/{sa_name}: serviceaccount {sa_name:?} not found"
            ),
        ));
    };
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            sa.get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true);
    if automount {
        mount_token(spec);
    }
    let pull = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !pull
        && let Some(secrets) = sa.get("imagePullSecrets").and_then(Value::as_array)
        && !secrets.is_empty()
    {
        let names: Vec<Value> = secrets
            .iter()
            .map(|s| json!({"name": s.get("name").cloned().unwrap_or(Value::Null)}))
            .collect();
        spec.insert("imagePullSecrets".into(), json!(names));
    }
    Ok(())
}

/// What the ServiceAccount controller does for a new namespace: a `default` account.
pub fn ensure_default_service_account(cl: &Cluster, ns: &str) -> Option<Value> {
    let rt = cl.registry.by_key(SERVICE_ACCOUNTS)?;
    let opts = WriteOpts {
        dry_run: false,
        manager: "kube-controller-manager".into(),
    };
    let sa = json!({"metadata": {"name": "default", "namespace": ns}});
    match write::create(cl, rt, ns, sa, &opts, false) {
        Ok(v) => Some(v),
        Err(_) => cl.store.get(SERVICE_ACCOUNTS, ns, "default"),
    }
}

/// The `kube-api-access-xxxxx` projected volume and its mounts.
fn mount_token(spec: &mut Map<String, Value>) {
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|n| n.starts_with(TOKEN_VOLUME_PREFIX))
        .map(String::from);
    let volume_name = existing
        .clone()
        .unwrap_or_else(|| write::generate_name(TOKEN_VOLUME_PREFIX));
    let mount = json!({"name": volume_name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut needed = false;
    crate::kinds::for_each_container(spec, &["initContainers", "containers"], |c| {
        let mounts = array_entry(c, "volumeMounts");
        if mounts
            .iter()
            .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH))
        {
            return;
        }
        mounts.push(mount.clone());
        needed = true;
    });
    if existing.is_none() && needed {
        let volume = json!({"name": volume_name, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
            {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ]}});
        array_entry(spec, "volumes").push(volume);
    }
}

/// The Priority plugin: resolve `priorityClassName` (none: priority 0, PreemptLowerPriority).
fn priority(rt: &ResourceType, name: &str, spec: &mut Map<String, Value>) -> Result<(), ApiError> {
    let class = str_of(spec, "priorityClassName").to_string();
    let value = if class.is_empty() {
        0
    } else {
        SYSTEM_PRIORITY_CLASSES
            .iter()
            .find(|(n, _)| *n == class)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                forbidden(
                    rt,
                    name,
                    &format!("no PriorityClass with name {class} was found"),
                )
            })?
    };
    if let Some(given) = spec.get("priority").and_then(Value::as_i64)
        && given != value
    {
        return Err(forbidden(
            rt,
            name,
            &format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
            ),
        ));
    }
    spec.insert("priority".into(), json!(value));
    let policy = "PreemptLowerPriority";
    match str_of(spec, "preemptionPolicy") {
        "" => {}
        p if p == policy => {}
        p => {
            return Err(forbidden(
                rt,
                name,
                &format!(
                    "the string value of PreemptionPolicy ({p}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
                ),
            ));
        }
    }
    spec.insert("preemptionPolicy".into(), json!(policy));
    Ok(())
}

/// DefaultTolerationSeconds: tolerate `not-ready` and `unreachable` (NoExecute) for 300 s unless the pod
/// already tolerates them.
fn default_toleration_seconds(spec: &mut Map<String, Value>) {
    let list = array_entry(spec, "tolerations");
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let tolerated = list.iter().any(|t| {
            let k = t.get("key").and_then(Value::as_str).unwrap_or("");
            let e = t.get("effect").and_then(Value::as_str).unwrap_or("");
            (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
        });
        if !tolerated {
            list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
}

/// DefaultStorageClass: a claim that names no class (the field absent, not `""`) gets the default one
/// (the newest when several are marked, then by name).
fn default_storage_class(cl: &Cluster, obj: &mut Value) {
    let has_class = obj
        .pointer("/spec/storageClassName")
        .is_some_and(|v| !v.is_null())
        || obj
            .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
            .is_some();
    if has_class {
        return;
    }
    let (_, classes) = cl.store.list(STORAGE_CLASSES, None);
    let is_default = |c: &Value| {
        [
            "storageclass.kubernetes.io~1is-default-class",
            "storageclass.beta.kubernetes.io~1is-default-class",
        ]
        .iter()
        .any(|a| {
            c.pointer(&format!("/metadata/annotations/{a}"))
                .and_then(Value::as_str)
                == Some("true")
        })
    };
    let meta = |c: &Value, k: &str| {
        c.pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let best = classes
        .into_iter()
        .map(|(_, c)| c)
        .filter(is_default)
        .min_by(|a, b| {
            meta(b, "creationTimestamp")
                .cmp(&meta(a, "creationTimestamp"))
                .then_with(|| meta(a, "name").cmp(&meta(b, "name")))
        });
    if let Some(class) = best
        && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.insert("storageClassName".into(), json!(meta(&class, "name")));
    }
}

/// StorageObjectInUseProtection: the protection finalizer, appended.
fn add_finalizer(obj: &mut Value, finalizer: &str) {
    let Some(meta) = crate::rest::meta_mut(obj) else {
        return;
    };
    let fins = array_entry(meta, "finalizers");
    if !fins.iter().any(|x| x.as_str() == Some(finalizer)) {
        fins.push(json!(finalizer));
    }
}

/// The array at `m[key]`, made an empty one when absent or not an array.
fn array_entry<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let v = m.entry(key).or_insert_with(|| json!([]));
    if !v.is_array() {
        *v = json!([]);
    }
    match v {
        Value::Array(a) => a,
        _ => unreachable!("made an array above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerations_are_added_unless_already_tolerated() {
        let mut spec = Map::new();
        default_toleration_seconds(&mut spec);
        assert_eq!(spec["tolerations"].as_array().map(Vec::len), Some(2));
        let mut all = json!({"tolerations": [{"operator": "Exists"}]});
        default_toleration_seconds(all.as_object_mut().unwrap());
        assert_eq!(all["tolerations"], json!([{"operator": "Exists"}]));
        let mut some = json!({"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]});
        default_toleration_seconds(some.as_object_mut().unwrap());
        assert_eq!(
            some["tolerations"][1]["key"],
            "node.kubernetes.io/not-ready"
        );
        assert_eq!(some["tolerations"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn the_token_volume_reuses_an_existing_one_and_skips_taken_mount_paths() {
        let mut spec = json!({"containers": [{"name": "a"}, {"name": "b", "volumeMounts": [{"name": "x", "mountPath": TOKEN_MOUNT_PATH}]}],
                              "initContainers": [{"name": "i"}]});
        mount_token(spec.as_object_mut().unwrap());
        let vols = spec["volumes"].as_array().unwrap();
        assert_eq!(vols.len(), 1);
        let name = vols[0]["name"].as_str().unwrap();
        assert!(
            name.starts_with(TOKEN_VOLUME_PREFIX) && name.len() == 21,
            "{name}"
        );
        assert_eq!(spec["containers"][0]["volumeMounts"][0]["name"], name);
        assert_eq!(spec["initContainers"][0]["volumeMounts"][0]["name"], name);
        assert_eq!(
            spec["containers"][1]["volumeMounts"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        mount_token(spec.as_object_mut().unwrap());
        assert_eq!(spec["volumes"].as_array().map(Vec::len), Some(1));
    }
}
