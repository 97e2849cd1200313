//! `kentledge restore volume`, `restore database` and `restore bucket`
//! ([`crate::flows::restore`]): their options checked against the config before any API call.

use crate::cli::{
    self, GlobalArgs, RestoreBucketArgs, RestoreCommand, RestoreDatabaseArgs, RestoreVolumeArgs,
};
use crate::error::Error;
use crate::flows::restore::{Target, VolumeOptions};
use crate::model::names::check_dns1123_subdomain;
use crate::plan::restore::inplace::Accept;
use crate::runtime::output;
use crate::settings;

/// Runs `kentledge restore …`.
pub fn run(global: &GlobalArgs, cmd: &RestoreCommand) -> Result<u8, Error> {
    let settings = settings::load(global)?;
    let args = match cmd {
        RestoreCommand::Volume(a) => a,
        RestoreCommand::Database(a) => {
            let opts = database_options(&settings, a)?;
            let mut results = output::Results::new(global.output.into());
            let code = super::runtime()?.block_on(async {
                let (client, interrupt) = super::connect(global).await?;
                crate::flows::restore::database(&settings, &opts, &client, &interrupt, &mut results)
                    .await
            });
            results.finish()?;
            return code;
        }
        RestoreCommand::Bucket(a) => {
            let opts = bucket_options(&settings, a)?;
            let mut results = output::Results::new(global.output.into());
            let code = super::runtime()?.block_on(async {
                let (client, interrupt) = super::connect(global).await?;
                crate::flows::restore::bucket(&settings, &opts, &client, &interrupt, &mut results)
                    .await
            });
            results.finish()?;
            return code;
        }
    };
    let opts = options(&settings, args)?;
    let mut results = output::Results::new(global.output.into());
    let code = super::runtime()?.block_on(async {
        let (client, interrupt) = super::connect(global).await?;
        crate::flows::restore::volume(&settings, &opts, &client, &interrupt, &mut results).await
    });
    results.finish()?;
    code
}

/// The options, checked against the config before any API call.
fn options(settings: &settings::Settings, a: &RestoreVolumeArgs) -> Result<VolumeOptions, Error> {
    let bad = |flag, value: &str, reason: String| Error::BadArgument {
        flag,
        value: value.to_owned(),
        reason,
    };
    check_dns1123_subdomain(&a.pvc).map_err(|r| bad("PVC", &a.pvc, r))?;
    if let Some(to) = &a.to {
        check_dns1123_subdomain(to).map_err(|r| bad("--to", to, r))?;
        if to == &a.pvc {
            return Err(bad(
                "--to",
                to,
                "is the PVC itself: restore into it with --in-place".into(),
            ));
        }
    }
    if let Some(r) = &a.source.repository {
        super::check_repository(settings, r)?;
    }
    if let Some(s) = &a.size
        && crate::model::units::quantity_bytes(s).is_none()
    {
        return Err(bad("--size", s, "not a storage size such as 10Gi".into()));
    }
    Ok(VolumeOptions {
        pvc: a.pvc.clone(),
        snapshot: a.snapshot.clone(),
        repository: a.source.repository.clone(),
        archive: a.source.archive.clone(),
        as_of: a.source.as_of,
        target: match &a.to {
            Some(t) => Target::New(t.clone()),
            None => Target::InPlace,
        },
        size: a.size.clone(),
        storage_class: a.storage_class.clone(),
        accept: Accept {
            bare_pods: a.accept.contains(&cli::Accept::BarePods),
            autoscaled: a.accept.contains(&cli::Accept::Autoscaled),
            gitops: a.accept.contains(&cli::Accept::Gitops),
        },
        resume: a.resume,
        lock_timeout: a.lock.lock_timeout.0,
    })
}

/// A database name kentledge can pass on (as an argument, or quoted as an identifier): not
/// empty, at most 63 bytes (PostgreSQL's limit; MariaDB's is 64 characters), no NUL or line
/// breaks.
fn check_database_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err("must be 1 to 63 bytes".into());
    }
    if name.contains(['\0', '\n', '\r']) {
        return Err("must not hold NUL or line breaks".into());
    }
    Ok(())
}

