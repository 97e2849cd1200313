//! A held-session hook on a real MariaDB running in a pod: `FLUSH TABLES WITH READ LOCK` is held
//! in one exec session across the snapshot. A write issued during the freeze waits and succeeds
//! after it; the restored snapshot does not contain it (the cut was consistent).

use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kentledge::kube::exec::{self, Exit};
use kube::api::Api;
use serde_json::json;

use crate::cluster::TestCluster;

/// The server's socket where clients look for it by default (a directory of the pod's own).
pub const SOCKET: &str = "/run/mysqld/mysqld.sock";

pub fn mariadb_pod(tc: &TestCluster, name: &str, claim: &str) {
    let _: Pod = tc.create(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"terminationGracePeriodSeconds": 10, "containers": [{"name": "mariadb", "image": "mariadb:10.11",
            "command": ["/usr/sbin/mariadbd", "--no-defaults", "--user=root", "--datadir=/var/lib/mysql",
                        format!("--socket={SOCKET}"), "--skip-networking", "--pid-file=/var/lib/mysql/mysqld.pid"],
            "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}, {"name": "run", "mountPath": "/run/mysqld"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}, {"name": "run", "emptyDir": {}}]},
    }));
    let pods: Api<Pod> = Api::namespaced(tc.client(), &tc.namespace);
    tc.wait(30, &format!("{name} to answer"), || {
        let o = tc.block_on(exec::run(
            &pods,
            name,
            "mariadb",
            &argv(&["mariadb-admin", "--socket", SOCKET, "-uroot", "ping"]),
            Duration::from_secs(5),
        ));
        o.exit.ok().then_some(())
    });
}

/// A fresh MariaDB data directory on PVC `claim` and a server pod `name` using it.
pub fn running_mariadb(tc: &TestCluster, name: &str, claim: &str) {
    let datadir = tc.pvc_with_files(claim, &[], &[]);
    let init = std::process::Command::new("mariadb-install-db")
        .args([
            "--no-defaults",
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ])
        .arg(format!("--datadir={}", datadir.display()))
        .output()
        .expect("mariadb-install-db (make install-test-deps)");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    mariadb_pod(tc, name, claim);
}

pub fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

pub fn sql(tc: &TestCluster, pod: &str, statement: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(tc.client(), &tc.namespace);
    let o = tc.block_on(exec::run(
        &pods,
        pod,
        "mariadb",
        &argv(&[
            "mariadb",
            "--socket",
            SOCKET,
            "-uroot",
            "--batch",
            "--skip-column-names",
            "-e",
            statement,
        ]),
        Duration::from_secs(30),
    ));
    assert_eq!(o.exit, Exit::Code(0), "{statement}: {}", o.stderr);
    o.stdout.trim().to_owned()
}

#[test]
fn a_held_read_lock_makes_the_snapshot_consistent_and_blocks_writes_only_while_frozen() {
    let tc = TestCluster::start("mariadb");
    running_mariadb(&tc, "db-0", "mysql");
    sql(
        &tc,
        "db-0",
        "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO shop.orders VALUES (1);",
    );

    // The cut takes 3 s, so the freeze window is long enough to write into.
    let classes: Api<kube::core::DynamicObject> = Api::all_with(
        tc.client(),
        &kentledge_nodeagents::storage::snapshot_class_resource(),
    );
    let slow: kube::core::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass", "metadata": {"name": "slow"},
        "driver": kentledge_nodeagents::storage::DRIVER, "deletionPolicy": "Delete", "parameters": {"cutDelay": "3s"}})).unwrap();
    tc.block_on(classes.create(&Default::default(), &slow))
        .unwrap();
    let cfg = tc.config("shop", &format!(
        "  snapshots:\n    volumeSnapshotClassName: slow\n    targets: [{{pvc: mysql}}]\n    hooks:\n      - name: read-lock\n        pod: {{selector: {{matchLabels: {{app: db-0}}}}}}\n        session:\n          command: [mariadb, --socket, {SOCKET}, -uroot, --batch, --unbuffered, --skip-column-names]\n          pre: \"FLUSH TABLES WITH READ LOCK; SELECT 'kentledge-frozen';\"\n          readyMarker: kentledge-frozen\n          post: \"UNLOCK TABLES;\"\n        timeout: 30s\n"
    ));
    let mut run = tc
        .kentledge(&cfg)
        .arg("snapshot")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Snapshots are created after the pre-hooks: once one exists, the database is frozen.
    let snaps: Api<kentledge::model::snapshots::VolumeSnapshot> =
        Api::namespaced(tc.client(), &tc.namespace);
    let created = tc.wait(30, "the snapshot to be created or kentledge to end", || {
        if run.try_wait().ok().flatten().is_some() {
            return Some(false);
        }
        (!tc.block_on(snaps.list(&Default::default()))
            .ok()?
            .items
            .is_empty())
        .then_some(true)
    });
    if !created {
        let out = run.wait_with_output().unwrap();
        panic!(
            "kentledge ended before creating the snapshot:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // This write waits for the lock and lands after the thaw.
    sql(&tc, "db-0", "INSERT INTO shop.orders VALUES (2);");
    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("hook read-lock post in db-0/mariadb: exit code 0"),
        "{stdout}"
    );
    assert_eq!(
        sql(&tc, "db-0", "SELECT COUNT(*) FROM shop.orders"),
        "2",
        "the blocked write succeeded after the freeze"
    );

    // Restore the snapshot into a new PVC, start a second server on it: only the first row.
    let name = tc.block_on(snaps.list(&Default::default())).unwrap().items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    let _: PersistentVolumeClaim = tc.create(json!({
        "metadata": {"name": "restored"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "dataSource": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": name}},
    }));
    mariadb_pod(&tc, "db-restored", "restored");
    assert_eq!(
        sql(
            &tc,
            "db-restored",
            "SELECT GROUP_CONCAT(id) FROM shop.orders"
        ),
        "1",
        "the snapshot was cut while writes were blocked"
    );
}
