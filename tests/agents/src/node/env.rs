//! A container's environment as the kubelet builds it: `envFrom` (Secrets, ConfigMaps, with prefixes),
//! then `env` (values with `$(VAR)` expansion, `secretKeyRef`, `configMapKeyRef`, `fieldRef`), plus what
//! the runtime adds (`PATH`, `HOSTNAME`, `HOME`); and the expansion of `command`/`args`.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::Api;

use super::container::DEFAULT_PATH;

/// Why an environment could not be built (the container waits with `CreateContainerConfigError`).
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A referenced Secret does not exist.
    #[error("secret {0:?} not found")]
    SecretNotFound(String),
    /// A referenced ConfigMap does not exist.
    #[error("configmap {0:?} not found")]
    ConfigMapNotFound(String),
    /// A key is missing.
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    KeyNotFound {
        /// `Secret` or `ConfigMap`.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Object name.
        name: String,
        /// Key.
        key: String,
    },
    /// A fieldRef this kubelet does not know.
    #[error("unsupported fieldRef {0:?}")]
    UnsupportedField(String),
    /// A resourceFieldRef (not supported here).
    #[error("resourceFieldRef is not supported by this kubelet (env {0})")]
    ResourceField(String),
    /// The API failed.
    #[error("{0}")]
    Api(#[source] Box<kube::Error>),
}

/// Fetches Secrets and ConfigMaps of one namespace once each.
pub struct Objects {
    secrets: Api<Secret>,
    config_maps: Api<ConfigMap>,
    namespace: String,
    secret_cache: HashMap<String, Option<BTreeMap<String, Vec<u8>>>>,
    cm_cache: HashMap<String, Option<BTreeMap<String, Vec<u8>>>>,
}

impl Objects {
    /// For `namespace`.
    pub fn new(client: &kube::Client, namespace: &str) -> Self {
        Objects {
            secrets: Api::namespaced(client.clone(), namespace),
            config_maps: Api::namespaced(client.clone(), namespace),
            namespace: namespace.to_string(),
            secret_cache: HashMap::new(),
            cm_cache: HashMap::new(),
        }
    }

    /// A Secret's data (`None` when it does not exist).
    pub async fn secret(
        &mut self,
        name: &str,
    ) -> Result<Option<&BTreeMap<String, Vec<u8>>>, EnvError> {
        if !self.secret_cache.contains_key(name) {
            let got = self
                .secrets
                .get_opt(name)
                .await
                .map_err(|e| EnvError::Api(Box::new(e)))?;
            let data = got.map(|s| {
                let mut m: BTreeMap<String, Vec<u8>> = s
                    .string_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect();
                m.extend(
                    s.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0)),
                );
                m
            });
            self.secret_cache.insert(name.to_string(), data);
        }
        Ok(self.secret_cache.get(name).and_then(Option::as_ref))
    }

    /// A ConfigMap's data and binaryData (`None` when it does not exist).
    pub async fn config_map(
        &mut self,
        name: &str,
    ) -> Result<Option<&BTreeMap<String, Vec<u8>>>, EnvError> {
        if !self.cm_cache.contains_key(name) {
            let got = self
                .config_maps
                .get_opt(name)
                .await
                .map_err(|e| EnvError::Api(Box::new(e)))?;
            let data = got.map(|c| {
                let mut m: BTreeMap<String, Vec<u8>> = c
                    .binary_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                m.extend(
                    c.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes())),
                );
                m
            });
            self.cm_cache.insert(name.to_string(), data);
        }
        Ok(self.cm_cache.get(name).and_then(Option::as_ref))
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    async fn key(
        &mut self,
        secret: bool,
        name: &str,
        key: &str,
        optional: bool,
    ) -> Result<Option<String>, EnvError> {
        let ns = self.namespace.clone();
        let data = if secret {
            self.secret(name).await?
        } else {
            self.config_map(name).await?
        };
        let Some(data) = data else {
            return if optional {
                Ok(None)
            } else if secret {
                Err(EnvError::SecretNotFound(name.into()))
            } else {
                Err(EnvError::ConfigMapNotFound(name.into()))
            };
        };
        match data.get(key) {
            Some(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
            None if optional => Ok(None),
            None => Err(EnvError::KeyNotFound {
                kind: if secret { "Secret" } else { "ConfigMap" },
                namespace: ns,
                name: name.into(),
                key: key.into(),
            }),
        }
    }
}

