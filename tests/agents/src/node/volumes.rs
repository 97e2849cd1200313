//! A pod's volumes as host directories: PVCs (the bound PV's `spec.hostPath.path`, also `local.path` or
//! a CSI `volumeAttributes.path`), hostPath, emptyDir (a per-pod directory), and secret, configMap,
//! downwardAPI and projected volumes (files written into a per-pod directory with their modes), with
//! the pod's `fsGroup` applied. Errors carry the kubelet's messages.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, ServiceAccount, Volume,
};
use kube::Api;
use kube::api::PostParams;

use super::env::{EnvError, Objects, field_value};

/// A volume ready to be bind-mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVolume {
    /// The host directory (or file).
    pub path: PathBuf,
    /// Every mount of it is read-only (a read-only PVC, or secret/configMap/downwardAPI/projected).
    pub read_only: bool,
}

/// Why a pod's volumes are not ready (its containers wait in `ContainerCreating`).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A volume could not be set up (`FailedMount`).
    #[error("MountVolume.SetUp failed for volume {volume:?} : {reason}")]
    SetUp {
        /// The volume.
        volume: String,
        /// The cause.
        reason: String,
    },
    /// A claim is missing or unbound.
    #[error(
        "Unable to attach or mount volumes: unmounted volumes=[{volume}], unattached volumes=[], failed to process volumes=[{volume}]: {reason}"
    )]
    Claim {
        /// The volume.
        volume: String,
        /// The cause.
        reason: String,
    },
}

fn setup(volume: &str, reason: impl std::fmt::Display) -> VolumeError {
    VolumeError::SetUp {
        volume: volume.to_string(),
        reason: reason.to_string(),
    }
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, data)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// A relative file path inside a volume (no `..`, not absolute).
fn safe_rel(p: &str) -> bool {
    !p.is_empty() && !p.starts_with('/') && !p.split('/').any(|c| c == "..")
}

/// Where the keys of a secret, configMap or projected volume source come from.
#[derive(Clone, Copy)]
enum KeySource<'a> {
    Secret(&'a str),
    ConfigMap(&'a str),
}

/// Writes the keys of a Secret or ConfigMap into `dir`; a missing object is an error unless
/// `optional`.
async fn write_object_keys(
    objects: &mut Objects,
    volume: &str,
    dir: &Path,
    source: KeySource<'_>,
    items: Option<&Vec<KeyToPath>>,
    mode: i32,
    optional: bool,
) -> Result<(), VolumeError> {
    let (kind, object, data) = match source {
        KeySource::Secret(n) => ("secret", n, objects.secret(n).await),
        KeySource::ConfigMap(n) => ("configmap", n, objects.config_map(n).await),
    };
    match data.map_err(|e| env_err(volume, e))? {
        Some(data) => write_keys(volume, dir, data, items, mode, kind, optional),
        None if optional => Ok(()),
        None => Err(setup(volume, format!("{kind} {object:?} not found"))),
    }
}

/// Write keys (all, or `items`) of `data` into `dir`.
fn write_keys(
    volume: &str,
    dir: &Path,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: i32,
    what: &str,
    optional: bool,
) -> Result<(), VolumeError> {
    let pairs: Vec<(String, String, i32)> = match items {
        Some(items) if !items.is_empty() => items
            .iter()
            .map(|i| {
                (
                    i.key.clone(),
                    i.path.clone(),
                    i.mode.unwrap_or(default_mode),
                )
            })
            .collect(),
        _ => data
            .keys()
            .map(|k| (k.clone(), k.clone(), default_mode))
            .collect(),
    };
    for (key, rel, mode) in pairs {
        if !safe_rel(&rel) {
            return Err(setup(volume, format!("invalid path {rel:?}")));
        }
        match data.get(&key) {
            Some(v) => write_file(&dir.join(&rel), v, mode as u32 & 0o7777)
                .map_err(|e| setup(volume, e))?,
            None if optional => {}
            None => {
                return Err(setup(
                    volume,
                    format!("references non-existent {what} key: {key}"),
                ));
            }
        }
    }
    Ok(())
}

/// Give `root` (recursively when asked) the group `gid`, group-readable/writable, directories setgid.
fn apply_fs_group(root: &Path, gid: u32, recursive: bool) -> std::io::Result<()> {
    fn one(p: &Path, gid: u32) -> std::io::Result<()> {
        std::os::unix::fs::lchown(p, None, Some(gid))?;
        let md = std::fs::symlink_metadata(p)?;
        if md.file_type().is_symlink() {
            return Ok(());
        }
        let mode = md.permissions().mode();
        let extra = if md.is_dir() { 0o2070 } else { 0o060 };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode((mode | extra) & 0o7777))
    }
    one(root, gid)?;
    if recursive && root.is_dir() {
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d)? {
                let p = e?.path();
                one(&p, gid)?;
                if std::fs::symlink_metadata(&p)?.is_dir() {
                    stack.push(p);
                }
            }
        }
    }
    Ok(())
}

