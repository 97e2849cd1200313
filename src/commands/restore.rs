//! `kentledge restore volume` ([`crate::flows::restore`]); database and bucket restores are not
//! in this version yet and say so.

use crate::cli::{self, GlobalArgs, RestoreCommand, RestoreVolumeArgs};
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
        RestoreCommand::Database(_) | RestoreCommand::Bucket(_) => {
            return Err(Error::NotImplemented {
                command: "restore".into(),
                version: env!("CARGO_PKG_VERSION"),
                what: "database and bucket restores land with database and bucket backups",
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
