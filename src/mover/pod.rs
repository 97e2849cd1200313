//! Mover pods and clone PVCs as plain Kubernetes objects, built from the config and a job: names,
//! labels, the read-only clone mount, secrets as 0400 files or `secretKeyRef` env (never values),
//! the engine cache, and the config's security context, resources, placement and deadline.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::{Value, json};

use super::job::{Job, paths};
use crate::config::{
    BucketBackup, CacheVolume, Mover, Place, PvcPath, Repository, RepositoryKind, SecretKeyRef,
};
use crate::model::labels::{CONFIG, MANAGED_BY, MANAGER, PVC, RUN, short_hash};

/// The label that says what a kentledge-made object is for (`mover`, `clone`).
pub const ROLE: &str = "kentledge.io/role";
/// The role of a mover that only reads a repository (list, check): such runs hold no lock, so
/// a sweep deletes these pods only once they have ended.
pub const READER_ROLE: &str = "reader";
/// The label naming the repository a mover works on.
pub const REPOSITORY: &str = "kentledge.io/repository";

/// The name prefix of every mover pod of a namespace; lock holders with it are ours.
pub fn mover_prefix(namespace: &str) -> String {
    format!("kentledge-mover-{}-", &short_hash(namespace)[..6])
}

/// The last part of a run id (`20261122t100000z-3f9a` → `3f9a`).
pub fn run_suffix(run_id: &str) -> &str {
    run_id.rsplit('-').next().unwrap_or(run_id)
}

/// Names of the pod and clone of job `index` of a run.
pub fn names(namespace: &str, run_id: &str, index: usize) -> (String, String) {
    let s = run_suffix(run_id);
    (
        format!("{}{s}-{index}", mover_prefix(namespace)),
        format!("kentledge-clone-{s}-{index}"),
    )
}

/// Who and what a pod or clone belongs to.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// The config's name.
    pub config: &'a str,
    /// The run id.
    pub run_id: &'a str,
    /// The kentledge pod when running in a cluster: clones and movers are garbage-collected with it.
    pub owner: Option<&'a OwnerReference>,
}

impl Context<'_> {
    fn labels(&self, role: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut l: BTreeMap<String, String> = [
            (MANAGED_BY, MANAGER),
            (CONFIG, self.config),
            (RUN, self.run_id),
            (ROLE, role),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in extra {
            l.insert((*k).to_owned(), (*v).to_owned());
        }
        l
    }

    fn metadata(&self, name: &str, labels: BTreeMap<String, String>) -> Value {
        let mut m = json!({"name": name, "namespace": self.namespace, "labels": labels});
        if let Some(o) = self.owner {
            m["ownerReferences"] = json!([o]);
        }
        m
    }
}

/// What a clone is made from.
#[derive(Clone, Debug)]
pub struct CloneSource<'a> {
    /// The VolumeSnapshot.
    pub snapshot: &'a str,
    /// The PVC it was taken of (for the label).
    pub pvc: &'a str,
    /// Storage class (the config's, else the source PVC's).
    pub storage_class: Option<&'a str>,
    /// Access modes (the config's, else the source PVC's).
    pub access_modes: Vec<String>,
    /// Size (the config's, else the snapshot's restoreSize, else the source PVC's request).
    pub size: &'a str,
}

/// The clone PVC of a snapshot.
pub fn clone_pvc(ctx: &Context<'_>, name: &str, src: &CloneSource<'_>) -> PersistentVolumeClaim {
    let pvc_label = crate::model::labels::pvc_label_value(src.pvc);
    let labels = ctx.labels("clone", &[(PVC, &pvc_label)]);
    pvc(ctx.metadata(name, labels), Some(src.snapshot), src)
}

/// The annotation on a restored PVC that says what it was restored from.
pub const RESTORED_FROM: &str = "kentledge.io/restored-from";

/// The role of a restore's new PVC while it is being filled (removed when the restore is done;
/// one left by a killed run is swept).
pub const RESTORE_ROLE: &str = "restore-target";

