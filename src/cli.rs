//! The command line: global kubectl-like flags and the subcommands, as clap derive types.
//! Parsing only; turning arguments into validated settings happens in `settings`.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::model::units::HumanDuration;

const ABOUT: &str = "Back up and restore everything stateful in one Kubernetes namespace";

const LONG_ABOUT: &str = "\
Back up and restore everything stateful in one Kubernetes namespace.

kentledge takes application-consistent CSI snapshots (pre/post hooks run by pod exec), copies
them offsite into BorgBackup and restic repositories, dumps MySQL/MariaDB and PostgreSQL
databases, backs up S3 buckets, keeps retention in labels (no CRDs, no operator) and restores
all of it. Every command reads one namespace-scoped config file (see `kentledge check`).";

const AFTER_HELP: &str = "\
Exit codes: 0 success, 1 a run failed, 2 usage or config error (nothing was changed),
3 partial success, 4 the run lock is held by another run, 69 not available in this version,
130/143 interrupted by SIGINT/SIGTERM (cleanup and post-hooks ran).";

/// The `kentledge` command line.
#[derive(Debug, Parser)]
#[command(
    name = "kentledge",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Flags that every subcommand accepts.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags shared by all subcommands (kubectl-like).
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The config file.
    #[arg(
        short = 'c',
        long,
        env = "KENTLEDGE_CONFIG",
        hide_env_values = true,
        default_value = "kentledge.yaml",
        value_name = "FILE",
        global = true
    )]
    pub config: PathBuf,

    /// The kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else in-cluster].
    #[arg(long, value_name = "FILE", global = true)]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use [default: the current context].
    #[arg(long, value_name = "NAME", global = true)]
    pub context: Option<String>,

    /// The namespace [default: the config's metadata.namespace, else the pod's namespace in a cluster].
    #[arg(short = 'n', long, value_name = "NAME", global = true)]
    pub namespace: Option<String>,

    /// Print the plan and change nothing.
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// Format of results and summaries on stdout.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,

    /// Format of log lines on stderr: auto is text on a terminal, JSON lines otherwise.
    #[arg(long, value_enum, default_value_t = LogFormat::Auto, global = true)]
    pub log_format: LogFormat,

    /// More log detail (-v debug, -vv trace).
    #[arg(short = 'v', long, action = ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Less log detail (-q warnings only, -qq errors only).
    #[arg(short = 'q', long, action = ArgAction::Count, global = true, conflicts_with = "verbose")]
    pub quiet: u8,
}

/// Result formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Tables and sentences for people.
    Text,
    /// One JSON document for machines.
    Json,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Text on a terminal, JSON lines otherwise.
    Auto,
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Take application-consistent CSI snapshots of the config's PVCs (hooks, then snapshots).
    Snapshot(SnapshotArgs),
    /// Copy volumes, databases and buckets offsite into borg and restic repositories.
    Backup(BackupArgs),
    /// Apply retention: mark, then delete, snapshots and archives that no rule keeps.
    Prune(PruneArgs),
    /// Restore a volume, a database or a bucket.
    #[command(subcommand)]
    Restore(RestoreCommand),
    /// List snapshots and archives with their retention state.
    List(ListArgs),
    /// How fresh each PVC's, database's and bucket's newest snapshot and copies are, against
    /// spec.status (text, JSON or Prometheus); exits 1 unless everything is fresh.
    Status(StatusArgs),
    /// Validate the config offline; with --repositories, verify the repositories.
    Check(CheckArgs),
    /// Print shell completions.
    Completions(CompletionsArgs),
    /// Print kentledge's version; with --engines, the versions of the engines this image or
    /// machine has (borg, restic, ssh, rsync).
    Version(VersionArgs),
    /// In a mover pod: run one engine job (used by kentledge itself, not by people).
    #[command(hide = true)]
    Mover(MoverArgs),
}

/// `kentledge status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only the snapshots and their backed-up labels (no mover pods: databases and buckets,
    /// which have no snapshots, are then not seen).
    #[arg(long)]
    pub snapshots_only: bool,
    /// Print the Prometheus text exposition format instead of text or JSON.
    #[arg(long)]
    pub prometheus: bool,
}

