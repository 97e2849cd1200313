//! uid, resourceVersion, generation, creationTimestamp, generateName, conflicts, AlreadyExists, NotFound, Invalid.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn create_sets_uid_rv_timestamp_and_generation_only_for_spec_changes() {
    let s = server().await;
    let (code, a) = raw(&s, "POST", CMS, Some(cm("a"))).await;
    assert_eq!(code, 201);
    let rv: u64 = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(a["metadata"]["uid"].as_str().unwrap().len(), 36);
    let ts = a["metadata"]["creationTimestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 20, "{ts}");
    assert!(
        a["metadata"].get("generation").is_none(),
        "ConfigMaps have no generation"
    );
    let (_, b) = raw(&s, "POST", CMS, Some(cm("b"))).await;
    assert_eq!(
        b["metadata"]["resourceVersion"],
        json!((rv + 1).to_string()),
        "one global counter"
    );

    let (_, snap) = raw(&s, "POST", SNAPS, Some(snapshot("s1"))).await;
    assert_eq!(snap["metadata"]["generation"], 1);
    let (_, l) = raw(
        &s,
        "PATCH",
        &format!("{SNAPS}/s1"),
        Some(json!({"metadata": {"labels": {"x": "1"}}})),
    )
    .await;
    assert_eq!(l["metadata"]["generation"], 1, "label-only change");
    let (_, sp) = raw(
        &s,
        "PATCH",
        &format!("{SNAPS}/s1"),
        Some(json!({"spec": {"volumeSnapshotClassName": "c"}})),
    )
    .await;
    assert_eq!(sp["metadata"]["generation"], 2, "spec change");
    let (_, st) = raw(
        &s,
        "PATCH",
        &format!("{SNAPS}/s1/status"),
        Some(json!({"status": {"readyToUse": true}})),
    )
    .await;
    assert_eq!(st["metadata"]["generation"], 2, "status write");
}

#[tokio::test]
async fn generate_name_uses_the_real_alphabet_and_keeps_the_prefix() {
    let s = server().await;
    let (code, v) = raw(
        &s,
        "POST",
        CMS,
        Some(json!({"metadata": {"generateName": "cm-"}})),
    )
    .await;
    assert_eq!(code, 201);
    let name = v["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("cm-") && name.len() == 8, "{name}");
    assert!(
        name[3..]
            .chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
    );
    assert_eq!(v["metadata"]["generateName"], "cm-");
    let (_, long) = raw(
        &s,
        "POST",
        CMS,
        Some(json!({"metadata": {"generateName": "a".repeat(71)}})),
    )
    .await;
    assert_eq!(long["metadata"]["name"].as_str().unwrap().len(), 63);
    let (code, bad) = raw(
        &s,
        "POST",
        CMS,
        Some(json!({"metadata": {"generateName": "Bad_"}})),
    )
    .await;
    assert_eq!(code, 422);
    let causes = bad["details"]["causes"].as_array().unwrap();
    assert_eq!(causes.len(), 2);
    assert_eq!(causes[0]["field"], "metadata.generateName");
    assert_eq!(causes[1]["field"], "metadata.name");
}

#[tokio::test]
async fn stale_resource_version_conflicts_and_missing_rv_is_unconditional() {
    let s = server().await;
    let (_, a) = raw(&s, "POST", CMS, Some(cm("a"))).await;
    let mut stale = a.clone();
    raw(
        &s,
        "PATCH",
        &format!("{CMS}/a"),
        Some(json!({"data": {"k": "v2"}})),
    )
    .await;
    stale["data"]["k"] = json!("v3");
    let (code, body) = raw(&s, "PUT", &format!("{CMS}/a"), Some(stale.clone())).await;
    assert_eq!(code, 409);
    assert_eq!(
        body,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
               "message":"Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again",
               "reason":"Conflict","details":{"name":"a","kind":"configmaps"},"code":409})
    );
    stale["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let (code, _) = raw(&s, "PUT", &format!("{CMS}/a"), Some(stale.clone())).await;
    assert_eq!(code, 200, "PUT without resourceVersion is unconditional");
    let (code, body) = raw(&s, "PUT", &format!("{CMS}/ghost"), Some(cm("ghost"))).await;
    assert_eq!(
        (code, body["message"].as_str()),
        (404, Some("configmaps \"ghost\" not found"))
    );
    let (code, body) = raw(&s, "PUT", &format!("{CMS}/a"), Some(cm("other"))).await;
    assert_eq!(
        (code, body["message"].as_str()),
        (
            400,
            Some("the name of the object (other) does not match the name on the URL (a)")
        )
    );
}