/// A restore's new PVC: from `snapshot`, or empty for a mover to fill from an archive. `shape`'s
/// `snapshot` and `pvc` are the source's (the PVC it restores).
pub fn restore_pvc(
    ctx: &Context<'_>,
    name: &str,
    shape: &CloneSource<'_>,
    from_snapshot: bool,
    restored_from: &str,
) -> PersistentVolumeClaim {
    let pvc_label = crate::model::labels::pvc_label_value(shape.pvc);
    let mut meta = ctx.metadata(name, ctx.labels(RESTORE_ROLE, &[(PVC, &pvc_label)]));
    meta["annotations"] = json!({RESTORED_FROM: restored_from});
    pvc(meta, from_snapshot.then_some(shape.snapshot), shape)
}

fn pvc(metadata: Value, snapshot: Option<&str>, shape: &CloneSource<'_>) -> PersistentVolumeClaim {
    let mut spec = json!({
        "accessModes": if shape.access_modes.is_empty() { vec!["ReadWriteOnce".to_owned()] } else { shape.access_modes.clone() },
        "resources": {"requests": {"storage": shape.size}},
    });
    if let Some(s) = snapshot {
        spec["dataSource"] =
            json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": s});
    }
    if let Some(sc) = shape.storage_class {
        spec["storageClassName"] = json!(sc);
    }
    let v = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata,
        "spec": spec,
    });
    serde_json::from_value(v).expect("a PVC built from valid parts is a valid object")
}

/// The volume a mover pod has at [`paths::DATA`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Data<'a> {
    /// None (repository-wide jobs).
    #[default]
    None,
    /// A snapshot's clone, read-only (a backup reads it).
    Clone(&'a str),
    /// A restore's target, read-write (a restore writes it).
    Target(&'a str),
}

impl<'a> Data<'a> {
    fn claim(self) -> Option<(&'a str, bool)> {
        match self {
            Data::None => None,
            Data::Clone(c) => Some((c, true)),
            Data::Target(t) => Some((t, false)),
        }
    }
}

/// A mover pod: `name` runs `job` with the repository's credentials, `data` at `/data`, and the
/// repository's PVC (if it lives on one) at `/repository`.
pub fn mover_pod(
    ctx: &Context<'_>,
    name: &str,
    mover: &Mover,
    repo: &Repository,
    job: &Job,
    data: Data<'_>,
    pvc_label: Option<&str>,
) -> Pod {
    let extras = Extras {
        data,
        pvc_label,
        ..Extras::default()
    };
    repository_pod(ctx, name, mover, repo, job, &extras)
}

/// The default ServiceAccount of mover pods that dump databases.
pub const DUMPER_ACCOUNT: &str = "kentledge-dumper";

/// What a mover that dumps databases has beyond a repository mover: a ServiceAccount token (it
/// execs into the database's pod) and the database credentials' Secrets as files.
#[derive(Clone, Debug)]
pub struct Dumper<'a> {
    /// The ServiceAccount (`spec.mover.dumpServiceAccountName`, else [`DUMPER_ACCOUNT`]).
    pub service_account: &'a str,
    /// Secret keys and the file paths they are mounted at.
    pub files: Vec<(&'a SecretKeyRef, &'static str)>,
}

/// A mover pod that dumps databases into a repository.
pub fn dump_pod(
    ctx: &Context<'_>,
    name: &str,
    mover: &Mover,
    repo: &Repository,
    job: &Job,
    dumper: &Dumper<'_>,
) -> Pod {
    let extras = Extras {
        dumper: Some(dumper),
        ..Extras::default()
    };
    repository_pod(ctx, name, mover, repo, job, &extras)
}

/// The name of a bucket's cache volume (its mirror; made once, kept between runs).
pub fn bucket_cache_name(config: &str, bucket: &str) -> String {
    format!("kentledge-bucket-{bucket}-{}", config_part(config))
}

/// A bucket's cache PVC, when the config asks for one (no run label: no sweep deletes it).
pub fn bucket_cache_pvc(
    namespace: &str,
    config: &str,
    bucket: &BucketBackup,
) -> Option<PersistentVolumeClaim> {
    let labels =
        json!({MANAGED_BY: MANAGER, CONFIG: config, ROLE: "bucket-cache", BUCKET: bucket.name});
    Some(kept_pvc(
        namespace,
        &bucket_cache_name(config, &bucket.name),
        labels,
        &bucket.cache_volume()?,
    ))
}