/// `kentledge version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Also run each engine the mover needs and print its version; exits 1 when one is missing.
    #[arg(long)]
    pub engines: bool,
}

/// `kentledge mover` (inside mover pods).
#[derive(Debug, Args)]
pub struct MoverArgs {
    /// The job, as JSON (no secrets: they are mounted files and env references).
    #[arg(long, value_name = "JSON")]
    pub job: String,
}

impl Command {
    /// The subcommand's name as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Snapshot(_) => "snapshot",
            Command::Backup(_) => "backup",
            Command::Prune(_) => "prune",
            Command::Restore(_) => "restore",
            Command::List(_) => "list",
            Command::Status(_) => "status",
            Command::Check(_) => "check",
            Command::Completions(_) => "completions",
            Command::Version(_) => "version",
            Command::Mover(_) => "mover",
        }
    }
}

/// Where a scheduled run's results go besides stdout.
#[derive(Debug, Args, Clone)]
pub struct PushArgs {
    /// Push the run's results (each target's success, bytes and duration; the run's exit code
    /// and duration) to this Prometheus Pushgateway (`http://pushgateway:9091`).
    #[arg(long, value_name = "URL", env = "KENTLEDGE_PUSHGATEWAY")]
    pub pushgateway: Option<String>,
}

/// Waiting for the run lock.
#[derive(Debug, Args, Clone)]
pub struct LockArgs {
    /// How long to wait for another run of this config to finish before failing.
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub lock_timeout: HumanDuration,
}

/// `kentledge snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Only these PVCs (repeatable); default: every PVC the config's targets select.
    #[arg(long = "target", value_name = "PVC")]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub push: PushArgs,
}

/// `kentledge backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Only these PVCs, databases or buckets (repeatable); default: everything in spec.offsite.
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
    /// Only these repositories (repeatable).
    #[arg(long = "repository", value_name = "NAME")]
    pub repositories: Vec<String>,
    /// Take a snapshot first (hooks included) and back that up.
    #[arg(long, conflicts_with = "from")]
    pub snapshot_now: bool,
    /// Back up this VolumeSnapshot instead of each PVC's newest ready one.
    #[arg(long, value_name = "SNAPSHOT")]
    pub from: Option<String>,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub push: PushArgs,
}

/// What `prune` works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PruneScope {
    /// VolumeSnapshots and repositories.
    All,
    /// Only VolumeSnapshots.
    Snapshots,
    /// Only repository archives.
    Repositories,
}

/// `kentledge prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// What to prune.
    #[arg(long, value_enum, default_value_t = PruneScope::All)]
    pub only: PruneScope,
    /// Evaluate retention as if it were this time (RFC 3339, e.g. 2026-11-21T03:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub now: Option<jiff::Timestamp>,
    #[command(flatten)]
    pub lock: LockArgs,
}

/// `kentledge restore …`.
#[derive(Debug, Subcommand)]
pub enum RestoreCommand {
    /// Restore a PVC from a snapshot or from a repository archive.
    Volume(RestoreVolumeArgs),
    /// Restore a database dump into its database.
    Database(RestoreDatabaseArgs),
    /// Restore a bucket's objects from a repository archive.
    Bucket(RestoreBucketArgs),
}

/// Where restored data comes from.
#[derive(Debug, Args)]
pub struct RestoreSource {
    /// Restore from an archive in this repository.
    #[arg(long, value_name = "NAME")]
    pub repository: Option<String>,
    /// The archive (borg archive name or restic snapshot id); default: the newest.
    #[arg(long, value_name = "ID", requires = "repository")]
    pub archive: Option<String>,
    /// The newest archive taken at or before this time (RFC 3339).
    #[arg(
        long,
        value_name = "TIME",
        conflicts_with = "archive",
        requires = "repository"
    )]
    pub as_of: Option<jiff::Timestamp>,
}