/// The value of a downward-API `fieldPath` (`metadata.labels['k']` included); `None` if unknown.
pub fn field_value(pod: &Pod, path: &str) -> Option<String> {
    let m = &pod.metadata;
    let map_key = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("['"))
            .and_then(|r| r.strip_suffix("']"))
    };
    if let Some(k) = map_key("metadata.labels") {
        return Some(
            m.labels
                .as_ref()
                .and_then(|l| l.get(k))
                .cloned()
                .unwrap_or_default(),
        );
    }
    if let Some(k) = map_key("metadata.annotations") {
        return Some(
            m.annotations
                .as_ref()
                .and_then(|l| l.get(k))
                .cloned()
                .unwrap_or_default(),
        );
    }
    let join = |map: Option<&BTreeMap<String, String>>| {
        map.into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Some(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => join(m.labels.as_ref()),
        "metadata.annotations" => join(m.annotations.as_ref()),
        "spec.nodeName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.podIP" | "status.hostIPs" | "status.podIPs" => "127.0.0.1".into(),
        _ => return None,
    })
}

/// Kubernetes `$(VAR)` expansion: defined variables are replaced, `$$` is `$`, anything else is kept.
pub fn expand(input: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    let mut checkpoint = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            out.push_str(&input[checkpoint..i]);
            let rest = &input[i + 1..];
            let advance = match rest.as_bytes()[0] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest.find(')') {
                    Some(close) => {
                        let name = &rest[1..close];
                        match vars(name) {
                            Some(v) => out.push_str(&v),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        close + 1
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    let ch = rest.chars().next().unwrap_or_default();
                    out.push('$');
                    out.push(ch);
                    ch.len_utf8()
                }
            };
            i += advance + 1;
            checkpoint = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&input[checkpoint.min(input.len())..]);
    out
}

/// The home directory of `uid` in the host's /etc/passwd (`/` when unknown, `/root` for root).
pub fn home_of(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
        })
        .next()
        .unwrap_or_else(|| if uid == 0 { "/root".into() } else { "/".into() })
}

/// Build the environment of `container` (in order, later entries win), the runtime's defaults first.
pub async fn resolve(
    objects: &mut Objects,
    pod: &Pod,
    container: &Container,
    uid: u32,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(x, _)| *x != k);
        env.push((k, v));
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (secret, name, optional) = if let Some(s) = &from.secret_ref {
            (true, s.name.clone(), s.optional.unwrap_or(false))
        } else if let Some(c) = &from.config_map_ref {
            (false, c.name.clone(), c.optional.unwrap_or(false))
        } else {
            continue;
        };
        let data = if secret {
            objects.secret(&name).await?.cloned()
        } else {
            objects.config_map(&name).await?.cloned()
        };
        match data {
            Some(d) => {
                for (k, v) in d {
                    set(
                        &mut env,
                        format!("{prefix}{k}"),
                        String::from_utf8_lossy(&v).into_owned(),
                    );
                }
            }
            None if optional => {}
            None if secret => return Err(EnvError::SecretNotFound(name)),
            None => return Err(EnvError::ConfigMapNotFound(name)),
        }
    }
    for e in container.env.iter().flatten() {
        let value = if let Some(src) = &e.value_from {
            if let Some(r) = &src.secret_key_ref {
                objects
                    .key(true, &r.name, &r.key, r.optional.unwrap_or(false))
                    .await?
            } else if let Some(r) = &src.config_map_key_ref {
                objects
                    .key(false, &r.name, &r.key, r.optional.unwrap_or(false))
                    .await?
            } else if let Some(r) = &src.field_ref {
                Some(
                    field_value(pod, &r.field_path)
                        .ok_or_else(|| EnvError::UnsupportedField(r.field_path.clone()))?,
                )
            } else {
                return Err(EnvError::ResourceField(e.name.clone()));
            }
        } else {
            let snapshot = env.clone();
            let lookup = move |k: &str| {
                snapshot
                    .iter()
                    .rev()
                    .find(|(x, _)| x == k)
                    .map(|(_, v)| v.clone())
            };
            Some(expand(e.value.as_deref().unwrap_or(""), &lookup))
        };
        if let Some(v) = value {
            set(&mut env, e.name.clone(), v);
        }
    }
    let mut full: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        (
            "HOSTNAME".into(),
            pod.metadata.name.clone().unwrap_or_default(),
        ),
        ("HOME".into(), home_of(uid)),
    ];
    for (k, v) in env {
        set(&mut full, k, v);
    }
    Ok(full)
}

