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

/// `restic backup` of the current directory (a bucket's mirror, kept between runs, so inodes and
/// ctimes hold), with `parent`, the series' newest snapshot, to compare files with (restic
/// would choose none: it matches parents by paths and host).
pub fn backup_mirror(
    series: &Series,
    time: Timestamp,
    tuning: Tuning<'_>,
    parent: Option<&str>,
) -> Vec<String> {
    let mut a: Vec<String> = ["restic", "backup", "--json", "--host", HOST, "--time"]
        .map(String::from)
        .into();
    a.push(time.strftime("%Y-%m-%d %H:%M:%S").to_string());
    a.push("--tag".into());
    a.push(series.restic_tags().join(","));
    if let Some(p) = parent {
        a.push("--parent".into());
        a.push(p.to_owned());
    }
    tuning.push(&mut a, "--limit-upload");
    a.push(".".into());
    a
}

/// `restic backup --stdin` of what is piped in, stored as the file `file_name`, with the archive
/// time `time` (restic 0.14 has no `--stdin-from-command`: a failed stream's snapshot is forgotten
/// by the caller).
pub fn backup_stdin(
    series: &Series,
    time: Timestamp,
    tuning: Tuning<'_>,
    file_name: &str,
) -> Vec<String> {
    let mut a: Vec<String> = ["restic", "backup", "--json", "--stdin", "--stdin-filename"]
        .map(String::from)
        .into();
    a.push(file_name.to_owned());
    a.extend(["--host".to_owned(), HOST.to_owned(), "--time".to_owned()]);
    a.push(time.strftime("%Y-%m-%d %H:%M:%S").to_string());
    a.push("--tag".into());
    a.push(series.restic_tags().join(","));
    tuning.push(&mut a, "--limit-upload");
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

/// `restic restore ID --target DIR`, with `--sparse` where the version has it (0.15 and newer).
pub fn restore(id: &str, target: &str, sparse: bool) -> Vec<String> {
    let mut a: Vec<String> = ["restic", "restore", id, "--target", target]
        .map(String::from)
        .into();
    if sparse {
        a.push("--sparse".into());
    }
    a
}

/// `restic dump ID /FILE`: one file of a snapshot (a dump stored from stdin) on stdout.
pub fn dump(id: &str, file: &str) -> Vec<String> {
    vec![
        "restic".into(),
        "dump".into(),
        id.to_owned(),
        format!("/{file}"),
    ]
}

/// `restic dump ID /`: the whole snapshot as a tar stream on stdout, in name order.
pub fn dump_tree(id: &str) -> Vec<String> {
    ["restic", "dump", id, "/"].map(String::from).into()
}

/// `restic ls --json ID`: the snapshot, then every node, one JSON object a line.
pub fn ls(id: &str) -> Vec<String> {
    ["restic", "ls", "--json", id].map(String::from).into()
}

/// Whether `restic version` output (`restic 0.14.0 compiled with …`) is 0.15 or newer, the first
/// to restore sparse files sparse.
pub fn restores_sparse(version: &str) -> bool {
    let v = version.split_whitespace().nth(1).unwrap_or_default();
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (0, 15)
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
    fn restore_command_lines_and_versions() {
        insta::assert_snapshot!(restore("a1b2", "/data", false).join(" "), @"restic restore a1b2 --target /data");
        insta::assert_snapshot!(restore("a1b2", "/data", true).join(" "), @"restic restore a1b2 --target /data --sparse");
        insta::assert_snapshot!(ls("a1b2").join(" "), @"restic ls --json a1b2");
        assert!(!restores_sparse(
            "restic 0.14.0 compiled with go1.19.8 on linux/amd64"
        ));
        assert!(restores_sparse(
            "restic 0.15.2 compiled with go1.20 on linux/amd64"
        ));
        assert!(restores_sparse(
            "restic 0.18.1 compiled with go1.24 on linux/amd64"
        ));
        assert!(restores_sparse("restic 1.0.0"));
        assert!(!restores_sparse("garbage"));
    }

    #[test]
    fn listing_and_forgetting_are_scoped_by_tags() {
        insta::assert_snapshot!(snapshots(&series().restic_tags()).join(" "), @"restic snapshots --json --host kentledge --tag kentledge,config=blog,namespace=web,kind=db,name=blogdb");
        insta::assert_snapshot!(forget(&["a1b2".into(), "c3d4".into()]).join(" "), @"restic forget --json a1b2 c3d4");
    }
}