/// The options of a database restore, checked against the config before any API call.
fn database_options(
    settings: &settings::Settings,
    a: &RestoreDatabaseArgs,
) -> Result<crate::flows::restore::DatabaseOptions, Error> {
    let bad = |flag, value: &str, reason: String| Error::BadArgument {
        flag,
        value: value.to_owned(),
        reason,
    };
    let entry = find_entry(
        &settings.config.spec.offsite.databases,
        &a.name,
        "spec.offsite.databases",
        |d| &d.name,
    )?;
    entry_repository(
        settings,
        a.source.repository.as_deref(),
        &format!("database {}", entry.name),
        &entry.repositories,
        "dumped",
    )?;
    if let Some(db) = &a.database {
        check_database_name(db).map_err(|r| bad("--database", db, r))?;
    }
    if let Some(db) = &a.to_database {
        check_database_name(db).map_err(|r| bad("--to-database", db, r))?;
        if crate::engines::databases::is_system(entry.engine, db) {
            return Err(bad(
                "--to-database",
                db,
                "is one of the server's own databases: kentledge never restores into it".into(),
            ));
        }
    }
    Ok(crate::flows::restore::DatabaseOptions {
        name: a.name.clone(),
        repository: a.source.repository.clone(),
        archive: a.source.archive.clone(),
        as_of: a.source.as_of,
        database: a.database.clone(),
        to_database: a.to_database.clone(),
        replace: a.replace,
        lock_timeout: a.lock.lock_timeout.0,
    })
}

/// The options of `restore bucket`, checked against the config before any API call.
fn bucket_options(
    settings: &settings::Settings,
    a: &RestoreBucketArgs,
) -> Result<crate::flows::restore::BucketOptions, Error> {
    let bad = |flag, value: &str, reason: String| Error::BadArgument {
        flag,
        value: value.to_owned(),
        reason,
    };
    let entry = find_entry(
        &settings.config.spec.offsite.buckets,
        &a.name,
        "spec.offsite.buckets",
        |b| &b.name,
    )?;
    entry_repository(
        settings,
        a.source.repository.as_deref(),
        &format!("bucket {}", entry.name),
        &entry.repositories,
        "copied",
    )?;
    if let Some(b) = &a.to_bucket {
        crate::config::check_bucket_name(b).map_err(|r| bad("--to-bucket", b, r))?;
    }
    if let Some(p) = &a.to_prefix {
        if p.starts_with('/') || p.contains('\0') {
            return Err(bad(
                "--to-prefix",
                p,
                "S3 keys do not start with '/' or hold NUL".into(),
            ));
        }
        // The archive's prefix is replaced by it: `photos/a` under `restored` would be `restoreda`.
        let own = entry.prefix.as_deref().unwrap_or_default();
        if own.ends_with('/') && !p.is_empty() && !p.ends_with('/') {
            return Err(bad(
                "--to-prefix",
                p,
                format!(
                    "the bucket's prefix {own:?} ends with '/' and replaces it in every key: end this one with '/' too (\"{p}/\")"
                ),
            ));
        }
    }
    Ok(crate::flows::restore::BucketOptions {
        name: a.name.clone(),
        repository: a.source.repository.clone(),
        archive: a.source.archive.clone(),
        as_of: a.source.as_of,
        to_bucket: a.to_bucket.clone(),
        to_prefix: a.to_prefix.clone(),
        overwrite: a.overwrite,
        delete_extra: a.delete_extra,
        lock_timeout: a.lock.lock_timeout.0,
    })
}

/// The entry `name` of `entries` (the config's list at `list`), or a usage error naming them.
fn find_entry<'a, T>(
    entries: &'a [T],
    name: &str,
    list: &str,
    name_of: impl Fn(&T) -> &str,
) -> Result<&'a T, Error> {
    entries
        .iter()
        .find(|e| name_of(e) == name)
        .ok_or_else(|| Error::BadArgument {
            flag: "NAME",
            value: name.to_owned(),
            reason: if entries.is_empty() {
                format!("{list} is empty")
            } else {
                format!(
                    "not one of {list} ({})",
                    entries.iter().map(&name_of).collect::<Vec<_>>().join(", ")
                )
            },
        })
}

/// `--repository`, when given: a repository of the config that the entry goes to.
fn entry_repository(
    settings: &settings::Settings,
    repository: Option<&str>,
    entry: &str,
    repositories: &[String],
    verb: &str,
) -> Result<(), Error> {
    let Some(r) = repository else { return Ok(()) };
    super::check_repository(settings, r)?;
    if repositories.iter().any(|x| x == r) {
        return Ok(());
    }
    Err(Error::BadArgument {
        flag: "--repository",
        value: r.to_owned(),
        reason: format!(
            "{entry} is {verb} to {}, not to it",
            repositories.join(", ")
        ),
    })
}
