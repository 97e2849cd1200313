//! restic command lines (restic 0.14 and newer). The repository and password come from
//! `RESTIC_REPOSITORY` and `RESTIC_PASSWORD_FILE` in the mover's environment; backends' keys
//! from their own variables. The mover runs with `TZ=UTC`, so `--time` is UTC.

use jiff::Timestamp;

use super::{Series, Tuning};

/// The host name every kentledge snapshot carries (series are told apart by tags).
pub const HOST: &str = "kentledge";

/// `restic backup` of the current directory, tuned for fresh clones (inode and ctime change on
/// every clone), with the snapshot's cut as its time.
pub fn backup(series: &Series, cut: Timestamp, tuning: Tuning<'_>) -> Vec<String> {
    let mut a: Vec<String> = [
        "restic",
        "backup",
        "--json",
        "--ignore-inode",
        "--ignore-ctime",
        "--host",
        HOST,
        "--time",
    ]
    .map(String::from)
    .into();
    a.push(cut.strftime("%Y-%m-%d %H:%M:%S").to_string());
    a.push("--tag".into());
    a.push(series.restic_tags().join(","));
    tuning.push(&mut a, "--limit-upload");
    a.push(".".into());
    a
}

/// `restic snapshots` carrying all of `tags` (a series' or a whole config's, see
/// [`super::scope_tags`]), as JSON.
pub fn snapshots(tags: &[String]) -> Vec<String> {
    vec![
        "restic".into(),
        "snapshots".into(),
        "--json".into(),
        "--host".into(),
        HOST.into(),
        "--tag".into(),
        tags.join(","),
    ]
}

/// `restic forget` of the given snapshot ids (chosen by kentledge's retention engine, so both
/// engines follow the same semantics); `restic prune` frees the space afterwards.
pub fn forget(ids: &[String]) -> Vec<String> {
    let mut a: Vec<String> = ["restic", "forget", "--json"].map(String::from).into();
    a.extend(ids.iter().cloned());
    a
}

/// `restic <command…> --json`: commands on the repository in `RESTIC_REPOSITORY`.
pub fn command(words: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec!["restic".into()];
    a.extend(words.iter().map(|s| (*s).to_owned()));
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::SeriesKind;

    fn series() -> Series {
        Series {
            config: "blog".into(),
            namespace: "web".into(),
            kind: SeriesKind::Database,
            name: "blogdb".into(),
        }
    }

    #[test]
    fn backup_command_line() {
        let a = backup(
            &series(),
            "2026-11-22T10:00:07Z".parse().unwrap(),
            Tuning {
                compression: Some("max"),
                upload_limit: Some(1_000_000),
                exclude: &[],
            },
        );
        insta::assert_snapshot!(a.join(" "), @"restic backup --json --ignore-inode --ignore-ctime --host kentledge --time 2026-11-22 10:00:07 --tag kentledge,config=blog,namespace=web,kind=db,name=blogdb --compression max --limit-upload 976 .");
    }

    #[test]
    fn listing_and_forgetting_are_scoped_by_tags() {
        insta::assert_snapshot!(snapshots(&series().restic_tags()).join(" "), @"restic snapshots --json --host kentledge --tag kentledge,config=blog,namespace=web,kind=db,name=blogdb");
        insta::assert_snapshot!(forget(&["a1b2".into(), "c3d4".into()]).join(" "), @"restic forget --json a1b2 c3d4");
    }
}