/// A PVC kept between runs (no run label, so no sweep deletes it).
fn kept_pvc(
    namespace: &str,
    name: &str,
    labels: Value,
    cache: &CacheVolume,
) -> PersistentVolumeClaim {
    let mut spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": cache.size}},
    });
    if let Some(sc) = &cache.storage_class_name {
        spec["storageClassName"] = json!(sc);
    }
    let v = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    });
    serde_json::from_value(v).expect("a cache PVC is a valid object")
}

/// The label naming the bucket a mover or cache volume is for.
pub const BUCKET: &str = "kentledge.io/bucket";

/// A mover pod that backs a bucket up into a repository or restores one: the bucket's keys as
/// files, and its cache volume (or an emptyDir) at [`paths::BUCKET`].
pub fn bucket_pod(
    ctx: &Context<'_>,
    name: &str,
    mover: &Mover,
    repo: &Repository,
    job: &Job,
    bucket: &BucketBackup,
    kept: bool,
) -> Pod {
    let extras = Extras {
        bucket: Some((bucket, kept)),
        ..Extras::default()
    };
    repository_pod(ctx, name, mover, repo, job, &extras)
}

/// What a mover pod has beyond the repository's own: a volume at [`paths::DATA`], a PVC label,
/// a dumper's token and files, a bucket's keys and volume (whether its cache volume).
#[derive(Default)]
struct Extras<'a> {
    data: Data<'a>,
    pvc_label: Option<&'a str>,
    dumper: Option<&'a Dumper<'a>>,
    bucket: Option<(&'a BucketBackup, bool)>,
}

fn repository_pod(
    ctx: &Context<'_>,
    name: &str,
    mover: &Mover,
    repo: &Repository,
    job: &Job,
    x: &Extras<'_>,
) -> Pod {
    let (data, dumper) = (x.data, x.dumper);
    let mut extra = vec![(REPOSITORY, repo.name.as_str())];
    if let Some((b, _)) = x.bucket {
        extra.push((BUCKET, b.name.as_str()));
    }
    if let Some(p) = x.pvc_label {
        extra.push((PVC, p));
    }
    let labels = ctx.labels("mover", &extra);
    let mut volumes: Vec<Value> = Vec::new();
    let mut mounts: Vec<Value> = Vec::new();
    if let Some((c, read_only)) = data.claim() {
        volumes.push(
            json!({"name": "data", "persistentVolumeClaim": {"claimName": c, "readOnly": read_only}}),
        );
        mounts.push(json!({"name": "data", "mountPath": paths::DATA, "readOnly": read_only}));
    }
    let mut secrets = secret_files(repo);
    if let Some(d) = dumper {
        for (r, path) in &d.files {
            let file_name = path.rsplit('/').next().unwrap_or(path);
            secrets.push(file(r, file_name));
        }
    }
    if let Some((b, kept)) = x.bucket {
        let c = &b.credentials;
        for (r, path) in [
            (&c.access_key_id, paths::S3_ACCESS_KEY),
            (&c.secret_access_key, paths::S3_SECRET_KEY),
        ] {
            secrets.push(file(r, path.rsplit('/').next().unwrap_or(path)));
        }
        volumes.push(if kept {
            json!({"name": "bucket", "persistentVolumeClaim": {"claimName": bucket_cache_name(ctx.config, &b.name)}})
        } else {
            json!({"name": "bucket", "emptyDir": {}})
        });
        mounts.push(json!({"name": "bucket", "mountPath": paths::BUCKET}));
    }
    if !secrets.is_empty() {
        volumes.push(
            json!({"name": "secrets", "projected": {"defaultMode": 0o400, "sources": secrets}}),
        );
        mounts.push(json!({"name": "secrets", "mountPath": paths::SECRETS, "readOnly": true}));
    }
    match repo.cache_volume().filter(|_| job.action.uses_cache()) {
        Some(_) => volumes.push(json!({"name": "cache", "persistentVolumeClaim": {"claimName": cache_pvc_name(ctx.config, &repo.name)}})),
        None => volumes.push(json!({"name": "cache", "emptyDir": {}})),
    }
    mounts.push(json!({"name": "cache", "mountPath": paths::CACHE}));
    if let Some(p) = repo_pvc(repo) {
        volumes.push(
            json!({"name": "repository", "persistentVolumeClaim": {"claimName": p.claim_name}}),
        );
        mounts.push(json!({"name": "repository", "mountPath": paths::REPOSITORY}));
    }
    let container = Container {
        job: job.to_arg(),
        env: Value::Array(secret_env(repo)),
        mounts,
        volumes,
        working_dir: if data == Data::None { "/" } else { paths::DATA },
        token_of: dumper.map(|d| d.service_account.to_owned()),
    };
    build(ctx, name, mover, labels, container)
}

