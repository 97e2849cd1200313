use super::*;
use serde_json::json;

fn config(databases: &str) -> Config {
    crate::config::parse(
        "t.yaml",
        &format!("apiVersion: kentledge.io/v1alpha1\nkind: BackupConfig\nmetadata: {{name: shop, namespace: shop}}\nspec:\n  repositories:\n    - name: b\n      borg:\n        pvc: {{claimName: repos}}\n        encryption: none\n    - name: r\n      restic:\n        repository: rest:http://127.0.0.1:8000/r\n        password: {{secret: s, key: k}}\n  offsite:\n    databases:\n{databases}"),
    )
    .unwrap()
}

fn pod(name: &str, app: &str, phase: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "sidecar"}, {"name": "mariadb"}]},
        "status": {"phase": phase},
    }))
    .unwrap()
}

fn plan_of(c: &Config, pods: &[Pod], targets: &[String]) -> (Vec<DumpJob>, Vec<SkippedDatabase>) {
    let ctx = Context {
        namespace: "shop",
        config: "shop",
        run_id: "20261201t100000z-ab12",
        owner: None,
    };
    plan(&Inputs {
        config: c,
        ctx: &ctx,
        pods,
        targets,
        repositories: &[],
        first_index: 2,
    })
}

#[test]
fn one_mover_per_server_and_repository_in_the_first_running_pod() {
    let c = config(
        "      - name: maria\n        engine: mariadb\n        pod: {selector: {matchLabels: {app: db}}}\n        container: mariadb\n        credentials: {user: backup, passwordSecret: {secret: db, key: password}}\n        repositories: [b, r]\n",
    );
    let pods = [
        pod("db-1", "db", "Running"),
        pod("db-0", "db", "Pending"),
        pod("db-2", "db", "Running"),
    ];
    let (jobs, skipped) = plan_of(&c, &pods, &[]);
    assert!(skipped.is_empty());
    assert_eq!(jobs.len(), 2);
    assert_eq!(
        jobs.iter()
            .map(|j| (
                j.index,
                j.pod.as_str(),
                j.container.as_str(),
                j.repository.as_str()
            ))
            .collect::<Vec<_>>(),
        [(2, "db-1", "mariadb", "b"), (3, "db-1", "mariadb", "r")]
    );
    let Action::Databases(job) = &jobs[0].job.action else {
        panic!("a databases job")
    };
    assert_eq!(job.client.user, Some(Credential::Literal("backup".into())));
    assert_eq!(job.client.password, Some(Credential::Stdin));
    assert_eq!(job.stdin_lines, [paths::DB_PASSWORD.to_owned()]);
    // The mover has a token of the dumper account and the password as a file, never a value.
    let spec = serde_json::to_value(&jobs[0].mover).unwrap()["spec"].clone();
    assert_eq!(spec["serviceAccountName"], "kentledge-dumper");
    assert_eq!(spec["automountServiceAccountToken"], true);
    let sources = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "secrets")
        .unwrap()["projected"]["sources"]
        .clone();
    assert!(
        sources.as_array().unwrap().iter().any(
            |s| s["secret"]["name"] == "db" && s["secret"]["items"][0]["path"] == "db-password"
        ),
        "{sources}"
    );
}

#[test]
fn a_server_without_a_running_pod_is_skipped_with_its_reason() {
    let c = config(
        "      - name: maria\n        engine: mariadb\n        pod: {name: db-0}\n        repositories: [b]\n      - name: pg\n        engine: postgresql\n        pod: {selector: {matchLabels: {app: pg}}}\n        container: postgres\n        repositories: [b]\n",
    );
    let pods = [pod("db-0", "db", "Running"), pod("pg-0", "pg", "Running")];
    let (jobs, skipped) = plan_of(&c, &pods[..0], &[]);
    assert!(jobs.is_empty());
    assert_eq!(
        skipped,
        [
            SkippedDatabase {
                name: "maria".into(),
                reason: "pod db-0 is not running (or does not exist)".into()
            },
            SkippedDatabase {
                name: "pg".into(),
                reason: "no running pod matches its pod selector".into()
            }
        ]
    );
    // A container the pod does not have.
    let (jobs, skipped) = plan_of(&c, &pods, &[]);
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].container, "sidecar",
        "the first container by default"
    );
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0].reason.contains("no container \"postgres\""),
        "{skipped:?}"
    );
    // --target picks entries by name.
    let (jobs, skipped) = plan_of(&c, &pods, &["maria".to_owned()]);
    assert_eq!((jobs.len(), skipped.len()), (1, 0));
}

#[test]
fn credentials_from_the_environment_stay_names() {
    let creds = DatabaseCredentials {
        user_from_env: Some("POSTGRES_USER".into()),
        password_from_env: Some("POSTGRES_PASSWORD".into()),
        ..DatabaseCredentials::default()
    };
    let (c, files) = client(DatabaseEngine::Postgresql, &creds);
    assert!(files.is_empty());
    assert_eq!(c.user, Some(Credential::Env("POSTGRES_USER".into())));
    assert_eq!(
        c.password,
        Some(Credential::Env("POSTGRES_PASSWORD".into()))
    );
}
