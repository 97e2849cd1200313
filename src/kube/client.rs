//! Building a kube client from the cluster access settings (`--kubeconfig`, `--context`), else
//! kube's own inference (`KUBECONFIG`, `~/.kube/config`, in-cluster); its requests ride out a
//! restarting API server ([`super::retry`]).

use kube::config::{KubeConfigOptions, Kubeconfig};

/// Which cluster to talk to, as the user asked (both unset: kube's own inference).
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// A kubeconfig file to read instead of the default ones.
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The kubeconfig context to use.
    pub context: Option<String>,
}

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig could not be read.
    #[error("cannot read kubeconfig {path}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The kubeconfig or in-cluster environment is not usable.
    #[error("cannot configure the Kubernetes client")]
    Config(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The client could not be created.
    #[error("cannot create the Kubernetes client")]
    Client(#[source] kube::Error),
}

/// Connects as the flags say.
pub async fn connect(global: &Access) -> Result<kube::Client, ClientError> {
    let options = KubeConfigOptions {
        context: global.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &global.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|source| ClientError::Read {
                path: path.display().to_string(),
                source,
            })?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| ClientError::Config(Box::new(e)))?
        }
        None if global.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| ClientError::Config(Box::new(e)))?,
        None => kube::Config::infer()
            .await
            .map_err(|e| ClientError::Config(Box::new(e)))?,
    };
    let namespace = config.default_namespace.clone();
    let inner = kube::Client::try_from(config).map_err(ClientError::Client)?;
    Ok(super::retry::Retrying::client(inner, namespace))
}
