//! `kentledge restore volume` and `restore database` ([`crate::flows::restore`]); bucket
//! restores are not in this version yet and say so.

use crate::cli::{self, GlobalArgs, RestoreCommand, RestoreDatabaseArgs, RestoreVolumeArgs};
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
        RestoreCommand::Bucket(_) => {
            return Err(Error::NotImplemented {
                command: "restore bucket".into(),
                version: env!("CARGO_PKG_VERSION"),
                what: "bucket restores land with bucket backups",
            });
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
    let entries = &settings.config.spec.offsite.databases;
    let Some(entry) = entries.iter().find(|d| d.name == a.name) else {
        return Err(bad(
            "NAME",
            &a.name,
            if entries.is_empty() {
                "spec.offsite.databases is empty".into()
            } else {
                format!(
                    "not one of spec.offsite.databases ({})",
                    entries
                        .iter()
                        .map(|d| d.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        ));
    };
    if let Some(r) = &a.source.repository {
        super::check_repository(settings, r)?;
        if !entry.repositories.contains(r) {
            return Err(bad(
                "--repository",
                r,
                format!(
                    "database {} is dumped to {}, not to it",
                    entry.name,
                    entry.repositories.join(", ")
                ),
            ));
        }
    }
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
