//! A minimal OpenAPI v3 surface: the index and one document per group version whose operations declare the
//! `fieldValidation`, `dryRun` and `fieldManager` parameters, so that kubectl chooses server-side field
//! validation (as with a real server) instead of failing to download schemas. No object schemas are served.

use serde_json::{Map, Value, json};

use crate::registry::{Registry, ResourceType, Storage};

fn prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `GET /openapi/v3`.
pub fn index(reg: &Registry) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(&str, &str)> = reg.all().iter().map(|t| (t.group, t.version)).collect();
    gvs.dedup();
    gvs.sort();
    gvs.dedup();
    for (g, v) in gvs {
        let p = prefix(g, v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash=0")}),
        );
    }
    json!({"paths": paths})
}

fn op(t: &ResourceType, action: &str) -> Value {
    let params: Vec<Value> = ["dryRun", "fieldManager", "fieldValidation"]
        .iter()
        .map(|n| json!({"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": true}}))
        .collect();
    json!({"operationId": format!("{action}{}", t.kind), "parameters": params, "responses": {"200": {"description": "OK"}},
           "x-kubernetes-action": action,
           "x-kubernetes-group-version-kind": {"group": t.group, "version": t.version, "kind": t.kind}})
}

/// `GET /openapi/v3/{api/v1 | apis/g/v}`.
pub fn group_version(reg: &Registry, path: &str) -> Option<Value> {
    let mut paths = Map::new();
    for t in reg
        .all()
        .iter()
        .filter(|t| prefix(t.group, t.version) == path)
    {
        let base = if t.namespaced {
            format!("/{path}/namespaces/{{namespace}}/{}", t.plural)
        } else {
            format!("/{path}/{}", t.plural)
        };
        paths.insert(base.clone(), json!({"post": op(t, "post")}));
        if t.storage == Storage::Stored {
            paths.insert(
                format!("{base}/{{name}}"),
                json!({"put": op(t, "put"), "patch": op(t, "patch")}),
            );
        }
    }
    (!paths.is_empty()).then(|| {
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.13"}, "paths": paths,
               "components": {"schemas": {}}})
    })
}
