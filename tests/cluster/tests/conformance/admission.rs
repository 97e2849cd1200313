//! Defaulting and admission a real kube-apiserver applies on create: pod templates versus pods, the
//! ServiceAccount token volume, Priority, DefaultTolerationSeconds, DefaultStorageClass, the
//! storage-object-in-use protection finalizers, and the controllers behind them (default
//! ServiceAccount, `kube-root-ca.crt`, pvc-/pv-protection).

use serde_json::{Value, json};

use crate::support::*;

const DEPLOYS: &str = "/apis/apps/v1/namespaces/ref/deployments";

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
           "spec": {"selector": {"matchLabels": {"app": name}}, "strategy": {},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}})
}

/// A real server defaults pod templates with `SetDefaults_PodSpec` only: no service account, no
/// `enableServiceLinks` (those are pod defaults and ServiceAccount admission), and fills an empty
/// `strategy` field by field.
#[tokio::test]
async fn pod_templates_get_pod_spec_defaults_only() {
    let s = server().await;
    let (code, d) = raw(&s, "POST", DEPLOYS, Some(deployment("web"))).await;
    assert_eq!(code, 201, "{d}");
    let spec = &d["spec"]["template"]["spec"];
    for absent in [
        "serviceAccountName",
        "serviceAccount",
        "enableServiceLinks",
        "volumes",
        "tolerations",
        "priority",
    ] {
        assert!(spec.get(absent).is_none(), "{absent} in {spec}");
    }
    assert_eq!(
        (
            &spec["dnsPolicy"],
            &spec["restartPolicy"],
            &spec["schedulerName"],
            &spec["securityContext"],
            &spec["terminationGracePeriodSeconds"]
        ),
        (
            &json!("ClusterFirst"),
            &json!("Always"),
            &json!("default-scheduler"),
            &json!({}),
            &json!(30)
        )
    );
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    // A template that names a service account keeps it, mirrored into the deprecated field.
    let mut named = deployment("named");
    named["spec"]["template"]["spec"]["serviceAccountName"] = json!("robot");
    let (_, d) = raw(&s, "POST", DEPLOYS, Some(named)).await;
    let spec = &d["spec"]["template"]["spec"];
    assert_eq!(
        (&spec["serviceAccountName"], &spec["serviceAccount"]),
        (&json!("robot"), &json!("robot"))
    );
}