#[tokio::test]
async fn already_exists_and_not_found_have_the_real_status() {
    let s = server().await;
    assert_eq!(raw(&s, "POST", PODS, Some(pod("pod-a"))).await.0, 201);
    let (code, body) = raw(&s, "POST", PODS, Some(pod("pod-a"))).await;
    assert_eq!(code, 409);
    assert_eq!(
        body,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"pod-a\" already exists","reason":"AlreadyExists","details":{"name":"pod-a","kind":"pods"},"code":409})
    );
    let (code, body) = raw(&s, "GET", &format!("{PODS}/missing"), None).await;
    assert_eq!(code, 404);
    assert_eq!(
        body,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"missing\" not found","reason":"NotFound","details":{"name":"missing","kind":"pods"},"code":404})
    );
    let (_, body) = raw(&s, "GET", &format!("{SNAPS}/missing"), None).await;
    assert_eq!(
        body["details"],
        json!({"name":"missing","group":"snapshot.storage.k8s.io","kind":"volumesnapshots"})
    );
}

#[tokio::test]
async fn invalid_objects_get_422_with_field_causes() {
    let s = server().await;
    let mut p = pod("Bad_Name");
    p["metadata"]["labels"] = json!({"app": "bad value!"});
    p["spec"] = json!({});
    let (code, body) = raw(&s, "POST", PODS, Some(p)).await;
    assert_eq!(code, 422);
    assert_eq!(body["reason"], "Invalid");
    assert_eq!(body["details"]["kind"], "Pod");
    assert_eq!(body["details"]["name"], "Bad_Name");
    let causes = body["details"]["causes"].as_array().unwrap();
    assert_eq!(causes[0]["field"], "metadata.name");
    assert!(causes[0]["message"].as_str().unwrap().starts_with(
        "Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of"
    ));
    assert_eq!(causes[1]["field"], "metadata.labels");
    assert_eq!(
        causes[1]["message"],
        "Invalid value: \"bad value!\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
    );
    assert_eq!(
        causes[2],
        json!({"reason":"FieldValueRequired","message":"Required value","field":"spec.containers"})
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Pod \"Bad_Name\" is invalid: [metadata.name: Invalid value:")
    );

    let (code, body) = raw(&s, "POST", CMS, Some(json!({"metadata": {}}))).await;
    assert_eq!(code, 422);
    assert_eq!(
        body["message"],
        "ConfigMap \"\" is invalid: metadata.name: Required value: name or generateName is required"
    );
    assert!(body["details"].get("name").is_none());

    let (code, body) = raw(&s, "POST", SNAPS, Some(json!({"metadata": {"name": "Bad_Name"}, "spec": {"source": {"persistentVolumeClaimName": "d"}}}))).await;
    assert_eq!(code, 422);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("VolumeSnapshot.snapshot.storage.k8s.io \"Bad_Name\" is invalid: ")
    );
    assert_eq!(body["details"]["group"], "snapshot.storage.k8s.io");
    let (code, body) = raw(&s, "POST", SNAPS, Some(json!({"metadata": {"name": "two"}, "spec": {"source": {"persistentVolumeClaimName": "d", "volumeSnapshotContentName": "c"}}}))).await;
    assert_eq!(
        (code, body["details"]["causes"][0]["field"].as_str()),
        (422, Some("spec.source"))
    );

    let pvc = json!({"metadata": {"name": "data"}, "spec": {}});
    let (code, body) = raw(
        &s,
        "POST",
        "/api/v1/namespaces/ref/persistentvolumeclaims",
        Some(pvc),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        body["details"]["causes"][0]["message"],
        "Required value: at least 1 access mode is required"
    );
    assert_eq!(
        body["details"]["causes"][1]["field"],
        "spec.resources[storage]"
    );
}

#[tokio::test]
async fn lease_micro_time_is_strict_and_normalised() {
    let s = server().await;
    let leases = "/apis/coordination.k8s.io/v1/namespaces/ref/leases";
    let lease = |t: &str| json!({"metadata": {"name": "lock"}, "spec": {"holderIdentity": "node-a", "leaseDurationSeconds": 15, "acquireTime": t, "renewTime": t, "leaseTransitions": 0}});
    let (code, body) = raw(&s, "POST", leases, Some(lease("2026-11-22T09:44:00Z"))).await;
    assert_eq!(code, 400);
    assert_eq!(
        body["message"],
        "Lease in version \"v1\" cannot be handled as a Lease: parsing time \"2026-11-22T09:44:00Z\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse \"Z\" as \".000000\""
    );
    let (code, body) = raw(
        &s,
        "POST",
        leases,
        Some(lease("2026-11-22T11:44:06.500000+02:00")),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["spec"]["renewTime"], "2026-11-22T09:44:06.500000Z");
}

#[tokio::test]
async fn dry_run_stores_nothing() {
    let s = server().await;
    let (code, body) = raw(&s, "POST", &format!("{CMS}?dryRun=All"), Some(cm("dry"))).await;
    assert_eq!(code, 201);
    assert!(body["metadata"].get("resourceVersion").is_none());
    assert_eq!(raw(&s, "GET", &format!("{CMS}/dry"), None).await.0, 404);
}
