//! `kentledge restore volume --in-place` on the local test cluster: a Deployment of 2 replicas
//! and a StatefulSet mount the PVC; they are stopped (replicas recorded), a pinned safety
//! snapshot is taken, the data is replaced from a snapshot or an archive (files added since are
//! gone) and verified, and the workloads come back at their replicas. SIGTERM in each phase
//! leaves the old or the restored data and the workloads back; SIGKILL in each phase, then
//! `--resume`, the same.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kentledge::model::snapshots::VolumeSnapshot;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use crate::backup::leftovers;
use crate::cluster::TestCluster;
use crate::list::backed_up;
use crate::support::{Run, run};
use crate::tree;

/// The cluster, its config, the snapshot of `data`, and a copy of `data` as it was backed up.
pub struct Fixture {
    pub tc: TestCluster,
    pub cfg: PathBuf,
    pub snap: String,
    pub data: PathBuf,
    pub reference: tempfile::TempDir,
}

/// `data` with the tricky tree, snapshotted and copied to borg and restic; a Deployment `web`
/// (2 replicas) and a StatefulSet `worker` (1 replica) that mount it.
pub fn fixture() -> Fixture {
    let reference = tempfile::tempdir().unwrap();
    let copy = reference.path().join("data");
    let mut dir = None;
    let (tc, spec, snap) = backed_up("shop", |d| {
        tree::build(d);
        let ok = Command::new("cp")
            .args(["-a", "--sparse=always"])
            .arg(d)
            .arg(&copy)
            .status()
            .unwrap();
        assert!(ok.success());
        dir = Some(d.to_owned());
    });
    let cfg = tc.config("shop", &spec);
    let pod = |app: &str| {
        json!({"metadata": {"labels": {"app": app}}, "spec": {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}})
    };
    let _: Deployment = tc.create(json!({"metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": pod("web")}}));
    let _: StatefulSet = tc.create(json!({"metadata": {"name": "worker"},
        "spec": {"replicas": 1, "serviceName": "worker", "selector": {"matchLabels": {"app": "worker"}}, "template": pod("worker")}}));
    let f = Fixture {
        tc,
        cfg,
        snap,
        data: dir.unwrap(),
        reference,
    };
    f.wait_ready();
    f
}

impl Fixture {
    pub fn reference(&self) -> PathBuf {
        self.reference.path().join("data")
    }