fn fresh_dir(dir: &Path, mode: u32) -> std::io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

fn pv_path(pv: &PersistentVolume) -> Option<PathBuf> {
    let spec = pv.spec.as_ref()?;
    spec.host_path
        .as_ref()
        .map(|h| PathBuf::from(&h.path))
        .or_else(|| spec.local.as_ref().map(|l| PathBuf::from(&l.path)))
        .or_else(|| {
            spec.csi
                .as_ref()
                .and_then(|c| c.volume_attributes.as_ref())
                .and_then(|a| a.get("path"))
                .map(PathBuf::from)
        })
}

async fn claim_path(
    client: &kube::Client,
    ns: &str,
    volume: &str,
    claim: &str,
) -> Result<PathBuf, VolumeError> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let err = |reason: String| VolumeError::Claim {
        volume: volume.to_string(),
        reason: format!("error processing PVC {ns}/{claim}: {reason}"),
    };
    let pvc = match claims.get_opt(claim).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(err(format!(
                "failed to fetch PVC from API server: persistentvolumeclaims {claim:?} not found"
            )));
        }
        Err(e) => return Err(err(format!("failed to fetch PVC from API server: {e}"))),
    };
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let Some(pv_name) = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|n| !n.is_empty() && bound)
    else {
        return Err(err("PVC is not bound".into()));
    };
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pv = match pvs.get_opt(&pv_name).await {
        Ok(Some(pv)) => pv,
        Ok(None) => {
            return Err(err(format!(
                "failed to fetch PV {pv_name:?} from API server: persistentvolumes {pv_name:?} not found"
            )));
        }
        Err(e) => {
            return Err(err(format!(
                "failed to fetch PV {pv_name:?} from API server: {e}"
            )));
        }
    };
    let path = pv_path(&pv).ok_or_else(|| setup(volume, format!("PersistentVolume {pv_name:?} has no hostPath, local or csi path this node can mount")))?;
    if !path.is_dir() {
        return Err(setup(
            volume,
            format!(
                "hostPath type check failed: {} is not a directory",
                path.display()
            ),
        ));
    }
    Ok(path)
}

fn host_path(volume: &str, path: &str, kind: &str) -> Result<PathBuf, VolumeError> {
    let p = PathBuf::from(path);
    let io = |e: std::io::Error| setup(volume, e);
    match kind {
        "DirectoryOrCreate" => std::fs::create_dir_all(&p).map_err(io)?,
        "FileOrCreate" if !p.exists() => write_file(&p, b"", 0o644).map_err(io)?,
        "Directory" if !p.is_dir() => {
            return Err(setup(
                volume,
                format!("hostPath type check failed: {path} is not a directory"),
            ));
        }
        "File" if !p.is_file() => {
            return Err(setup(
                volume,
                format!("hostPath type check failed: {path} is not a file"),
            ));
        }
        "Socket" | "CharDevice" | "BlockDevice" if !p.exists() => {
            return Err(setup(
                volume,
                format!("hostPath type check failed: {path} does not exist"),
            ));
        }
        _ => {}
    }
    Ok(p)
}

fn env_err(volume: &str, e: EnvError) -> VolumeError {
    setup(volume, e)
}

