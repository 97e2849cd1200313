//! The top-level error of a kentledge command, and the process exit codes it maps to.

use crate::config;

/// Process exit codes. They are part of kentledge's interface: CronJobs and scripts rely on them.
pub mod exit {
    /// Everything asked for was done.
    pub const SUCCESS: u8 = 0;
    /// A run failed (cluster, engine or data error); see the log for what and why.
    pub const FAILURE: u8 = 1;
    /// Usage or config error: bad flags or an invalid config. Nothing was changed.
    pub const USAGE: u8 = 2;
    /// Partial success: some targets succeeded, others failed (the summary says which).
    pub const PARTIAL: u8 = 3;
    /// Another run of the same config holds the run lock, and `--lock-timeout` passed.
    pub const LOCKED: u8 = 4;
    /// The subcommand or option is not available in this version. Nothing was changed.
    pub const UNAVAILABLE: u8 = 69;
    /// Interrupted by SIGINT; cleanup and post-hooks ran.
    pub const INTERRUPTED_SIGINT: u8 = 130;
    /// Interrupted by SIGTERM; cleanup and post-hooks ran.
    pub const INTERRUPTED_SIGTERM: u8 = 143;
}

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file could not be read, parsed or validated.
    #[error(transparent)]
    Config(#[from] config::LoadError),

    /// No namespace could be determined.
    #[error("no namespace to work in")]
    NoNamespace,

    /// The namespace given on the command line is not a valid namespace name.
    #[error("--namespace {namespace:?}: {reason}")]
    BadNamespace {
        /// The value given.
        namespace: String,
        /// Why it is invalid.
        reason: String,
    },

    /// A command-line value that clap could not check (it depends on the config).
    #[error("{flag} {value:?}: {reason}")]
    BadArgument {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: String,
        /// Why it is invalid.
        reason: String,
    },

    /// The subcommand exists in the CLI but its work is not implemented in this version.
    #[error("`kentledge {command}` is not available in kentledge {version} yet: {what}")]
    NotImplemented {
        /// The subcommand as typed.
        command: String,
        /// kentledge's version.
        version: &'static str,
        /// What is missing.
        what: &'static str,
    },

    /// Writing results to stdout failed.
    #[error("cannot write output")]
    Output(#[source] std::io::Error),

    /// The async runtime or signal handlers could not start.
    #[error("cannot set up signal handling")]
    Signals(#[source] std::io::Error),

    /// No connection to the Kubernetes API could be configured.
    #[error("cannot connect to the Kubernetes API")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// An API call failed.
    #[error("cannot {what}")]
    Cluster {
        /// What was attempted.
        what: String,
        /// The cause.
        #[source]
        source: Box<kube::Error>,
    },

    /// The cluster does not allow the run as configured; nothing was changed.
    #[error("cannot plan the run, nothing was changed:\n  {}", problems.join("\n  "))]
    Plan {
        /// Every problem found.
        problems: Vec<String>,
    },

    /// The run lock could not be taken.
    #[error(transparent)]
    Lock(Box<crate::plan::lock::LockError>),

    /// Interrupted before anything was changed.
    #[error("interrupted before the run started; nothing was changed")]
    Interrupted {
        /// The signal's exit code.
        code: u8,
    },
}

impl Error {
    /// Maps a failed API call to an error that says what was attempted (`cannot <what>`).
    pub fn cluster(what: &str) -> impl Fn(kube::Error) -> Error + '_ {
        move |e| Error::Cluster {
            what: what.to_owned(),
            source: Box::new(e),
        }
    }

    /// Maps a failure to take the run lock; an interruption while waiting keeps its signal's code.
    /// `interrupted` is the interruption's exit code, if the run was interrupted.
    pub fn from_lock(e: crate::plan::lock::LockError, interrupted: Option<u8>) -> Error {
        match e {
            crate::plan::lock::LockError::Interrupted => Error::Interrupted {
                code: interrupted.unwrap_or(exit::INTERRUPTED_SIGTERM),
            },
            other => Error::Lock(Box::new(other)),
        }
    }

    /// The process exit code for this error.
    pub fn code(&self) -> u8 {
        match self {
            Error::Config(_)
            | Error::NoNamespace
            | Error::BadNamespace { .. }
            | Error::BadArgument { .. } => exit::USAGE,
            Error::NotImplemented { .. } => exit::UNAVAILABLE,
            Error::Lock(e) if matches!(**e, crate::plan::lock::LockError::Held { .. }) => {
                exit::LOCKED
            }
            Error::Interrupted { code } => *code,
            Error::Output(_)
            | Error::Signals(_)
            | Error::Connect(_)
            | Error::Cluster { .. }
            | Error::Plan { .. }
            | Error::Lock(_) => exit::FAILURE,
        }
    }

    /// A suggestion for what to do next, where one helps.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Config(config::LoadError::Read { .. }) => Some(
                "pass the config with -c FILE or KENTLEDGE_CONFIG; examples/ has complete configs".into(),
            ),
            Error::Config(config::LoadError::Invalid(_)) => Some(
                "the README's config reference lists every field; `kentledge check -c FILE` validates offline".into(),
            ),
            Error::NoNamespace => Some(
                "set metadata.namespace in the config or pass --namespace NAME".into(),
            ),
            Error::NotImplemented { .. } => Some(
                "nothing was changed; `kentledge check` validates the config for when it lands".into(),
            ),
            Error::Connect(_) => Some(
                "pass --kubeconfig FILE (and --context NAME), or set KUBECONFIG".into(),
            ),
            Error::Cluster { source, .. } if matches!(**source, kube::Error::Api(ref s) if s.code == 403) => Some(
                "kentledge's ServiceAccount needs the Role in manifests/rbac.yaml".into(),
            ),
            _ => None,
        }
    }
}