    /// Replicas of `web` and `worker`, and whether both are ready at them.
    pub fn replicas(&self) -> (i32, i32, bool) {
        let d = self
            .tc
            .block_on(
                Api::<Deployment>::namespaced(self.tc.client(), &self.tc.namespace).get("web"),
            )
            .unwrap();
        let s = self
            .tc
            .block_on(
                Api::<StatefulSet>::namespaced(self.tc.client(), &self.tc.namespace).get("worker"),
            )
            .unwrap();
        let dr = d.spec.unwrap().replicas.unwrap_or(1);
        let sr = s.spec.unwrap().replicas.unwrap_or(1);
        let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0) == dr
            && s.status.and_then(|s| s.ready_replicas).unwrap_or(0) == sr;
        (dr, sr, ready)
    }

    pub fn wait_ready(&self) {
        self.tc.wait(30, "web and worker to be ready", || {
            (self.replicas() == (2, 1, true)).then_some(())
        });
    }

    /// Changes the data after the backup: a new file, a changed one.
    pub fn change(&self) {
        std::fs::write(self.data.join("added-after.txt"), "new\n").unwrap();
        std::fs::write(self.data.join("top.txt"), "changed\n").unwrap();
    }

    /// The PVC's in-progress mark's phase, if any.
    pub fn phase(&self) -> Option<String> {
        let pvc = self
            .tc
            .block_on(
                Api::<PersistentVolumeClaim>::namespaced(self.tc.client(), &self.tc.namespace)
                    .get("data"),
            )
            .ok()?;
        let v = pvc
            .metadata
            .annotations?
            .get("kentledge.io/restore-in-progress")?
            .clone();
        let m: Value = serde_json::from_str(&v).ok()?;
        m["phase"].as_str().map(String::from)
    }

    /// Safety snapshots (name → pinned).
    pub fn safety_snapshots(&self) -> Vec<(String, bool)> {
        let api: Api<VolumeSnapshot> = Api::namespaced(self.tc.client(), &self.tc.namespace);
        self.tc
            .block_on(api.list(&ListParams::default().labels("kentledge.io/safety-snapshot")))
            .unwrap()
            .items
            .into_iter()
            .map(|s| {
                let pinned = s
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kentledge.io/pin"))
                    .is_some_and(|v| v == "true");
                (s.metadata.name.unwrap(), pinned)
            })
            .collect()
    }

    pub fn restore(&self, args: &[&str]) -> Run {
        run(self
            .tc
            .kentledge(&self.cfg)
            .args(["restore", "volume", "data", "--in-place"])
            .args(args))
    }

    /// Starts a restore in the background and sends `signal` once `phase` is recorded.
    pub fn signal_in(&self, cfg: &Path, args: &[&str], phase: &str, signal: &str) -> Run {
        let child = self
            .tc
            .kentledge(cfg)
            .args(["restore", "volume", "data", "--in-place"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.tc.wait(60, &format!("phase {phase}"), || {
            (self.phase().as_deref() == Some(phase)).then_some(())
        });
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn same(a: &Path, b: &Path) -> bool {
    std::panic::catch_unwind(|| tree::assert_same(a, b)).is_ok()
}

impl Fixture {
    /// Whether the data is the changed data as it was before the restore (added-after.txt,
    /// changed top.txt), the restored data (equal to the backup), or neither.
    fn data_state(&self) -> &'static str {
        let added = self.data.join("added-after.txt").exists();
        let top = std::fs::read_to_string(self.data.join("top.txt")).unwrap_or_default();
        if added && top == "changed\n" {
            "old"
        } else if same(&self.reference(), &self.data) {
            "restored"
        } else {
            "half"
        }
    }

    /// A config whose snapshots (the safety snapshot) take a while to be ready, so that a test
    /// can signal while it is taken.
    fn slow_config(&self) -> PathBuf {
        let classes: Api<kube::core::DynamicObject> = Api::all_with(
            self.tc.client(),
            &kentledge_nodeagents::storage::snapshot_class_resource(),
        );
        let c: kube::core::DynamicObject = serde_json::from_value(json!({
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass", "metadata": {"name": "slow"},
            "driver": kentledge_nodeagents::storage::DRIVER, "deletionPolicy": "Delete", "parameters": {"readyDelay": "2s"}})).unwrap();
        let _ = self.tc.block_on(classes.create(&Default::default(), &c));
        let text = std::fs::read_to_string(&self.cfg).unwrap();
        let path = self.cfg.with_file_name("slow.yaml");
        std::fs::write(
            &path,
            text.replace(
                "    retention: {daily: 7}",
                "    retention: {daily: 7}\n    volumeSnapshotClassName: slow",
            ),
        )
        .unwrap();
        path
    }

    /// Makes the leases of a killed run look expired (as a minute later).
    fn age_leases(&self) {
        let api: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(self.tc.client(), &self.tc.namespace);
        for l in self
            .tc
            .block_on(api.list(&ListParams::default()))
            .unwrap()
            .items
        {
            let patch = json!({"spec": {"renewTime": "2026-01-01T00:00:00.000000Z"}});
            self.tc
                .block_on(api.patch(
                    l.metadata.name.as_deref().unwrap(),
                    &Default::default(),
                    &kube::api::Patch::Merge(&patch),
                ))
                .unwrap();
        }
    }
}

/// Phases of an in-place restore as the PVC's mark names them, and the data each one must
/// leave after an interruption: the old data until the data step began (and when it is cut,
/// put back from the safety snapshot), the restored data once it is done.
const PHASES: [(&str, &str); 4] = [
    ("stopping", "old"),
    ("safety-snapshot", "old"),
    ("replacing", "old"),
    ("replaced", "restored"),
];

#[test]
fn sigterm_in_each_phase_leaves_whole_data_and_the_workloads_back() {
    let f = fixture();
    let slow = f.slow_config();
    for (phase, want) in PHASES {
        f.change();
        let cfg = if phase == "safety-snapshot" {
            &slow
        } else {
            &f.cfg
        };
        let r = f.signal_in(cfg, &["--snapshot", &f.snap], phase, "TERM");
        assert_eq!(r.code, 143, "{phase}: {}{}", r.stdout, r.stderr);
        assert_eq!(f.data_state(), want, "{phase}: {}", r.stdout);
        let (web, worker, _) = f.replicas();
        assert_eq!(
            (web, worker),
            (2, 1),
            "{phase}: the workloads are back: {}",
            r.stdout
        );
        f.wait_ready();
        assert_eq!(f.phase(), None, "{phase}: no mark left: {}", r.stdout);
        assert!(
            leftovers(&f.tc).is_empty(),
            "{phase}: {:?}",
            leftovers(&f.tc)
        );
        if want == "restored" {
            std::fs::remove_file(f.data.join("added-after.txt")).ok();
        }
    }
}

#[test]
fn in_place_from_a_snapshot_and_from_an_archive_brings_the_data_and_the_workloads_back() {
    let f = fixture();
    f.change();
    // The dry run names the workloads, their replicas, the safety snapshot and each step.
    let before = f.tc.kentledge_requests().len();
    let r = f.restore(&["--snapshot", &f.snap, "--dry-run"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for want in [
        "Deployment web from 2 to 0",
        "StatefulSet worker from 1 to 0",
        "safety snapshot",
        "rsync",
        "back to 2",
    ] {
        assert!(r.stdout.contains(want), "{want}: {}", r.stdout);
    }
    f.tc.assert_only_reads_since(before, "a dry run writes nothing");

    let r = f.restore(&["--snapshot", &f.snap, "-o", "json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    tree::assert_same(&f.reference(), &f.data);
    assert!(
        !f.data.join("added-after.txt").exists(),
        "files added after the snapshot are gone"
    );
    assert_eq!(
        f.replicas(),
        (2, 1, true),
        "the workloads are back and ready"
    );
    assert_eq!(f.phase(), None, "no mark left");
    let safety = f.safety_snapshots();
    assert_eq!(safety.len(), 1, "{safety:?}");
    assert!(safety[0].1, "the safety snapshot is pinned");
    assert_eq!(v["safety_snapshot"], safety[0].0.as_str());
    // The safety snapshot holds the data as it was, and can itself be restored.
    let r = run(f.tc.kentledge(&f.cfg).args([
        "restore",
        "volume",
        "data",
        "--snapshot",
        &safety[0].0,
        "--to",
        "before-restore",
    ]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let before = f.tc.volume_dir("before-restore");
    assert_eq!(
        std::fs::read_to_string(before.join("added-after.txt")).unwrap(),
        "new\n"
    );

    // From the borg archive, after another change.
    f.change();
    let r = f.restore(&["--repository", "borg-local"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("verified"), "{}", r.stdout);
    tree::assert_same(&f.reference(), &f.data);
    f.wait_ready();
    assert!(leftovers(&f.tc).is_empty(), "{:?}", leftovers(&f.tc));
}

#[test]
fn sigkill_in_each_phase_then_resume_leaves_whole_data_and_the_workloads_back() {
    let f = fixture();
    let slow = f.slow_config();
    for (phase, want) in PHASES {
        f.change();
        let cfg = if phase == "safety-snapshot" {
            &slow
        } else {
            &f.cfg
        };
        let r = f.signal_in(cfg, &["--snapshot", &f.snap], phase, "KILL");
        assert_eq!(r.code, -1, "{phase}: killed: {}{}", r.stdout, r.stderr);
        assert!(
            f.phase().is_some(),
            "{phase}: the mark says a restore did not finish"
        );
        f.age_leases();
        // Another in-place restore refuses until the killed one is resumed.
        let r = f.restore(&["--snapshot", &f.snap]);
        assert_eq!(r.code, 1, "{phase}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("--resume"), "{phase}: {}", r.stderr);
        // Every command of the config says so, not only restores.
        let r = run(f.tc.kentledge(&f.cfg).args(["prune", "--dry-run"]));
        assert!(
            r.stderr.contains("did not finish") && r.stderr.contains("--in-place --resume"),
            "{phase}: {}",
            r.stderr
        );
        if phase == "replacing" {
            // Half-written data is not a restore point: a snapshot run leaves the PVC out.
            let r = run(f.tc.kentledge(&f.cfg).args(["snapshot", "--dry-run"]));
            assert!(
                r.stderr.contains("may be half written"),
                "{phase}: {}{}",
                r.stdout,
                r.stderr
            );
        }
        let r = f.restore(&["--resume"]);
        assert_eq!(r.code, 0, "{phase}: {}{}", r.stdout, r.stderr);
        assert_eq!(f.data_state(), want, "{phase}: {}", r.stdout);
        let (web, worker, _) = f.replicas();
        assert_eq!(
            (web, worker),
            (2, 1),
            "{phase}: the workloads are back: {}",
            r.stdout
        );
        f.wait_ready();
        assert_eq!(
            f.phase(),
            None,
            "{phase}: no mark left: {}{}",
            r.stdout,
            r.stderr
        );
        assert!(
            leftovers(&f.tc).is_empty(),
            "{phase}: {:?}",
            leftovers(&f.tc)
        );
        if want == "restored" {
            std::fs::remove_file(f.data.join("added-after.txt")).ok();
        }
    }
    let r = f.restore(&["--resume"]);
    assert_eq!(r.code, 1, "nothing to resume: {}", r.stderr);
}

#[test]
fn autoscaled_workloads_and_bare_pods_are_refused_unless_accepted_and_jobs_are_suspended() {
    let f = fixture();
    // A Job running a pod that mounts the PVC, and a CronJob whose Jobs would.
    let job_pod = json!({"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}});
    let _: k8s_openapi::api::batch::v1::Job =
        f.tc.create(json!({"metadata": {"name": "reindex"}, "spec": {"template": job_pod}}));
    let _: k8s_openapi::api::batch::v1::CronJob =
        f.tc.create(json!({"metadata": {"name": "nightly"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": job_pod}}}}));
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(f.tc.client(), &f.tc.namespace);
    let job_pods = || -> Vec<String> {
        f.tc.block_on(pods.list(&ListParams::default().labels("job-name=reindex")))
            .unwrap()
            .items
            .into_iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            })
            .filter_map(|p| p.metadata.name)
            .collect()
    };
    f.tc.wait(30, "the Job's pod to run", || job_pods().first().cloned());
    let first_job_pod = job_pods()[0].clone();
    let _: k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler = f.tc.create(json!({
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 4},
    }));
    f.tc.sleeper("debug", &[], &[], &["data"]);
    let r = f.restore(&["--snapshot", &f.snap]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    for want in [
        "HorizontalPodAutoscaler web",
        "--accept autoscaled",
        "Pod debug",
        "--accept bare-pods",
        "nothing was changed",
    ] {
        assert!(r.stderr.contains(want), "{want}: {}", r.stderr);
    }
    assert_eq!(f.replicas(), (2, 1, true), "nothing was stopped");
    f.change();
    let r = f.restore(&[
        "--snapshot",
        &f.snap,
        "--accept",
        "autoscaled",
        "--accept",
        "bare-pods",
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let debug = v["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "debug")
        .unwrap()
        .clone();
    assert!(
        debug["result"].as_str().unwrap().contains("recreate it"),
        "{debug}"
    );
    assert!(
        f.tc.block_on(pods.get_opt("debug")).unwrap().is_none(),
        "the bare pod was deleted"
    );
    let names: Vec<&str> = v["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"reindex") && names.contains(&"nightly"),
        "{names:?}"
    );
    // The Job was suspended (its pod ended) and resumed (a new pod runs); both are as they were.
    let now = f.tc.wait(30, "the Job's new pod to run", || {
        job_pods().first().cloned()
    });
    assert_ne!(now, first_job_pod, "suspending the Job ended its pod");
    let jobs: Api<k8s_openapi::api::batch::v1::Job> =
        Api::namespaced(f.tc.client(), &f.tc.namespace);
    let job = f.tc.block_on(jobs.get("reindex")).unwrap();
    assert_eq!(job.spec.unwrap().suspend, Some(false));
    assert!(
        !job.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("kentledge.io/restore-stopped")
    );
    let cjs: Api<k8s_openapi::api::batch::v1::CronJob> =
        Api::namespaced(f.tc.client(), &f.tc.namespace);
    let cj = f.tc.block_on(cjs.get("nightly")).unwrap();
    assert_eq!(
        cj.spec.unwrap().suspend,
        Some(false),
        "the CronJob runs on schedule again"
    );
    assert!(
        !cj.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("kentledge.io/restore-stopped")
    );
    tree::assert_same(&f.reference(), &f.data);
    f.wait_ready();
}
