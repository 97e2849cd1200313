//! `kentledge check`: validates the config offline (no API call), and prints what it covers.

use serde_json::json;

use crate::cli::{CheckArgs, GlobalArgs, Output};
use crate::config::{self, Config, ConfigError, LoadError};
use crate::error::{Error, exit};
use crate::runtime::output;

/// Validates the config; exit 0 when valid, 2 with every problem when not.
pub fn run(global: &GlobalArgs, args: &CheckArgs) -> Result<u8, Error> {
    let file = global.config.display().to_string();
    let config = match config::load_file(&global.config) {
        Ok(c) => c,
        Err(LoadError::Invalid(e)) => {
            if global.output == Output::Json {
                output::print_json(&problems_json(&e))?;
            }
            return Err(Error::Config(LoadError::Invalid(e)));
        }
        Err(e) => return Err(e.into()),
    };
    let mut results = output::Results::new(global.output.into());
    results.emit(
        || summary(&file, &config, global.namespace.as_deref()),
        || json!({"file": file, "valid": true, "config": config}),
    )?;
    let code = if args.repositories {
        let settings = crate::settings::load(global)?;
        super::runtime()?.block_on(async {
            let (client, interrupt) = super::connect(global).await?;
            let read_data = args.read_data.as_deref();
            crate::flows::repositories::check(
                &settings,
                &client,
                read_data,
                &interrupt,
                &mut results,
            )
            .await
        })
    } else {
        Ok(exit::SUCCESS)
    };
    results.finish()?;
    code
}

/// The problems of an invalid config as JSON.
pub fn problems_json(e: &ConfigError) -> serde_json::Value {
    json!({
        "file": e.file,
        "valid": false,
        "problems": e.problems.iter().map(|p| json!({
            "line": p.pos.map(|p| p.line),
            "column": p.pos.map(|p| p.column),
            "path": p.path,
            "message": p.message,
        })).collect::<Vec<_>>(),
    })
}

/// A human summary of what a valid config covers.
pub fn summary(file: &str, c: &Config, namespace_flag: Option<&str>) -> String {
    let s = &c.spec;
    let namespace = namespace_flag
        .or(c.metadata.namespace.as_deref())
        .unwrap_or("(the pod's namespace)");
    let mut out = format!("{file}: valid\n");
    out.push_str(&format!(
        "  config        {} in namespace {}, periods in {}\n",
        c.metadata.name, namespace, s.timezone
    ));
    let retention = s
        .snapshots
        .retention
        .as_ref()
        .map_or_else(|| "none (prune keeps all)".to_owned(), |r| r.to_string());
    out.push_str(&format!(
        "  snapshots     {} target{}, {} hook{}, retention: {retention}\n",
        s.snapshots.targets.len(),
        plural(s.snapshots.targets.len()),
        s.snapshots.hooks.len(),
        plural(s.snapshots.hooks.len()),
    ));
    for r in &s.repositories {
        let retention = r
            .retention
            .as_ref()
            .map_or_else(|| "none (prune keeps all)".to_owned(), |r| r.to_string());
        out.push_str(&format!(
            "  repository    {} ({} {}), retention: {retention}\n",
            r.name,
            r.engine(),
            r.location()
        ));
    }
    if let Some(v) = &s.offsite.volumes {
        out.push_str(&format!(
            "  volumes       -> {}\n",
            v.repositories.join(", ")
        ));
    }
    for d in &s.offsite.databases {
        out.push_str(&format!(
            "  database      {} ({}) -> {}\n",
            d.name,
            d.engine.name(),
            d.repositories.join(", ")
        ));
    }
    for b in &s.offsite.buckets {
        out.push_str(&format!(
            "  bucket        {} ({}/{}) -> {}\n",
            b.name,
            b.endpoint,
            b.bucket,
            b.repositories.join(", ")
        ));
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
