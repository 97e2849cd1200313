//! Turning parsed arguments into validated settings: the loaded config, the namespace to work
//! in, and the CLI's choices in the types of the layers below. The only module below the
//! commands that knows the CLI. Everything here happens before any API call.

use std::path::Path;

use crate::cli::{self, GlobalArgs};
use crate::config::{self, Config};
use crate::error::Error;
use crate::kube::client::Access;
use crate::model::names::check_dns1123_label;
use crate::runtime::logging::LogFormat;
use crate::runtime::output::Format;

/// Where a pod's ServiceAccount namespace is mounted in a cluster.
pub const IN_CLUSTER_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Where the namespace came from (for logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamespaceSource {
    /// `--namespace`.
    Flag,
    /// The config's `metadata.namespace`.
    Config,
    /// The pod's own namespace, in a cluster.
    Pod,
}

/// Validated settings shared by the cluster commands.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The loaded, valid config.
    pub config: Config,
    /// The namespace to work in.
    pub namespace: String,
    /// `--dry-run`: plan and print, change nothing.
    pub dry_run: bool,
}

/// The cluster to talk to, from `--kubeconfig` and `--context`.
pub fn cluster_access(global: &GlobalArgs) -> Access {
    Access {
        kubeconfig: global.kubeconfig.clone(),
        context: global.context.clone(),
    }
}

impl From<cli::Output> for Format {
    fn from(o: cli::Output) -> Format {
        match o {
            cli::Output::Text => Format::Text,
            cli::Output::Json => Format::Json,
        }
    }
}

impl From<cli::LogFormat> for LogFormat {
    fn from(f: cli::LogFormat) -> LogFormat {
        match f {
            cli::LogFormat::Auto => LogFormat::Auto,
            cli::LogFormat::Text => LogFormat::Text,
            cli::LogFormat::Json => LogFormat::Json,
        }
    }
}

/// Picks the namespace: `--namespace`, else the config's, else the pod's own in a cluster.
pub fn resolve_namespace(
    flag: Option<&str>,
    config: Option<&str>,
    in_cluster: Option<&str>,
) -> Result<(String, NamespaceSource), Error> {
    if let Some(ns) = flag {
        check_dns1123_label(ns).map_err(|reason| Error::BadNamespace {
            namespace: ns.to_owned(),
            reason,
        })?;
        return Ok((ns.to_owned(), NamespaceSource::Flag));
    }
    if let Some(ns) = config {
        return Ok((ns.to_owned(), NamespaceSource::Config));
    }
    if let Some(ns) = in_cluster.map(str::trim).filter(|s| !s.is_empty()) {
        return Ok((ns.to_owned(), NamespaceSource::Pod));
    }
    Err(Error::NoNamespace)
}

/// Loads the config named by the global flags and resolves the namespace.
pub fn load(global: &GlobalArgs) -> Result<Settings, Error> {
    let config = config::load_file(&global.config)?;
    let in_cluster = std::fs::read_to_string(Path::new(IN_CLUSTER_NAMESPACE_FILE)).ok();
    let (namespace, namespace_source) = resolve_namespace(
        global.namespace.as_deref(),
        config.metadata.namespace.as_deref(),
        in_cluster.as_deref(),
    )?;
    if namespace_source == NamespaceSource::Flag
        && config
            .metadata
            .namespace
            .as_deref()
            .is_some_and(|c| c != namespace)
    {
        tracing::info!(
            namespace = %namespace,
            config_namespace = config.metadata.namespace.as_deref().unwrap_or(""),
            "--namespace overrides the config's metadata.namespace"
        );
    }
    tracing::debug!(namespace = %namespace, config = %config.metadata.name, "config loaded");
    Ok(Settings {
        config,
        namespace,
        dry_run: global.dry_run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_precedence() {
        assert_eq!(
            resolve_namespace(Some("a"), Some("b"), Some("c")).unwrap(),
            ("a".into(), NamespaceSource::Flag)
        );
        assert_eq!(
            resolve_namespace(None, Some("b"), Some("c")).unwrap(),
            ("b".into(), NamespaceSource::Config)
        );
        assert_eq!(
            resolve_namespace(None, None, Some("c\n")).unwrap(),
            ("c".into(), NamespaceSource::Pod)
        );
        assert!(matches!(
            resolve_namespace(None, None, None),
            Err(Error::NoNamespace)
        ));
        assert!(matches!(
            resolve_namespace(Some("Bad_NS"), None, None),
            Err(Error::BadNamespace { .. })
        ));
    }
}