/// Expand `$(VAR)` in a command or args list against the container's environment.
pub fn expand_all(items: &[String], env: &[(String, String)]) -> Vec<String> {
    let lookup = |k: &str| {
        env.iter()
            .rev()
            .find(|(x, _)| x == k)
            .map(|(_, v)| v.clone())
    };
    items.iter().map(|s| expand(s, &lookup)).collect()
}

/// The environment a real kubelet gives every container for the `kubernetes` Service of the
/// `default` namespace (always, whatever `enableServiceLinks` says); the container's own
/// variables win.
pub fn add_service_env(env: &mut Vec<(String, String)>, api_server: Option<&(String, u16)>) {
    let Some((host, port)) = api_server else {
        return;
    };
    let hostport = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    for (k, v) in [
        ("KUBERNETES_SERVICE_HOST", host.clone()),
        ("KUBERNETES_SERVICE_PORT", port.to_string()),
        ("KUBERNETES_SERVICE_PORT_HTTPS", port.to_string()),
        ("KUBERNETES_PORT", format!("tcp://{hostport}")),
        (
            &format!("KUBERNETES_PORT_{port}_TCP"),
            format!("tcp://{hostport}"),
        ),
        (
            &format!("KUBERNETES_PORT_{port}_TCP_PROTO"),
            "tcp".to_owned(),
        ),
        (
            &format!("KUBERNETES_PORT_{port}_TCP_PORT"),
            port.to_string(),
        ),
        (&format!("KUBERNETES_PORT_{port}_TCP_ADDR"), host.clone()),
    ] {
        if !env.iter().any(|(name, _)| name == k) {
            env.push((k.to_owned(), v));
        }
    }
}

/// Put the directory of the binaries that `image` provides (per [`super::NodeOptions::images`])
/// first on the container's `PATH`.
pub fn add_image_path(
    env: &mut Vec<(String, String)>,
    image: Option<&str>,
    images: &[(String, std::path::PathBuf)],
) {
    let Some(image) = image else { return };
    let Some((_, dir)) = images
        .iter()
        .find(|(prefix, _)| image.starts_with(prefix.as_str()))
    else {
        return;
    };
    let path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| DEFAULT_PATH.into());
    env.retain(|(k, _)| k != "PATH");
    env.insert(0, ("PATH".into(), format!("{}:{path}", dir.display())));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes() {
        let vars = |k: &str| match k {
            "A" => Some("1".to_string()),
            "B" => Some("two".to_string()),
            _ => None,
        };
        assert_eq!(expand("x$(A)y$(B)", &vars), "x1ytwo");
        assert_eq!(expand("$(C) stays", &vars), "$(C) stays");
        assert_eq!(expand("$$(A) escapes", &vars), "$(A) escapes");
        assert_eq!(expand("$(A", &vars), "$(A");
        assert_eq!(expand("cost $5 $", &vars), "cost $5 $");
        assert_eq!(expand("é$(A)é", &vars), "é1é");
    }

    #[test]
    fn downward_fields() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "db"}},
            "spec": {"nodeName": "node-1", "containers": []}
        }))
        .unwrap();
        assert_eq!(field_value(&pod, "metadata.name").as_deref(), Some("p"));
        assert_eq!(
            field_value(&pod, "metadata.labels['app']").as_deref(),
            Some("db")
        );
        assert_eq!(
            field_value(&pod, "metadata.labels").as_deref(),
            Some("app=\"db\"")
        );
        assert_eq!(
            field_value(&pod, "status.podIP").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            field_value(&pod, "spec.nodeName").as_deref(),
            Some("node-1")
        );
        assert_eq!(field_value(&pod, "spec.nope"), None);
    }

    #[test]
    fn command_expansion() {
        let env = vec![("NAME".to_string(), "world".to_string())];
        assert_eq!(
            expand_all(&["echo".into(), "hello $(NAME)".into()], &env),
            ["echo", "hello world"]
        );
    }
}
