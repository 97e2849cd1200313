//! Discovery documents: `/api`, `/api/v1`, `/apis`, `/apis/{group}`, `/apis/{group}/{version}`, `/version`.
//! Aggregated discovery is not served: clients that ask for it get the legacy documents as plain JSON, which
//! kubectl and kube-rs accept as the fallback.

use serde_json::{Map, Value, json};

use crate::registry::{Registry, ResourceType, Storage};

fn resource_entries(t: &ResourceType) -> Vec<Value> {
    let mut out = Vec::new();
    let mut main = Map::new();
    main.insert("name".into(), json!(t.plural));
    main.insert("singularName".into(), json!(t.singular));
    main.insert("namespaced".into(), json!(t.namespaced));
    main.insert("kind".into(), json!(t.kind));
    main.insert("verbs".into(), json!(t.verbs()));
    if !t.short_names.is_empty() {
        main.insert("shortNames".into(), json!(t.short_names));
    }
    if !t.categories.is_empty() {
        main.insert("categories".into(), json!(t.categories));
    }
    out.push(Value::Object(main));
    if t.storage == Storage::Review {
        return out;
    }
    for s in t.subresources {
        let mut e = Map::new();
        e.insert("name".into(), json!(format!("{}/{}", t.plural, s.name)));
        e.insert("singularName".into(), json!(""));
        e.insert("namespaced".into(), json!(t.namespaced));
        if let Some((g, v)) = s.kind_group_version {
            e.insert("group".into(), json!(g));
            e.insert("version".into(), json!(v));
        }
        e.insert("kind".into(), json!(s.kind));
        e.insert("verbs".into(), json!(s.verbs));
        out.push(Value::Object(e));
    }
    out
}

fn resource_list(reg: &Registry, group: &str, version: &str) -> Vec<Value> {
    let mut items: Vec<Value> = reg
        .all()
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .flat_map(resource_entries)
        .collect();
    items.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    items
}

/// `GET /api`.
pub fn api_versions(address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]})
}

/// `GET /api/v1`.
pub fn core_resources(reg: &Registry) -> Value {
    json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": resource_list(reg, "", "v1")})
}

fn group_entry(reg: &Registry, group: &str) -> Value {
    let mut versions: Vec<&str> = reg
        .all()
        .iter()
        .filter(|t| t.group == group)
        .map(|t| t.version)
        .collect();
    versions.dedup();
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = gvs.first().cloned().unwrap_or_default();
    json!({"name": group, "versions": gvs, "preferredVersion": preferred})
}

/// `GET /apis`.
pub fn api_groups(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .into_iter()
        .map(|g| group_entry(reg, g))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`.
pub fn api_group(reg: &Registry, group: &str) -> Option<Value> {
    reg.groups().contains(&group).then(|| {
        let mut g = group_entry(reg, group);
        if let Some(m) = g.as_object_mut() {
            m.insert("kind".into(), json!("APIGroup"));
            m.insert("apiVersion".into(), json!("v1"));
        }
        g
    })
}

/// `GET /apis/{group}/{version}`.
pub fn group_resources(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    reg.has_group_version(group, version).then(|| {
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{group}/{version}"),
               "resources": resource_list(reg, group, version)})
    })
}

/// `GET /version`.
pub fn version() -> Value {
    json!({"major": "1", "minor": "32", "emulationMajor": "1", "emulationMinor": "32", "gitVersion": "v1.32.13-kentledge-testcluster",
           "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
           "goVersion": "go1.23.0", "compiler": "gc", "platform": "linux/amd64"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_list_is_sorted_with_subresources() {
        let reg = Registry::new();
        let v = core_resources(&reg);
        let names: Vec<&str> = v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert!(names.contains(&"pods/exec"));
        let exec = v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/exec")
            .unwrap();
        assert_eq!(
            exec,
            &json!({"name":"pods/exec","singularName":"","namespaced":true,"kind":"PodExecOptions","verbs":["create","get"]})
        );
        let vs = group_resources(&reg, "snapshot.storage.k8s.io", "v1").unwrap();
        let vs = vs["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "volumesnapshots")
            .unwrap()
            .clone();
        assert_eq!(
            vs["verbs"],
            json!([
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "create",
                "update",
                "watch"
            ])
        );
    }
}
