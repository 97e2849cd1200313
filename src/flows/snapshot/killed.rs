//! The snapshots of a snapshot run that was killed: the run that takes its lock over keeps the
//! ones it confirmed were cut while the application was frozen and deletes the other frozen
//! ones (cut, if at all, after the held sessions and the freeze went with the killed process).
//! Snapshots of runs without hooks were never frozen and are left alone.

use kube::api::{Api, DeleteParams, ListParams};

use crate::kube::lease::Held;
use crate::model::labels::RUN;
use crate::model::snapshots::VolumeSnapshot;

/// Deletes what the run `held` took the lock over from left unconfirmed; returns their names.
/// What cannot be listed or deleted is said (error level): such a snapshot may not be consistent.
pub(crate) async fn sweep(client: &kube::Client, ns: &str, held: &Held) -> Vec<String> {
    let Some(stale) = held.taken_over().filter(|s| !s.run.is_empty()) else {
        return Vec::new();
    };
    let api: Api<VolumeSnapshot> = Api::namespaced(client.clone(), ns);
    let list = match api
        .list(&ListParams::default().labels(&format!("{RUN}={}", stale.run)))
        .await
    {
        Ok(l) => l.items,
        Err(e) => {
            tracing::error!(run = %stale.run, error = %e, "could not list the snapshots of the killed run: those not cut while its application was frozen may remain; delete them by hand");
            return Vec::new();
        }
    };
    let mut deleted = Vec::new();
    for vs in list {
        if !stale.distrusts(&vs) {
            continue;
        }
        let name = vs.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::warn!(snapshot = %name, run = %stale.run, "deleting a snapshot of a killed run that never confirmed it was cut while the application was frozen");
                deleted.push(name);
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::error!(snapshot = %name, run = %stale.run, error = %e, "could NOT delete a snapshot of a killed run that may not be consistent: delete it by hand");
            }
        }
    }
    deleted
}