/// `kentledge restore volume`.
#[derive(Debug, Args)]
pub struct RestoreVolumeArgs {
    /// The PVC whose data is restored.
    pub pvc: String,
    /// Restore from this VolumeSnapshot (or give --repository).
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with_all = ["repository", "archive", "as_of"],
        required_unless_present_any = ["repository", "resume"]
    )]
    pub snapshot: Option<String>,
    #[command(flatten)]
    pub source: RestoreSource,
    /// Restore into a new PVC of this name (or give --in-place).
    #[arg(
        long,
        value_name = "PVC",
        conflicts_with = "in_place",
        required_unless_present = "in_place"
    )]
    pub to: Option<String>,
    /// Restore into the PVC itself: scale its workloads down, take a safety snapshot, restore, scale up.
    #[arg(long)]
    pub in_place: bool,
    /// With --in-place: also stop what is refused by default (repeatable): bare-pods (deleted, not
    /// recreated), autoscaled (scaled to 0, which pauses the autoscaler), gitops (may be scaled
    /// back up by its controller: suspend its sync first).
    #[arg(long, value_enum, value_name = "WHAT", requires = "in_place")]
    pub accept: Vec<Accept>,
    /// With --in-place: finish or roll back an in-place restore that a killed run left.
    #[arg(long, requires = "in_place", conflicts_with_all = ["snapshot", "repository"])]
    pub resume: bool,
    /// With --to: the new PVC's size [default: the source PVC's, else room for the data].
    #[arg(long, value_name = "QUANTITY", requires = "to")]
    pub size: Option<String>,
    /// With --to: the new PVC's storage class [default: the source PVC's, else the cluster's default].
    #[arg(long, value_name = "NAME", requires = "to")]
    pub storage_class: Option<String>,
    #[command(flatten)]
    pub lock: LockArgs,
}

/// What an in-place restore may stop although it is refused by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Accept {
    /// Pods of no workload that mount the PVC: deleted, not recreated.
    BarePods,
    /// Workloads a HorizontalPodAutoscaler scales.
    Autoscaled,
    /// Workloads a GitOps controller (Flux, Argo CD) manages.
    Gitops,
}

/// `kentledge restore database`.
#[derive(Debug, Args)]
pub struct RestoreDatabaseArgs {
    /// The database series (spec.offsite.databases[].name).
    pub name: String,
    #[command(flatten)]
    pub source: RestoreSource,
    /// This database of the entry's dumps [default: the only one the repository has dumps of].
    #[arg(long, value_name = "DB")]
    pub database: Option<String>,
    /// Load it into this database (created; the usual way to get a table back without
    /// touching production) [default: the database's own name].
    #[arg(long, value_name = "DB")]
    pub to_database: Option<String>,
    /// Replace the target database if it exists, after dumping it into the same repository
    /// (the safety dump, named in the output); without it an existing target is refused.
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub lock: LockArgs,
}

/// `kentledge restore bucket`.
#[derive(Debug, Args)]
pub struct RestoreBucketArgs {
    /// The bucket series (spec.offsite.buckets[].name).
    pub name: String,
    #[command(flatten)]
    pub source: RestoreSource,
    /// Restore into this bucket instead of the original.
    #[arg(long, value_name = "BUCKET")]
    pub to_bucket: Option<String>,
    /// Restore under this prefix instead of the original (the archive's prefix is replaced by
    /// it in every key).
    #[arg(long, value_name = "PREFIX")]
    pub to_prefix: Option<String>,
    /// Rewrite objects of the target prefix whose bytes differ from the archive's; without it
    /// such objects stop the restore before anything is written.
    #[arg(long)]
    pub overwrite: bool,
    /// Delete objects of the target prefix the archive does not have; without it (or
    /// --overwrite, which leaves them) such objects stop the restore before anything is written.
    #[arg(long)]
    pub delete_extra: bool,
    #[command(flatten)]
    pub lock: LockArgs,
}

