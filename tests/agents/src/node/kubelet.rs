//! The kubelet's pod loop: watch the pods bound to this node (`spec.nodeName=<node>`) and keep one
//! worker per pod uid, feeding it every new version of its pod and telling it when the pod is gone.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Ctx, pod};

/// Run until aborted (aborting also aborts every pod worker).
pub async fn run(ctx: Arc<Ctx>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.opts.name));
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    let mut workers: HashMap<String, watch::Sender<Option<Pod>>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut seen_in_init: HashSet<String> = HashSet::new();
    while let Some(ev) = stream.next().await {
        while tasks.try_join_next().is_some() {}
        match ev {
            Ok(Event::Init) => seen_in_init.clear(),
            Ok(Event::InitApply(p)) => {
                if let Some(uid) = p.metadata.uid.clone() {
                    seen_in_init.insert(uid);
                }
                apply(&ctx, &mut workers, &mut tasks, p);
            }
            Ok(Event::InitDone) => {
                let gone: Vec<String> = workers
                    .keys()
                    .filter(|u| !seen_in_init.contains(*u))
                    .cloned()
                    .collect();
                for uid in gone {
                    if let Some(tx) = workers.remove(&uid) {
                        tx.send_replace(None);
                    }
                }
            }
            Ok(Event::Apply(p)) => apply(&ctx, &mut workers, &mut tasks, p),
            Ok(Event::Delete(p)) => {
                if let Some(tx) = p.metadata.uid.as_ref().and_then(|u| workers.remove(u)) {
                    tx.send_replace(None);
                }
            }
            Err(e) => tracing::warn!("kubelet {}: watching pods: {e}", ctx.opts.name),
        }
    }
}

fn apply(
    ctx: &Arc<Ctx>,
    workers: &mut HashMap<String, watch::Sender<Option<Pod>>>,
    tasks: &mut JoinSet<()>,
    p: Pod,
) {
    let Some(uid) = p.metadata.uid.clone() else {
        return;
    };
    if p.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(ctx.opts.name.as_str()) {
        return;
    }
    if let Some(tx) = workers.get(&uid) {
        tx.send_replace(Some(p));
        return;
    }
    let (tx, rx) = watch::channel(Some(p.clone()));
    workers.insert(uid, tx);
    tasks.spawn(pod::run(ctx.clone(), p, rx));
}