/// Set up every volume of `pod` under `pod_dir/volumes`; returns them by name.
pub async fn prepare(
    client: &kube::Client,
    pod: &Pod,
    pod_dir: &Path,
    objects: &mut Objects,
) -> Result<HashMap<String, HostVolume>, VolumeError> {
    let ns = objects.namespace().to_string();
    let spec = pod.spec.as_ref();
    let fs_group = spec
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.fs_group)
        .map(|g| g as u32);
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let mut out = HashMap::new();
    let volumes: Vec<Volume> = spec.and_then(|s| s.volumes.clone()).unwrap_or_default();
    for v in &volumes {
        let name = v.name.as_str();
        let dir = pod_dir.join("volumes").join(name);
        let io = |e: std::io::Error| setup(name, e);
        let (path, read_only, owned) = if let Some(c) = &v.persistent_volume_claim {
            (
                claim_path(client, &ns, name, &c.claim_name).await?,
                c.read_only.unwrap_or(false),
                false,
            )
        } else if v.ephemeral.is_some() {
            (
                claim_path(client, &ns, name, &format!("{pod_name}-{name}")).await?,
                false,
                false,
            )
        } else if let Some(h) = &v.host_path {
            (
                host_path(name, &h.path, h.type_.as_deref().unwrap_or(""))?,
                false,
                false,
            )
        } else if v.empty_dir.is_some() {
            if !dir.exists() {
                fresh_dir(&dir, 0o777).map_err(io)?;
            }
            (dir, false, true)
        } else if let Some(s) = &v.secret {
            let secret = s.secret_name.clone().unwrap_or_default();
            let optional = s.optional.unwrap_or(false);
            fresh_dir(&dir, 0o755).map_err(io)?;
            let mode = s.default_mode.unwrap_or(0o644);
            let source = KeySource::Secret(&secret);
            write_object_keys(
                &mut *objects,
                name,
                &dir,
                source,
                s.items.as_ref(),
                mode,
                optional,
            )
            .await?;
            (dir, true, true)
        } else if let Some(c) = &v.config_map {
            let optional = c.optional.unwrap_or(false);
            fresh_dir(&dir, 0o755).map_err(io)?;
            let mode = c.default_mode.unwrap_or(0o644);
            let source = KeySource::ConfigMap(&c.name);
            write_object_keys(
                &mut *objects,
                name,
                &dir,
                source,
                c.items.as_ref(),
                mode,
                optional,
            )
            .await?;
            (dir, true, true)
        } else if let Some(d) = &v.downward_api {
            fresh_dir(&dir, 0o755).map_err(io)?;
            for item in d.items.iter().flatten() {
                write_downward(
                    name,
                    &dir,
                    pod,
                    &item.path,
                    item.field_ref.as_ref().map(|f| f.field_path.as_str()),
                    item.mode.or(d.default_mode),
                )?;
            }
            (dir, true, true)
        } else if let Some(p) = &v.projected {
            fresh_dir(&dir, 0o755).map_err(io)?;
            let mode = p.default_mode.unwrap_or(0o644);
            for src in p.sources.iter().flatten() {
                let keyed = [
                    src.secret
                        .as_ref()
                        .map(|s| (KeySource::Secret(&s.name), s.items.as_ref(), s.optional)),
                    src.config_map
                        .as_ref()
                        .map(|c| (KeySource::ConfigMap(&c.name), c.items.as_ref(), c.optional)),
                ];
                for (source, items, optional) in keyed.into_iter().flatten() {
                    let optional = optional.unwrap_or(false);
                    write_object_keys(&mut *objects, name, &dir, source, items, mode, optional)
                        .await?;
                }
                if let Some(d) = &src.downward_api {
                    for item in d.items.iter().flatten() {
                        write_downward(
                            name,
                            &dir,
                            pod,
                            &item.path,
                            item.field_ref.as_ref().map(|f| f.field_path.as_str()),
                            item.mode.or(Some(mode)),
                        )?;
                    }
                }
                if let Some(t) = &src.service_account_token {
                    let sa = spec
                        .and_then(|s| s.service_account_name.clone())
                        .unwrap_or_else(|| "default".into());
                    let token = service_account_token(
                        client,
                        &ns,
                        &sa,
                        pod,
                        t.audience.clone(),
                        t.expiration_seconds,
                    )
                    .await
                    .map_err(|e| setup(name, e))?;
                    if !safe_rel(&t.path) {
                        return Err(setup(name, format!("invalid path {:?}", t.path)));
                    }
                    write_file(&dir.join(&t.path), token.as_bytes(), mode as u32 & 0o7777)
                        .map_err(io)?;
                }
            }
            (dir, true, true)
        } else {
            return Err(setup(
                name,
                "this volume type is not supported by this kubelet",
            ));
        };
        // Like the kubelet's CSI mounter (supportsFSGroup): a claim mounted read-only keeps its
        // owners and modes; Secret, ConfigMap and projected volumes get the group.
        let read_only_claim = v
            .persistent_volume_claim
            .as_ref()
            .is_some_and(|c| c.read_only == Some(true));
        if let Some(gid) = fs_group.filter(|_| !read_only_claim) {
            let recursive = owned
                || std::fs::metadata(&path)
                    .map(|m| std::os::unix::fs::MetadataExt::gid(&m) != gid)
                    .unwrap_or(false);
            if recursive {
                let p = path.clone();
                tokio::task::spawn_blocking(move || apply_fs_group(&p, gid, true))
                    .await
                    .map_err(|e| setup(name, e))?
                    .map_err(io)?;
            }
        }
        out.insert(name.to_string(), HostVolume { path, read_only });
    }
    Ok(out)
}