/// What `list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListWhat {
    /// Snapshots and archives.
    All,
    /// VolumeSnapshots with their retention labels.
    Snapshots,
    /// Repository archives.
    Archives,
}

/// `kentledge list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// What to list.
    #[arg(value_enum, default_value_t = ListWhat::All)]
    pub what: ListWhat,
    /// Only this repository's archives (repeatable).
    #[arg(long = "repository", value_name = "NAME")]
    pub repositories: Vec<String>,
    /// Only this series: a PVC, database or bucket name (repeatable).
    #[arg(long = "series", value_name = "NAME")]
    pub series: Vec<String>,
    /// Only restore points taken at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub since: Option<jiff::Timestamp>,
    /// Only restore points taken at or before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub until: Option<jiff::Timestamp>,
    /// Ask the engines for each archive's size and file count (borg info, restic stats before
    /// 0.17): slower; restic 0.17 and newer list them anyway.
    #[arg(long)]
    pub sizes: bool,
}

/// `kentledge check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also verify every repository (borg check / restic check) in mover pods.
    #[arg(long)]
    pub repositories: bool,
    /// With --repositories: also read this share of the data (e.g. 5%).
    #[arg(long, value_name = "SUBSET", requires = "repositories")]
    pub read_data: Option<String>,
}

/// `kentledge completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every subcommand's `--help`, rendered at a fixed width, is a reviewed snapshot.
    #[test]
    fn help_texts() {
        fn walk(cmd: &mut clap::Command, prefix: &str) {
            let name = if prefix.is_empty() {
                cmd.get_name().to_owned()
            } else {
                format!("{prefix} {}", cmd.get_name())
            };
            let help = cmd.render_long_help().to_string();
            insta::assert_snapshot!(name.replace(' ', "__"), help);
            for sub in cmd.get_subcommands_mut() {
                walk(sub, &name);
            }
        }
        let mut cmd = Cli::command().term_width(100);
        cmd.build();
        walk(&mut cmd, "");
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "kentledge",
            "snapshot",
            "-n",
            "shop",
            "--dry-run",
            "-o",
            "json",
            "-c",
            "x.yaml",
        ])
        .unwrap();
        assert_eq!(cli.global.namespace.as_deref(), Some("shop"));
        assert!(cli.global.dry_run);
        assert_eq!(cli.global.output, Output::Json);
        assert_eq!(cli.global.config, PathBuf::from("x.yaml"));
    }

    #[test]
    fn durations_and_times_are_parsed_by_clap() {
        let cli = Cli::try_parse_from([
            "kentledge",
            "prune",
            "--now",
            "2026-11-21T03:00:00Z",
            "--lock-timeout",
            "90s",
        ])
        .unwrap();
        let Command::Prune(p) = cli.command else {
            panic!("not prune")
        };
        assert_eq!(p.lock.lock_timeout.as_secs(), 90);
        assert_eq!(p.now.unwrap().to_string(), "2026-11-21T03:00:00Z");
        let err = Cli::try_parse_from(["kentledge", "prune", "--lock-timeout", "ten"]).unwrap_err();
        assert!(err.to_string().contains("expected a duration"), "{err}");
    }

    #[test]
    fn restore_volume_needs_a_source_and_a_destination() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from([&["kentledge", "restore", "volume", "data"], args].concat())
        };
        assert!(parse(&["--snapshot", "s", "--to", "data-restored"]).is_ok());
        assert!(parse(&["--repository", "r", "--in-place"]).is_ok());
        assert!(parse(&["--to", "x"]).is_err(), "no source");
        assert!(parse(&["--snapshot", "s"]).is_err(), "no destination");
        assert!(
            parse(&["--snapshot", "s", "--repository", "r", "--to", "x"]).is_err(),
            "two sources"
        );
        assert!(
            parse(&["--snapshot", "s", "--archive", "a", "--to", "x"]).is_err(),
            "archive needs repository"
        );
    }

    #[test]
    fn verbose_and_quiet_conflict() {
        assert!(Cli::try_parse_from(["kentledge", "check", "-v", "-q"]).is_err());
    }
}
