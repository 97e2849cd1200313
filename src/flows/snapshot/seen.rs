//! What a snapshot run sees of its own VolumeSnapshots: one watch of the run's label, opened
//! before the pre-hooks, so the waits for the cut and for readiness cost no request per
//! snapshot and end as soon as the last snapshot is cut (the freeze window does not grow with
//! the number of PVCs). The watcher lists again and re-watches by itself after an error or an
//! expired resource version; while it cannot see, the error is kept and said, never guessed.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;

use futures::{Stream, StreamExt};
use kube::api::{Api, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio_util::sync::CancellationToken;

use crate::model::snapshots::VolumeSnapshot;

type Events = Pin<Box<dyn Stream<Item = Result<Event<VolumeSnapshot>, watcher::Error>> + Send>>;

/// The run's snapshots as last seen, by name (plain data; [`Watch`] feeds it).
#[derive(Debug, Default)]
pub struct Seen {
    /// The snapshots of the run that exist, as last seen.
    pub objects: BTreeMap<String, VolumeSnapshot>,
    /// Snapshots deleted while the run watched (by the run itself or by someone else).
    pub deleted: BTreeSet<String>,
    /// Why the run cannot see its snapshots now (cleared by the next event it sees).
    pub blind: Option<String>,
    /// When the run first saw each snapshot cut (`status.creationTime` set): the cut was made
    /// by then.
    pub cut_seen: BTreeMap<String, std::time::Instant>,
    /// The objects of a list in progress (a watcher's relist), swapped in when it is whole.
    listing: Option<BTreeMap<String, VolumeSnapshot>>,
}

impl Seen {
    /// Takes one watcher event in.
    pub fn apply(&mut self, event: Event<VolumeSnapshot>) {
        self.blind = None;
        let name = |vs: &VolumeSnapshot| vs.metadata.name.clone().unwrap_or_default();
        match event {
            Event::Apply(vs) => {
                self.deleted.remove(&name(&vs));
                self.note_cut(&vs);
                self.objects.insert(name(&vs), vs);
            }
            Event::Delete(vs) => {
                self.objects.remove(&name(&vs));
                self.deleted.insert(name(&vs));
            }
            Event::Init => self.listing = Some(BTreeMap::new()),
            Event::InitApply(vs) => {
                self.listing
                    .get_or_insert_with(BTreeMap::new)
                    .insert(name(&vs), vs);
            }
            Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                self.replace(listed.into_values());
            }
        }
    }

    /// The whole set as a list shows it now: what was seen before and is not listed was deleted.
    pub fn replace(&mut self, listed: impl IntoIterator<Item = VolumeSnapshot>) {
        let listed: BTreeMap<String, VolumeSnapshot> = listed
            .into_iter()
            .map(|vs| (vs.metadata.name.clone().unwrap_or_default(), vs))
            .collect();
        for gone in self.objects.keys().filter(|n| !listed.contains_key(*n)) {
            self.deleted.insert(gone.clone());
        }
        for (n, vs) in &listed {
            self.deleted.remove(n);
            self.note_cut(vs);
        }
        self.objects = listed;
        self.blind = None;
    }

    fn note_cut(&mut self, vs: &VolumeSnapshot) {
        if crate::model::snapshots::cut_time(Some(vs)).is_some() {
            self.cut_seen
                .entry(vs.metadata.name.clone().unwrap_or_default())
                .or_insert_with(std::time::Instant::now);
        }
    }

    /// Whether snapshot `name` has settled by `test` (a deleted one has: nothing more will come
    /// of it; one that cannot be seen has not).
    pub fn settled(&self, name: &str, test: fn(Option<&VolumeSnapshot>) -> bool) -> bool {
        match self.get(name) {
            Ok(vs) => test(vs),
            Err(_) => self.deleted.contains(name),
        }
    }

    /// Snapshot `name` as last seen, or why it cannot be said: deleted, or not seen because the
    /// watch is failing. `Ok(None)`: not seen yet (just created, the event not in yet).
    pub fn get(&self, name: &str) -> Result<Option<&VolumeSnapshot>, String> {
        if let Some(vs) = self.objects.get(name) {
            return Ok(Some(vs));
        }
        if self.deleted.contains(name) {
            return Err("the VolumeSnapshot was deleted while the run waited for it".into());
        }
        match &self.blind {
            Some(e) => Err(format!("could not watch the VolumeSnapshots ({e})")),
            None => Ok(None),
        }
    }
}

/// The watch behind [`Seen`].
pub struct Watch {
    api: Api<VolumeSnapshot>,
    selector: String,
    events: Events,
    /// What has been seen so far.
    pub seen: Seen,
}

impl Watch {
    /// Starts watching the VolumeSnapshots with label `selector` and waits until the watcher's
    /// first list is whole (so nothing created afterwards can be missed), or `cancel`.
    pub async fn start(
        api: &Api<VolumeSnapshot>,
        selector: &str,
        cancel: &CancellationToken,
    ) -> Watch {
        let config = watcher::Config::default()
            .labels(selector)
            .list_semantic(watcher::ListSemantic::MostRecent);
        let events: Events = Box::pin(watcher::watcher(api.clone(), config).default_backoff());
        let mut w = Watch {
            api: api.clone(),
            selector: selector.to_owned(),
            events,
            seen: Seen::default(),
        };
        // The first list: its error (an unreachable API server, a missing permission) is kept
        // and the run goes on; the waits below say it if it lasts.
        while let Some(Ok(false)) = w.next(cancel).await {}
        w
    }