fn write_downward(
    volume: &str,
    dir: &Path,
    pod: &Pod,
    rel: &str,
    field: Option<&str>,
    mode: Option<i32>,
) -> Result<(), VolumeError> {
    let Some(field) = field else {
        return Err(setup(
            volume,
            "resourceFieldRef is not supported by this kubelet",
        ));
    };
    let value = field_value(pod, field)
        .ok_or_else(|| setup(volume, format!("unsupported fieldRef {field:?}")))?;
    if !safe_rel(rel) {
        return Err(setup(volume, format!("invalid path {rel:?}")));
    }
    write_file(
        &dir.join(rel),
        value.as_bytes(),
        mode.unwrap_or(0o644) as u32 & 0o7777,
    )
    .map_err(|e| setup(volume, e))
}

async fn service_account_token(
    client: &kube::Client,
    ns: &str,
    sa: &str,
    pod: &Pod,
    audience: Option<String>,
    expiration: Option<i64>,
) -> Result<String, kube::Error> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.map(|a| vec![a]).unwrap_or_default(),
            expiration_seconds: expiration,
            bound_object_ref: Some(k8s_openapi::api::authentication::v1::BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..TokenRequest::default()
    };
    let got = api
        .create_token_request(sa, &PostParams::default(), &req)
        .await?;
    Ok(got.status.map(|s| s.token).unwrap_or_default())
}

/// The host path for one volumeMount: the volume path joined with `subPath` (created when missing).
pub fn mount_source(volume: &HostVolume, sub_path: Option<&str>) -> Result<PathBuf, String> {
    match sub_path.filter(|s| !s.is_empty()) {
        None => Ok(volume.path.clone()),
        Some(s) if !safe_rel(s) => Err(format!(
            "subPath {s:?} must be a relative path without '..'"
        )),
        Some(s) => {
            let p = volume.path.join(s);
            if !p.exists() {
                std::fs::create_dir_all(&p).map_err(|e| {
                    format!("failed to create subPath directory for volumeMount: {e}")
                })?;
            }
            Ok(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_items_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let data: BTreeMap<String, Vec<u8>> = [
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ]
        .into();
        write_keys("v", dir.path(), &data, None, 0o600, "secret", false).unwrap();
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"1");
        assert_eq!(
            std::fs::metadata(dir.path().join("b"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        let items = vec![KeyToPath {
            key: "a".into(),
            path: "sub/x".into(),
            mode: Some(0o400),
        }];
        write_keys("v", dir.path(), &data, Some(&items), 0o644, "secret", false).unwrap();
        assert_eq!(std::fs::read(dir.path().join("sub/x")).unwrap(), b"1");
        let missing = vec![KeyToPath {
            key: "zz".into(),
            path: "zz".into(),
            mode: None,
        }];
        let e = write_keys(
            "v",
            dir.path(),
            &data,
            Some(&missing),
            0o644,
            "secret",
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "MountVolume.SetUp failed for volume \"v\" : references non-existent secret key: zz"
        );
        assert!(
            write_keys(
                "v",
                dir.path(),
                &data,
                Some(&missing),
                0o644,
                "secret",
                true
            )
            .is_ok()
        );
    }

    #[test]
    fn sub_paths_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let v = HostVolume {
            path: dir.path().into(),
            read_only: false,
        };
        assert_eq!(
            mount_source(&v, Some("a/b")).unwrap(),
            dir.path().join("a/b")
        );
        assert!(dir.path().join("a/b").is_dir());
        assert!(mount_source(&v, Some("../x")).is_err());
        assert_eq!(mount_source(&v, None).unwrap(), dir.path());
    }
}