fn token_volume_shape(name: &str) -> Value {
    json!({"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}})
}

/// ServiceAccount, Priority and DefaultTolerationSeconds admission on a plain pod, as a real
/// server answers `kubectl get pod -o yaml`.
#[tokio::test]
async fn pods_get_the_default_account_its_token_volume_priority_and_tolerations() {
    let s = server().await;
    let mut p = pod("plain");
    p["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox"}]);
    let (code, v) = raw(&s, "POST", PODS, Some(p)).await;
    assert_eq!(code, 201, "{v}");
    let spec = &v["spec"];
    assert_eq!(
        (
            &spec["serviceAccountName"],
            &spec["serviceAccount"],
            &spec["enableServiceLinks"],
            &spec["priority"],
            &spec["preemptionPolicy"]
        ),
        (
            &json!("default"),
            &json!("default"),
            &json!(true),
            &json!(0),
            &json!("PreemptLowerPriority")
        )
    );
    assert_eq!(
        spec["tolerations"],
        json!([
            {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
            {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}])
    );
    let volumes = spec["volumes"].as_array().expect("volumes");
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    let name = volumes[0]["name"].as_str().unwrap();
    let suffix = name.strip_prefix("kube-api-access-").expect(name);
    assert!(
        suffix.len() == 5
            && suffix
                .chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
        "{name}"
    );
    assert_eq!(volumes[0], token_volume_shape(name));
    let mount = json!([{"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": name, "readOnly": true}]);
    assert_eq!(spec["containers"][0]["volumeMounts"], mount);
    assert_eq!(spec["initContainers"][0]["volumeMounts"], mount);
    // What admission added is not the client's: its managedFields entry has no volumes.
    let fields = v["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"].clone();
    for added in [
        "f:volumes",
        "f:tolerations",
        "f:priority",
        "f:serviceAccountName",
    ] {
        assert!(fields.get(added).is_none(), "{added} in {fields}");
    }
    assert!(fields.get("f:dnsPolicy").is_some(), "defaults are");
}

/// kentledge's mover pods say `automountServiceAccountToken: false`: no token volume, no mount. The
/// account's own setting applies when the pod says nothing, and the pod's wins.
#[tokio::test]
async fn automount_false_on_the_pod_or_its_account_means_no_token_volume() {
    let s = server().await;
    let mut p = pod("mover");
    p["spec"]["automountServiceAccountToken"] = json!(false);
    let (code, v) = raw(&s, "POST", PODS, Some(p)).await;
    assert_eq!(code, 201, "{v}");
    assert!(v["spec"].get("volumes").is_none(), "{}", v["spec"]);
    assert!(v["spec"]["containers"][0].get("volumeMounts").is_none());
    assert_eq!(v["spec"]["serviceAccountName"], "default");

    let sa = json!({"metadata": {"name": "quiet"}, "automountServiceAccountToken": false,
                    "imagePullSecrets": [{"name": "regcred"}]});
    assert_eq!(
        raw(
            &s,
            "POST",
            "/api/v1/namespaces/ref/serviceaccounts",
            Some(sa)
        )
        .await
        .0,
        201
    );
    let mut p = pod("quiet");
    p["spec"]["serviceAccountName"] = json!("quiet");
    let (_, v) = raw(&s, "POST", PODS, Some(p)).await;
    assert!(v["spec"].get("volumes").is_none(), "{}", v["spec"]);
    assert_eq!(v["spec"]["imagePullSecrets"], json!([{"name": "regcred"}]));
    let mut p = pod("loud");
    p["spec"]["serviceAccountName"] = json!("quiet");
    p["spec"]["automountServiceAccountToken"] = json!(true);
    let (_, v) = raw(&s, "POST", PODS, Some(p)).await;
    assert_eq!(v["spec"]["volumes"].as_array().map(Vec::len), Some(1));
    // A pod that mounts something at the token path keeps it and gets no second mount.
    let mut p = pod("own");
    p["spec"]["volumes"] = json!([{"name": "mine", "emptyDir": {}}]);
    p["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "mine", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]);
    let (_, v) = raw(&s, "POST", PODS, Some(p)).await;
    assert_eq!(v["spec"]["volumes"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_missing_service_account_or_priority_class_is_forbidden() {
    let s = server().await;
    let mut p = pod("lost");
    p["spec"]["serviceAccountName"] = json!("ghost");
    let (code, v) = raw(&s, "POST", PODS, Some(p)).await;
    assert_eq!(code, 403);
    assert_eq!(
        v,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "pods \"lost\" is forbidden: error looking up service account ref/ghost: serviceaccount \"ghost\" not found",
               "reason": "Forbidden", "details": {"name": "lost", "kind": "pods"}, "code": 403})
    );
    // Admission runs before the name is generated: the message names the prefix.
    let mut p = pod("");
    p["metadata"] = json!({"generateName": "gen-"});
    p["spec"]["serviceAccountName"] = json!("ghost");
    let (_, v) = raw(&s, "POST", PODS, Some(p)).await;
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("pods \"gen-\" is forbidden: error looking up service account"),
        "{v}"
    );
    let mut p = pod("classy");
    p["spec"]["priorityClassName"] = json!("gold");
    let (code, v) = raw(&s, "POST", PODS, Some(p)).await;
    assert_eq!(
        (code, v["message"].as_str()),
        (
            403,
            Some("pods \"classy\" is forbidden: no PriorityClass with name gold was found")
        )
    );
    let mut p = pod("pushy");
    p["spec"]["priority"] = json!(5);
    let (code, v) = raw(&s, "POST", PODS, Some(p)).await;
    assert_eq!(
        (code, v["message"].as_str()),
        (
            403,
            Some(
                "pods \"pushy\" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 0 from the given PriorityClass name"
            )
        )
    );
    let mut p = pod("critical");
    p["spec"]["priorityClassName"] = json!("system-node-critical");
    let (code, v) = raw(&s, "POST", PODS, Some(p)).await;
    assert_eq!((code, &v["spec"]["priority"]), (201, &json!(2000001000)));
    // A PUT that leaves priority out keeps the computed one (pod specs are otherwise immutable).
    let mut put = v.clone();
    put["spec"].as_object_mut().unwrap().remove("priority");
    put["spec"]
        .as_object_mut()
        .unwrap()
        .remove("preemptionPolicy");
    put["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let (code, v) = raw(&s, "PUT", &format!("{PODS}/critical"), Some(put)).await;
    assert_eq!(
        (code, &v["spec"]["priority"]),
        (200, &json!(2000001000)),
        "{v}"
    );
}

/// Every namespace: the `kubernetes.io/metadata.name` label (kept on update), a `default`
/// ServiceAccount and the `kube-root-ca.crt` ConfigMap with the cluster CA (restored when changed or
/// deleted).
#[tokio::test]
async fn every_namespace_gets_its_name_label_a_default_account_and_the_root_ca() {
    let s = server().await;
    let (_, ns) = raw(&s, "GET", "/api/v1/namespaces/ref", None).await;
    assert_eq!(
        ns["metadata"]["labels"],
        json!({"kubernetes.io/metadata.name": "ref"})
    );
    let (code, ns) = raw(
        &s,
        "PATCH",
        "/api/v1/namespaces/ref",
        Some(json!({"metadata": {"labels": {"kubernetes.io/metadata.name": null, "team": "a"}}})),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        ns["metadata"]["labels"],
        json!({"kubernetes.io/metadata.name": "ref", "team": "a"})
    );
    let ca_path = "/api/v1/namespaces/ref/configmaps/kube-root-ca.crt";
    let (code, cm) = raw(&s, "GET", ca_path, None).await;
    assert_eq!(code, 200);
    let pem = String::from_utf8_lossy(kentledge_testcluster::tls::CA_PEM).into_owned();
    assert_eq!(cm["data"], json!({"ca.crt": pem}));
    assert_eq!(
        cm["metadata"]["annotations"]["kubernetes.io/description"],
        "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
    );
    raw(
        &s,
        "PATCH",
        ca_path,
        Some(json!({"data": {"ca.crt": "tampered"}})),
    )
    .await;
    eventually("the CA restored", || async {
        raw(&s, "GET", ca_path, None).await.1["data"]["ca.crt"] == json!(pem)
    })
    .await;
    raw(&s, "DELETE", ca_path, None).await;
    eventually("the CA recreated", || async {
        raw(&s, "GET", ca_path, None).await.0 == 200
    })
    .await;
    for system in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let (code, _) = raw(
            &s,
            "GET",
            &format!("/api/v1/namespaces/{system}/configmaps/kube-root-ca.crt"),
            None,
        )
        .await;
        assert_eq!(code, 200, "{system}");
    }
}

const SCS: &str = "/apis/storage.k8s.io/v1/storageclasses";
const PVCS: &str = "/api/v1/namespaces/ref/persistentvolumeclaims";
const PVS: &str = "/api/v1/persistentvolumes";

fn claim(name: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
}

fn class(name: &str, default: bool) -> Value {
    let mut c = json!({"metadata": {"name": name}, "provisioner": "example.com/x"});
    if default {
        c["metadata"]["annotations"] =
            json!({"storageclass.kubernetes.io/is-default-class": "true"});
    }
    c
}

/// DefaultStorageClass: a claim without `storageClassName` gets the default class; an explicit `""`
/// stays `""`; with no default class the field stays absent; with two, the newest (then by name) wins.
#[tokio::test]
async fn claims_without_a_class_get_the_default_one() {
    let s = server().await;
    let (_, v) = raw(&s, "POST", PVCS, Some(claim("early"))).await;
    assert!(v["spec"].get("storageClassName").is_none(), "{v}");
    raw(&s, "POST", SCS, Some(class("slow", false))).await;
    raw(&s, "POST", SCS, Some(class("fast", true))).await;
    raw(&s, "POST", SCS, Some(class("zfast", true))).await;
    let (_, v) = raw(&s, "POST", PVCS, Some(claim("plain"))).await;
    assert_eq!(
        v["spec"]["storageClassName"], "fast",
        "same second: by name"
    );
    let mut none = claim("none");
    none["spec"]["storageClassName"] = json!("");
    let (_, v) = raw(&s, "POST", PVCS, Some(none)).await;
    assert_eq!(v["spec"]["storageClassName"], "");
    let mut named = claim("named");
    named["spec"]["storageClassName"] = json!("slow");
    let (_, v) = raw(&s, "POST", PVCS, Some(named)).await;
    assert_eq!(v["spec"]["storageClassName"], "slow");
}

/// StorageObjectInUseProtection and the pvc-protection controller: a deleted claim that a scheduled pod
/// names stays (Terminating, with its finalizer) until the pod object is gone, whatever the pod's phase;
/// an unscheduled pod does not hold it.
#[tokio::test]
async fn a_claim_in_use_stays_terminating_until_its_pod_is_gone() {
    let s = server().await;
    let (_, v) = raw(&s, "POST", PVCS, Some(claim("data"))).await;
    assert_eq!(
        v["metadata"]["finalizers"],
        json!(["kubernetes.io/pvc-protection"])
    );
    let mut user = pod("user");
    user["spec"]["nodeName"] = json!("node-a");
    user["spec"]["volumes"] =
        json!([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]);
    assert_eq!(raw(&s, "POST", PODS, Some(user)).await.0, 201);
    let mut pending = pod("pending");
    pending["spec"]["volumes"] =
        json!([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]);
    raw(&s, "POST", PODS, Some(pending)).await;
    // The pod finished: it still counts until it is deleted.
    let (code, _) = raw(
        &s,
        "PATCH",
        &format!("{PODS}/user/status"),
        Some(json!({"status": {"phase": "Succeeded"}})),
    )
    .await;
    assert_eq!(code, 200);
    let (code, v) = raw(&s, "DELETE", &format!("{PVCS}/data"), None).await;
    assert_eq!(code, 200);
    assert!(v["metadata"]["deletionTimestamp"].is_string(), "{v}");
    assert_eq!(
        v["metadata"]["finalizers"],
        json!(["kubernetes.io/pvc-protection"])
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (code, v) = raw(&s, "GET", &format!("{PVCS}/data"), None).await;
    assert_eq!(code, 200, "held by the scheduled pod");
    assert_eq!(v["status"]["phase"], "Pending");
    raw(&s, "DELETE", &format!("{PODS}/user"), None).await;
    eventually("the claim to go", || async {
        raw(&s, "GET", &format!("{PVCS}/data"), None).await.0 == 404
    })
    .await;
    // Removing the finalizer by hand from a live claim: the controller puts it back.
    raw(&s, "POST", PVCS, Some(claim("again"))).await;
    raw(
        &s,
        "PATCH",
        &format!("{PVCS}/again"),
        Some(json!({"metadata": {"finalizers": null}})),
    )
    .await;
    eventually("the finalizer back", || async {
        raw(&s, "GET", &format!("{PVCS}/again"), None).await.1["metadata"]["finalizers"]
            == json!(["kubernetes.io/pvc-protection"])
    })
    .await;
}

/// pv-protection: a deleted volume stays while it is Bound.
#[tokio::test]
async fn a_deleted_volume_waits_until_it_is_no_longer_bound() {
    let s = server().await;
    let pv = json!({"metadata": {"name": "vol"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                    "hostPath": {"path": "/tmp/vol"}}});
    let (code, v) = raw(&s, "POST", PVS, Some(pv)).await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(
        v["metadata"]["finalizers"],
        json!(["kubernetes.io/pv-protection"])
    );
    raw(
        &s,
        "PATCH",
        &format!("{PVS}/vol/status"),
        Some(json!({"status": {"phase": "Bound"}})),
    )
    .await;
    let (code, v) = raw(&s, "DELETE", &format!("{PVS}/vol"), None).await;
    assert_eq!(code, 200);
    assert!(v["metadata"]["deletionTimestamp"].is_string());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(raw(&s, "GET", &format!("{PVS}/vol"), None).await.0, 200);
    raw(
        &s,
        "PATCH",
        &format!("{PVS}/vol/status"),
        Some(json!({"status": {"phase": "Released"}})),
    )
    .await;
    eventually("the volume to go", || async {
        raw(&s, "GET", &format!("{PVS}/vol"), None).await.0 == 404
    })
    .await;
}