/// What differs between a mover pod and another: its job, env, volumes, working directory, and
/// the ServiceAccount whose token it needs (none: no token is mounted).
struct Container {
    job: String,
    env: Value,
    mounts: Vec<Value>,
    volumes: Vec<Value>,
    working_dir: &'static str,
    token_of: Option<String>,
}

/// A pod that runs `kentledge mover --job …` with the config's image, resources, security
/// context, placement and deadline.
fn build(
    ctx: &Context<'_>,
    name: &str,
    mover: &Mover,
    labels: BTreeMap<String, String>,
    c: Container,
) -> Pod {
    let mut container = json!({
        "name": "mover",
        "image": mover.image,
        "command": ["kentledge"],
        "args": ["mover", "--job", c.job],
        "env": c.env,
        "volumeMounts": c.mounts,
        "workingDir": c.working_dir,
    });
    if let Some(p) = mover.image_pull_policy {
        container["imagePullPolicy"] = json!(format!("{p:?}"));
    }
    let r = &mover.resources;
    if !r.requests.is_empty() || !r.limits.is_empty() {
        container["resources"] = json!({"requests": r.requests, "limits": r.limits});
    }
    if mover.security_context.privileged {
        container["securityContext"] = json!({"privileged": true});
    }
    let sc = &mover.security_context;
    let mut pod_sc = json!({});
    for (k, v) in [
        ("runAsUser", sc.run_as_user),
        ("runAsGroup", sc.run_as_group),
        ("fsGroup", sc.fs_group),
    ] {
        if let Some(v) = v {
            pod_sc[k] = json!(v);
        }
    }
    let mut spec = json!({
        "restartPolicy": "Never",
        "activeDeadlineSeconds": mover.timeout.as_secs().max(1),
        "automountServiceAccountToken": false,
        "terminationGracePeriodSeconds": 30,
        "containers": [container],
        "volumes": c.volumes,
        "securityContext": pod_sc,
    });
    if let Some(sa) = &mover.service_account_name {
        spec["serviceAccountName"] = json!(sa);
    }
    if let Some(sa) = &c.token_of {
        spec["serviceAccountName"] = json!(sa);
        spec["automountServiceAccountToken"] = json!(true);
    }
    if !mover.node_selector.is_empty() {
        spec["nodeSelector"] = json!(mover.node_selector);
    }
    if !mover.tolerations.is_empty() {
        spec["tolerations"] = serde_json::to_value(&mover.tolerations).unwrap_or_default();
        // The config's enums serialise as their Kubernetes spelling already.
    }
    let v = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": ctx.metadata(name, labels),
        "spec": spec,
    });
    serde_json::from_value(v).expect("a mover pod is a valid object")
}