    /// The next event, taken in: `Ok(true)` when a whole list has just been taken in,
    /// `Ok(false)` for any other event, `Err` for a failure (kept in `seen.blind`); `None` if
    /// cancelled first or the stream ended.
    async fn next(&mut self, cancel: &CancellationToken) -> Option<Result<bool, ()>> {
        let item = tokio::select! {
            item = self.events.next() => item,
            () = cancel.cancelled() => return None,
        };
        match item {
            Some(Ok(event)) => {
                let whole = matches!(event, Event::InitDone);
                self.seen.apply(event);
                Some(Ok(whole))
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "could not watch the run's VolumeSnapshots");
                self.seen.blind = Some(e.to_string());
                Some(Err(()))
            }
            None => {
                self.seen.blind = Some("the watch of the VolumeSnapshots ended".into());
                None
            }
        }
    }

    /// Takes events in until `done` holds, `deadline` passes or `cancel` is set.
    pub async fn wait_until(
        &mut self,
        deadline: tokio::time::Instant,
        cancel: &CancellationToken,
        done: impl Fn(&Seen) -> bool,
    ) {
        while !done(&self.seen) {
            let stop = tokio::select! {
                step = self.next(cancel) => step.is_none(),
                () = tokio::time::sleep_until(deadline) => true,
            };
            if stop {
                break;
            }
        }
    }

    /// One list of the run's snapshots now (the last look before the application is
    /// released, when the wait ended before every cut was seen).
    pub async fn look(&mut self) {
        match self
            .api
            .list(&ListParams::default().labels(&self.selector))
            .await
        {
            Ok(list) => self.seen.replace(list.items),
            Err(e) => {
                tracing::warn!(error = %e, "could not list the run's VolumeSnapshots");
                self.seen.blind = Some(e.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn vs(name: &str, cut: bool) -> VolumeSnapshot {
        let mut v: VolumeSnapshot = serde_json::from_value(serde_json::json!({
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
            "metadata": {"name": name}, "spec": {"source": {"persistentVolumeClaimName": "p"}}}))
        .unwrap();
        if cut {
            v.status =
                serde_json::from_value(serde_json::json!({"creationTime": "2026-12-02T10:00:00Z"}))
                    .unwrap();
        }
        v.metadata = ObjectMeta {
            name: Some(name.into()),
            ..v.metadata
        };
        v
    }

    #[test]
    fn events_update_deletions_and_blindness() {
        let mut s = Seen::default();
        assert!(
            matches!(s.get("a"), Ok(None)),
            "not seen yet is not an error"
        );
        s.apply(Event::Init);
        s.apply(Event::InitDone);
        s.apply(Event::Apply(vs("a", false)));
        s.apply(Event::Apply(vs("a", true)));
        assert!(s.get("a").unwrap().unwrap().status.is_some());
        s.blind = Some("connection refused".into());
        assert!(s.get("a").is_ok(), "what was seen stays seen");
        assert_eq!(
            s.get("b").unwrap_err(),
            "could not watch the VolumeSnapshots (connection refused)"
        );
        s.apply(Event::Delete(vs("a", true)));
        assert!(s.blind.is_none(), "an event means the watch sees again");
        assert!(s.get("a").unwrap_err().contains("deleted"));
        s.apply(Event::Apply(vs("a", false)));
        assert!(
            s.get("a").unwrap().is_some(),
            "made again under the same name"
        );
    }

    #[test]
    fn the_first_sight_of_each_cut_is_kept_by_events_and_relists() {
        let mut s = Seen::default();
        s.apply(Event::Apply(vs("a", false)));
        assert!(s.cut_seen.is_empty(), "not cut yet");
        s.apply(Event::Apply(vs("a", true)));
        let first = s.cut_seen["a"];
        std::thread::sleep(std::time::Duration::from_millis(2));
        s.apply(Event::Apply(vs("a", true)));
        assert_eq!(s.cut_seen["a"], first, "the first sight stands");
        s.replace([vs("a", true), vs("b", true), vs("c", false)]);
        assert_eq!(s.cut_seen["a"], first);
        assert!(s.cut_seen["b"] > first, "seen cut by the relist");
        assert!(!s.cut_seen.contains_key("c"));
    }

    #[test]
    fn a_relist_replaces_the_set_whole_and_what_it_lacks_was_deleted() {
        let mut s = Seen::default();
        s.apply(Event::Apply(vs("a", true)));
        s.apply(Event::Apply(vs("b", true)));
        s.apply(Event::Init);
        s.apply(Event::InitApply(vs("b", true)));
        assert!(
            s.get("a").unwrap().is_some(),
            "a list in progress changes nothing"
        );
        s.apply(Event::InitApply(vs("c", false)));
        s.apply(Event::InitDone);
        assert!(s.get("a").unwrap_err().contains("deleted"));
        assert!(s.get("b").unwrap().is_some() && s.get("c").unwrap().is_some());
        s.replace(vec![vs("a", true)]);
        assert!(s.get("a").unwrap().is_some());
        assert!(s.get("b").unwrap_err().contains("deleted"));
    }
}
