//! Watch: ADDED/MODIFIED/DELETED/BOOKMARK from a resourceVersion, initial events, selector transitions,
//! timeoutSeconds, the in-stream 410, and kube-rs watcher / await_condition.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, wait::await_condition, watcher};
use serde_json::{Value, json};

use crate::support::*;

async fn watch_lines(s: &kentledge_testcluster::ServerHandle, query: &str) -> Vec<Value> {
    let (code, _, text) = raw_full(
        s,
        "GET",
        &format!("{CMS}?{query}"),
        Some(s.admin_token()),
        "application/json",
        String::new(),
    )
    .await;
    assert_eq!(code, 200);
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn events_from_a_resource_version_with_the_delete_rv_and_a_bookmark() {
    let s = server().await;
    let (_, list) = raw(&s, "GET", CMS, None).await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    raw(&s, "POST", CMS, Some(cm("cm-w"))).await;
    raw(
        &s,
        "PATCH",
        &format!("{CMS}/cm-w"),
        Some(json!({"data": {"k": "v2"}})),
    )
    .await;
    raw(&s, "DELETE", &format!("{CMS}/cm-w"), None).await;
    let events = watch_lines(
        &s,
        &format!("watch=1&resourceVersion={rv}&timeoutSeconds=3&allowWatchBookmarks=true"),
    )
    .await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]);
    let rvs: Vec<u64> = events
        .iter()
        .map(|e| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        rvs[0] < rvs[1] && rvs[1] < rvs[2],
        "DELETED carries the delete's RV: {rvs:?}"
    );
    assert_eq!(
        events[2]["object"]["data"]["k"], "v2",
        "DELETED carries the last state"
    );
    let bm: u64 = events[3]["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(bm >= rvs[2], "the bookmark is at or after the last event");
    assert_eq!(
        events[3]["object"],
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": bm.to_string(), "creationTimestamp": null}})
    );
    let plain = watch_lines(
        &s,
        &format!("watch=1&resourceVersion={rv}&timeoutSeconds=1"),
    )
    .await;
    assert_eq!(plain.len(), 3, "no bookmark unless asked");
}

#[tokio::test]
async fn too_old_resource_version_is_an_error_event_with_410() {
    let s = server_with(kentledge_testcluster::ServerOptions::default().watch_history(3)).await;
    for n in ["a", "b", "c", "d", "e"] {
        raw(&s, "POST", CMS, Some(cm(n))).await;
    }
    let events = watch_lines(&s, "watch=1&resourceVersion=1&timeoutSeconds=5").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "ERROR");
    let st = &events[0]["object"];
    assert_eq!(
        (st["code"].as_i64(), st["reason"].as_str()),
        (Some(410), Some("Expired"))
    );
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version: 1 ("),
        "{st}"
    );
}

#[tokio::test]
async fn resource_version_zero_sends_initial_events_and_selector_transitions() {
    let s = server().await;
    raw(&s, "POST", CMS, Some(cm("one"))).await;
    let mut two = cm("two");
    two["metadata"]["labels"] = json!({"k": "v"});
    raw(&s, "POST", CMS, Some(two)).await;
    let initial = watch_lines(&s, "watch=1&resourceVersion=0&timeoutSeconds=1").await;
    // Every namespace also holds the root-CA publisher's kube-root-ca.crt.
    let mut added: Vec<(&str, &str)> = initial
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    added.sort();
    assert_eq!(
        added,
        [
            ("ADDED", "kube-root-ca.crt"),
            ("ADDED", "one"),
            ("ADDED", "two")
        ]
    );
    let list = watch_lines(&s, "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1").await;
    assert_eq!(
        list.last().unwrap()["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );

    let (_, l) = raw(&s, "GET", CMS, None).await;
    let rv = l["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    raw(
        &s,
        "PATCH",
        &format!("{CMS}/one"),
        Some(json!({"metadata": {"labels": {"k": "v"}}})),
    )
    .await;
    raw(
        &s,
        "PATCH",
        &format!("{CMS}/two"),
        Some(json!({"metadata": {"labels": {"k": null}}})),
    )
    .await;
    let ev = watch_lines(
        &s,
        &format!("watch=1&resourceVersion={rv}&labelSelector=k%3Dv&timeoutSeconds=1"),
    )
    .await;
    assert_eq!(ev[0]["type"], "ADDED", "modified into the selector");
    assert_eq!(ev[1]["type"], "DELETED", "modified out of the selector");
    assert_eq!(
        ev[1]["object"]["metadata"]["labels"],
        json!({"k": "v"}),
        "old content"
    );
}

#[tokio::test]
async fn kube_runtime_watcher_and_await_condition_work() {
    let s = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(admin(&s).await, "ref");
    let mut stream = watcher(cms.clone(), watcher::Config::default().labels("w=1"))
        .applied_objects()
        .boxed();
    let waiter = tokio::spawn(await_condition(
        cms.clone(),
        "late",
        |cm: Option<&ConfigMap>| {
            cm.and_then(|c| c.data.as_ref())
                .is_some_and(|d| d.get("k").map(String::as_str) == Some("done"))
        },
    ));
    let mut c: ConfigMap = serde_json::from_value(cm("late")).unwrap();
    c.metadata.labels = Some([("w".to_string(), "1".to_string())].into());
    cms.create(&PostParams::default(), &c).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(seen.metadata.name.as_deref(), Some("late"));
    raw(
        &s,
        "PATCH",
        &format!("{CMS}/late"),
        Some(json!({"data": {"k": "done"}})),
    )
    .await;
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(got.is_some());
}