/// A sync pod: copies the clone `source` (read-only at `/source`) onto `target` (read-write at
/// `/data`), for an in-place restore from a snapshot or putting a safety snapshot back.
pub fn sync_pod(
    ctx: &Context<'_>,
    name: &str,
    mover: &Mover,
    source: &str,
    target: &str,
    pvc_label: &str,
) -> Pod {
    let labels = ctx.labels("mover", &[(PVC, pvc_label)]);
    let volumes = vec![
        json!({"name": "source", "persistentVolumeClaim": {"claimName": source, "readOnly": true}}),
        json!({"name": "data", "persistentVolumeClaim": {"claimName": target}}),
    ];
    let mounts = vec![
        json!({"name": "source", "mountPath": paths::SOURCE, "readOnly": true}),
        json!({"name": "data", "mountPath": paths::DATA}),
    ];
    let container = Container {
        job: super::job::LocalJob::Sync.to_arg(),
        env: json!([]),
        mounts,
        volumes,
        working_dir: "/",
        token_of: None,
    };
    build(ctx, name, mover, labels, container)
}

/// The PVC a mover pod mounts as its engine cache, if it mounts one.
pub fn cache_claim(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .volumes
        .as_ref()?
        .iter()
        .find(|v| v.name == "cache")?
        .persistent_volume_claim
        .as_ref()
        .map(|c| c.claim_name.as_str())
}

/// Gives a mover pod an empty engine cache instead of the repository's cache volume.
pub fn without_cache_volume(pod: &mut Pod) {
    let volumes = pod.spec.as_mut().and_then(|s| s.volumes.as_mut());
    for v in volumes.into_iter().flatten().filter(|v| v.name == "cache") {
        v.persistent_volume_claim = None;
        v.empty_dir = Some(Default::default());
    }
}

/// The name of a repository's cache PVC (made once, kept between runs).
pub fn cache_pvc_name(config: &str, repository: &str) -> String {
    format!("kentledge-cache-{repository}-{}", config_part(config))
}

/// The part of a kept volume's name that says its config (two configs of a namespace may name a
/// repository or a bucket alike, and must not share its cache: their runs take different locks).
fn config_part(config: &str) -> String {
    short_hash(config)[..6].to_owned()
}

/// A repository's engine cache PVC, when it has one ([`Repository::cache_volume`]): made once,
/// kept between runs (no run label, so no sweep deletes it).
pub fn cache_pvc(
    namespace: &str,
    config: &str,
    repo: &Repository,
) -> Option<PersistentVolumeClaim> {
    let labels = json!({MANAGED_BY: MANAGER, CONFIG: config, ROLE: "cache", REPOSITORY: repo.name});
    Some(kept_pvc(
        namespace,
        &cache_pvc_name(config, &repo.name),
        labels,
        &repo.cache_volume()?,
    ))
}

/// The PVC a repository lives on, if any.
pub fn repo_pvc(repo: &Repository) -> Option<&PvcPath> {
    match repo.kind().place() {
        Place::Volume(p) => Some(p),
        Place::Remote(_) => None,
    }
}

fn file(r: &SecretKeyRef, path: &str) -> Value {
    json!({"secret": {"name": r.secret, "items": [{"key": r.key, "path": path, "mode": 0o400}]}})
}

/// The projected-volume sources of a repository's secret files.
fn secret_files(repo: &Repository) -> Vec<Value> {
    let kind = repo.kind();
    let pass = match kind {
        RepositoryKind::Borg(b) => b.passphrase.as_ref(),
        RepositoryKind::Restic(r) => Some(&r.password),
    };
    let (key, hosts) = kind.ssh_secrets();
    let mut out = Vec::new();
    if let Some(p) = pass {
        out.push(file(p, "passphrase"));
    }
    if let Some(k) = key {
        out.push(file(k, "ssh-key"));
    }
    if let Some(h) = hosts {
        out.push(file(h, "known_hosts"));
    }
    out
}

fn secret_ref(name: &str, r: &SecretKeyRef) -> Value {
    json!({"name": name, "valueFrom": {"secretKeyRef": {"name": r.secret, "key": r.key}}})
}

