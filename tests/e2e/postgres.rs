//! A real PostgreSQL 15 server in a pod of the local test cluster (run as the `postgres` user,
//! password authentication on its socket), and a test helper that runs SQL in it.

use k8s_openapi::api::core::v1::{Pod, Secret};
use kentledge::kube::exec::{self, Exit};
use kube::api::Api;
use serde_json::json;

use crate::cluster::TestCluster;

/// The postgres superuser's password (Secret `pg-pass`, the pod's `POSTGRES_PASSWORD`).
pub const PG_PASSWORD: &str = "Pg-Super-5e3a9d";

const BIN: &str = "/usr/lib/postgresql/15/bin";

fn id(flag: &str) -> u32 {
    let o = std::process::Command::new("id")
        .args([flag, "postgres"])
        .output()
        .expect("id");
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .expect("a postgres user (make install-test-deps)")
}

/// A PostgreSQL pod `name` with its data on PVC `claim`, made by an init container (initdb).
pub fn running_postgres(tc: &TestCluster, name: &str, claim: &str) {
    tc.pvc_with_files(claim, &[], &[]);
    let _: Secret = tc.create(json!({
        "metadata": {"name": "pg-pass"}, "stringData": {"password": PG_PASSWORD}}));
    let path = format!("{BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let data = "/var/lib/postgresql/data/pgdata";
    let _: Pod = tc.create(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"terminationGracePeriodSeconds": 10,
            "securityContext": {"runAsUser": id("-u"), "runAsGroup": id("-g"), "fsGroup": id("-g")},
            "initContainers": [{"name": "initdb", "image": "postgres:15",
                "command": ["sh", "-c", format!("[ -s {data}/PG_VERSION ] || initdb --no-sync -D {data} -U postgres --auth-local=scram-sha-256 --auth-host=scram-sha-256 --pwfile=/pw/password >/dev/null")],
                "env": [{"name": "PATH", "value": path}],
                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}, {"name": "pw", "mountPath": "/pw"}]}],
            "containers": [{"name": "postgres", "image": "postgres:15",
                "command": ["postgres", "-D", data, "-c", "listen_addresses=", "-c", "unix_socket_directories=/var/run/postgresql", "-c", "fsync=off"],
                "env": [{"name": "PATH", "value": path},
                        {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "pg-pass", "key": "password"}}}],
                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}, {"name": "run", "mountPath": "/var/run/postgresql"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}},
                        {"name": "pw", "secret": {"secretName": "pg-pass"}},
                        {"name": "run", "emptyDir": {}}]},
    }));
    tc.wait(60, &format!("{name} to answer"), || {
        let o = run_psql(tc, name, "postgres", "SELECT 1");
        (o.0 == Exit::Code(0)).then_some(())
    });
}

fn run_psql(tc: &TestCluster, pod: &str, db: &str, statement: &str) -> (Exit, String, String) {
    let pods: Api<Pod> = Api::namespaced(tc.client(), &tc.namespace);
    // The password comes from the container's environment, never the exec URL.
    let argv: Vec<String> = [
        "sh",
        "-c",
        "PGPASSWORD=\"$POSTGRES_PASSWORD\" exec psql -U postgres -X -At -v ON_ERROR_STOP=1 -d \"$1\" -c \"$2\"",
        "sh",
        db,
        statement,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let o = tc.block_on(exec::run(
        &pods,
        pod,
        "postgres",
        &argv,
        std::time::Duration::from_secs(30),
    ));
    (o.exit, o.stdout, o.stderr)
}

/// Runs `statement` in database `db` as postgres; its output (tuples only, unaligned).
pub fn psql(tc: &TestCluster, pod: &str, db: &str, statement: &str) -> String {
    let (exit, out, err) = run_psql(tc, pod, db, statement);
    assert_eq!(exit, Exit::Code(0), "{statement}: {err}");
    out.trim().to_owned()
}