/// Environment of the engine: S3 keys and the config's extra variables, by reference.
fn secret_env(repo: &Repository) -> Vec<Value> {
    let mut env = Vec::new();
    if let RepositoryKind::Restic(r) = repo.kind() {
        if let Some(s3) = &r.s3 {
            env.push(secret_ref("AWS_ACCESS_KEY_ID", &s3.access_key_id));
            env.push(secret_ref("AWS_SECRET_ACCESS_KEY", &s3.secret_access_key));
        }
        for e in &r.env {
            match (&e.value, &e.value_from) {
                (_, Some(from)) => env.push(secret_ref(&e.name, from)),
                (Some(v), None) => env.push(json!({"name": e.name, "value": v})),
                (None, None) => {}
            }
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::{Series, SeriesKind};
    use crate::mover::job::{Access, Action, Engine};

    fn access(name: &str, engine: Engine, location: &str, passphrase: bool) -> Access {
        Access::for_tests(name, engine, location, passphrase, &mover_prefix("shop"))
    }

    fn data_series() -> Series {
        Series {
            config: "shop".into(),
            namespace: "shop".into(),
            kind: SeriesKind::Volume,
            name: "data".into(),
        }
    }

    fn backup_of_data() -> Action {
        Action::Backup {
            series: data_series(),
            cut: "2026-11-22T10:00:07Z".parse().unwrap(),
            snapshot: "data-20261122-100007-k3x9".into(),
            upload_limit: None,
            exclude: Vec::new(),
        }
    }

    fn repo() -> Repository {
        serde_saphyr::from_str(
            r#"
name: offsite
restic:
  repository: s3:http://127.0.0.1:9000/backups/shop
  password: {secret: restic, key: password}
  s3:
    accessKeyId: {secret: s3, key: id}
    secretAccessKey: {secret: s3, key: secret}
  env:
    - {name: AWS_DEFAULT_REGION, value: eu-west-1}
"#,
        )
        .unwrap()
    }

    #[test]
    fn names_are_short_and_tied_to_the_namespace() {
        let (pod, clone) = names("shop", "20261122t100000z-3f9a", 2);
        assert!(pod.starts_with(&mover_prefix("shop")));
        assert!(pod.ends_with("-3f9a-2"), "{pod}");
        assert_eq!(clone, "kentledge-clone-3f9a-2");
        assert!(pod.len() <= 63);
        assert_ne!(mover_prefix("shop"), mover_prefix("shop2"));
    }

    #[test]
    fn a_mover_pod_has_references_to_secrets_never_their_values() {
        let repo = repo();
        let owner = OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: "kentledge-backup-29000000-abcde".into(),
            uid: "0c0ffee0-0000-4000-8000-000000000000".into(),
            ..OwnerReference::default()
        };
        let ctx = Context {
            namespace: "shop",
            config: "shop",
            run_id: "20261122t100000z-3f9a",
            owner: Some(&owner),
        };
        let job = Job {
            repository: access(
                "offsite",
                Engine::Restic,
                "s3:http://127.0.0.1:9000/backups/shop",
                true,
            ),
            action: backup_of_data(),
        };
        let mut mover = Mover {
            image: "ghcr.io/kentledge/kentledge:test".into(),
            ..Mover::default()
        };
        mover.security_context.run_as_user = Some(1000);
        mover.security_context.fs_group = Some(1000);
        mover.node_selector.insert("disk".into(), "ssd".into());
        let pod = mover_pod(
            &ctx,
            "kentledge-mover-x-3f9a-0",
            &mover,
            &repo,
            &job,
            Data::Clone("kentledge-clone-3f9a-0"),
            Some("data"),
        );
        let clone = clone_pvc(
            &ctx,
            "kentledge-clone-3f9a-0",
            &CloneSource {
                snapshot: "data-20261122-100007-3f9a",
                pvc: "data",
                storage_class: Some("hostpath"),
                access_modes: vec!["ReadWriteOnce".into()],
                size: "1Gi",
            },
        );
        insta::assert_snapshot!("mover_pod", serde_json::to_string_pretty(&pod).unwrap());
        insta::assert_snapshot!("clone_pvc", serde_json::to_string_pretty(&clone).unwrap());
    }

    fn borg(cache: &str) -> Repository {
        serde_saphyr::from_str(&format!(
            "name: vault\nborg:\n  pvc: {{claimName: repos, path: shop}}\n{cache}"
        ))
        .unwrap()
    }

    /// The `cache` volume of `job`'s pod for `repo`: a PVC's name, or `emptyDir`.
    fn cache_of(repo: &Repository, action: Action) -> String {
        let ctx = Context {
            namespace: "shop",
            config: "shop",
            run_id: "20261122t100000z-3f9a",
            owner: None,
        };
        let job = Job {
            repository: access(&repo.name, repo.engine(), "/repository/shop", false),
            action,
        };
        let pod = mover_pod(&ctx, "m", &Mover::default(), repo, &job, Data::None, None);
        let v = serde_json::to_value(&pod).unwrap();
        let vol = v["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "cache")
            .unwrap()
            .clone();
        match vol["persistentVolumeClaim"]["claimName"].as_str() {
            Some(c) => c.to_owned(),
            None => {
                assert!(vol["emptyDir"].is_object(), "{vol}");
                "emptyDir".into()
            }
        }
    }

    #[test]
    fn borg_writers_keep_a_cache_volume_by_default_and_readers_never_wait_for_it() {
        let backup = backup_of_data;
        let restore = || Action::Restore {
            series: data_series(),
            archive: "a".into(),
            replace: false,
        };
        let list = || Action::List {
            config: "shop".into(),
            namespace: "shop".into(),
            series: None,
            sizes: crate::mover::job::Sizes::All,
        };
        let default = borg("");
        assert_eq!(cache_of(&default, backup()), "kentledge-cache-vault-a847e0");
        // A break-lock for a reader gets no cache volume either.
        let mut reader = mover_pod(
            &Context {
                namespace: "shop",
                config: "shop",
                run_id: "r",
                owner: None,
            },
            "m",
            &Mover::default(),
            &default,
            &Job {
                repository: access("vault", Engine::Borg, "/repository/shop", false),
                action: Action::BreakLock,
            },
            Data::None,
            None,
        );
        assert_eq!(cache_claim(&reader), Some("kentledge-cache-vault-a847e0"));
        without_cache_volume(&mut reader);
        assert_eq!(cache_claim(&reader), None);
        assert_eq!(
            cache_of(&default, Action::BreakLock),
            "kentledge-cache-vault-a847e0"
        );
        assert_eq!(cache_of(&default, restore()), "emptyDir");
        assert_eq!(cache_of(&default, list()), "emptyDir");
        assert_eq!(
            cache_of(
                &default,
                Action::Check {
                    read_data_subset: None
                }
            ),
            "emptyDir"
        );
        let pvc = cache_pvc("shop", "shop", &default).unwrap();
        // Two configs of a namespace with a repository (or a bucket) of the same name each have
        // their own cache: their runs take different locks.
        assert_eq!(
            pvc.metadata.name.as_deref(),
            Some("kentledge-cache-vault-a847e0")
        );
        assert_ne!(
            cache_pvc_name("shop", "vault"),
            cache_pvc_name("shop-2", "vault")
        );
        assert_eq!(
            bucket_cache_name("shop", "media"),
            "kentledge-bucket-media-a847e0"
        );
        assert_ne!(
            bucket_cache_name("shop", "media"),
            bucket_cache_name("blog", "media")
        );
        assert_eq!(
            serde_json::to_value(&pvc).unwrap()["spec"],
            serde_json::json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}})
        );
        assert!(default.one_writer());

        let off = borg("cache: {enabled: false}\n");
        assert_eq!(cache_of(&off, backup()), "emptyDir");
        assert!(cache_pvc("shop", "shop", &off).is_none());
        assert!(off.one_writer(), "borg takes one writer at a time anyway");

        let sized = borg("cache: {size: 5Gi, storageClassName: fast}\n");
        let pvc = serde_json::to_value(cache_pvc("shop", "shop", &sized).unwrap()).unwrap();
        assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "5Gi");
        assert_eq!(pvc["spec"]["storageClassName"], "fast");

        // restic: none unless asked for; with one, its writers go one at a time.
        let restic = repo();
        assert_eq!(cache_of(&restic, backup()), "emptyDir");
        assert!(!restic.one_writer());
        let mut cached = repo();
        cached.cache = Some(crate::config::CacheVolume::default());
        assert_eq!(
            cache_of(&cached, backup()),
            "kentledge-cache-offsite-a847e0"
        );
        assert!(cached.one_writer());
    }
}
