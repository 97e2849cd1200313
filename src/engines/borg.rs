//! borg command lines (borg 1.2 – 1.4). The repository passphrase comes from `BORG_PASSPHRASE`
//! (or `BORG_PASSCOMMAND`) and ssh settings from `BORG_RSH`, both set in the mover's
//! environment; nothing secret is ever an argument.

use jiff::Timestamp;

use super::{Series, Tuning};

/// How to reach and use a borg repository.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Repo {
    /// `ssh://…` or a path in the mover (a repository on a PVC).
    pub location: String,
    /// `--lock-wait`, seconds.
    pub lock_wait_secs: u64,
    /// `--remote-path`.
    pub remote_path: Option<String>,
}

impl Repo {
    fn common(&self, args: &mut Vec<String>) {
        args.push("--lock-wait".into());
        args.push(self.lock_wait_secs.to_string());
        if let Some(p) = &self.remote_path {
            args.push("--remote-path".into());
            args.push(p.clone());
        }
    }
}

/// `borg create` with progress and a JSON result, the archive's time, the repository's
/// settings and the tuning: what every create starts with; `extra` goes before `--timestamp`.
fn create_head(repo: &Repo, time: Timestamp, tuning: Tuning<'_>, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["borg", "create", "--log-json", "--progress", "--json"]
        .map(String::from)
        .into();
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    a.push("--timestamp".into());
    a.push(time.strftime("%Y-%m-%dT%H:%M:%S").to_string());
    repo.common(&mut a);
    tuning.push(&mut a, "--upload-ratelimit");
    a
}

/// `borg create` of the current directory (the mounted clone), tuned for fresh clones: the files
/// cache keys on mtime and size only (every clone has new inodes and ctimes), the archive time
/// is the snapshot's cut.
/// The archive's comment names the VolumeSnapshot copied ([`snapshot_comment`]).
pub fn create(
    repo: &Repo,
    series: &Series,
    cut: Timestamp,
    snapshot: &str,
    tuning: Tuning<'_>,
) -> Vec<String> {
    let mut a = create_head(repo, cut, tuning, &["--files-cache", "mtime,size"]);
    a.push("--comment".into());
    a.push(snapshot_comment(snapshot));
    a.push(format!("{}::{}", repo.location, series.borg_archive(cut)));
    a.push(".".into());
    a
}

/// The comment of a volume's archive: the VolumeSnapshot it holds (archive names carry the cut
/// to the second only, so two snapshots cut in one second have one archive name).
pub fn snapshot_comment(snapshot: &str) -> String {
    format!("kentledge snapshot {snapshot}")
}

/// `borg create` of what `command` prints, stored as the file `file_name`, with the archive
/// time `time` (a dump's start). borg makes no archive when the command exits non-zero.
pub fn create_from_command(
    repo: &Repo,
    series: &Series,
    time: Timestamp,
    tuning: Tuning<'_>,
    file_name: &str,
    command: &[String],
) -> Vec<String> {
    let mut a = create_head(repo, time, tuning, &[]);
    a.push("--content-from-command".into());
    a.push("--stdin-name".into());
    a.push(file_name.to_owned());
    a.push(format!("{}::{}", repo.location, series.borg_archive(time)));
    a.push("--".into());
    a.extend(command.iter().cloned());
    a
}

/// `borg create` of the paths listed in `list` (one a line, relative to the current directory,
/// archived in that order: a bucket's mirror, so that `borg export-tar` writes the objects in
/// key order). The files cache keys on ctime, size and inode (the mirror is kept between runs).
pub fn create_from_list(
    repo: &Repo,
    series: &Series,
    time: Timestamp,
    tuning: Tuning<'_>,
    list: &str,
) -> Vec<String> {
    let mut a = create_head(repo, time, tuning, &["--paths-from-command"]);
    a.push(format!("{}::{}", repo.location, series.borg_archive(time)));
    a.extend(["--".into(), "cat".into(), list.to_owned()]);
    a
}

/// `borg export-tar REPO::ARCHIVE -`: the archive as a tar stream on stdout, items in the
/// archive's order.
pub fn export_tar(repo: &Repo, archive: &str) -> Vec<String> {
    let mut a: Vec<String> = ["borg", "export-tar", "--log-json"]
        .map(String::from)
        .into();
    repo.common(&mut a);
    a.push(format!("{}::{archive}", repo.location));
    a.push("-".into());
    a
}

/// `borg compact`: frees the space of pruned archives (borg ≥ 1.2).
pub fn compact(repo: &Repo) -> Vec<String> {
    let mut a: Vec<String> = ["borg", "compact", "--log-json"].map(String::from).into();
    repo.common(&mut a);
    a.push(repo.location.clone());
    a
}

/// `borg <command> --log-json [--lock-wait …] REPO [more…]` for the repository-level commands.
pub fn repo_command(repo: &Repo, command: &[&str], more: &[String]) -> Vec<String> {
    let mut a: Vec<String> = vec!["borg".into()];
    a.extend(command.iter().map(|s| (*s).to_owned()));
    a.push("--log-json".into());
    repo.common(&mut a);
    a.push(repo.location.clone());
    a.extend(more.iter().cloned());
    a
}

/// `borg init --encryption MODE --make-parent-dirs REPO`.
pub fn init(repo: &Repo, encryption: &str) -> Vec<String> {
    repo_command(
        repo,
        &["init", "--encryption", encryption, "--make-parent-dirs"],
        &[],
    )
}

/// `borg list --json --glob-archives <prefix>* REPO`: the archives whose names start with
/// `prefix` (a series' or a whole config's, see [`super::scope_prefix`]).
pub fn list(repo: &Repo, prefix: &str) -> Vec<String> {
    repo_command(
        repo,
        &["list", "--json", "--glob-archives", &format!("{prefix}*")],
        &[],
    )
}

/// `borg delete REPO ARCHIVE…` (borg 1.2+ takes several archive names).
pub fn delete(repo: &Repo, archives: &[String]) -> Vec<String> {
    repo_command(repo, &["delete"], archives)
}

/// `borg extract` of an archive into the current directory (the restore's volume): owners by
/// number (the names in the mover's image mean nothing), holes kept.
pub fn extract(repo: &Repo, archive: &str) -> Vec<String> {
    let mut a: Vec<String> = [
        "borg",
        "extract",
        "--log-json",
        "--progress",
        "--sparse",
        "--numeric-ids",
    ]
    .map(String::from)
    .into();
    repo.common(&mut a);
    a.push(format!("{}::{archive}", repo.location));
    a
}

/// `borg extract --stdout REPO::ARCHIVE FILE`: one file of an archive (a dump) on stdout.
pub fn extract_stdout(repo: &Repo, archive: &str, file: &str) -> Vec<String> {
    let mut a: Vec<String> = ["borg", "extract", "--log-json", "--stdout"]
        .map(String::from)
        .into();
    repo.common(&mut a);
    a.push(format!("{}::{archive}", repo.location));
    a.push(file.to_owned());
    a
}

/// `borg list --json-lines REPO::ARCHIVE`: every item of an archive, one JSON object a line.
pub fn items(repo: &Repo, archive: &str) -> Vec<String> {
    let mut a: Vec<String> = ["borg", "list", "--json-lines", "--log-json"]
        .map(String::from)
        .into();
    repo.common(&mut a);
    a.push(format!("{}::{archive}", repo.location));
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::SeriesKind;

    fn fixture() -> (Repo, Series) {
        (
            Repo {
                location: "ssh://borg@backup:2222/./shop".into(),
                lock_wait_secs: 600,
                remote_path: Some("borg-1.4".into()),
            },
            Series {
                config: "shop".into(),
                namespace: "prod".into(),
                kind: SeriesKind::Volume,
                name: "data".into(),
            },
        )
    }

    #[test]
    fn create_command_line() {
        let (repo, s) = fixture();
        let a = create(
            &repo,
            &s,
            "2026-11-22T10:00:07Z".parse().unwrap(),
            "data-20261122-100007-k3x9",
            Tuning {
                compression: Some("zstd,3"),
                upload_limit: Some(10 * 1024 * 1024),
                exclude: &["lost+found".into()],
            },
        );
        insta::assert_snapshot!(a.join(" "), @"borg create --log-json --progress --json --files-cache mtime,size --timestamp 2026-11-22T10:00:07 --lock-wait 600 --remote-path borg-1.4 --compression zstd,3 --upload-ratelimit 10240 --exclude lost+found --comment kentledge snapshot data-20261122-100007-k3x9 ssh://borg@backup:2222/./shop::kentledge_shop_prod_vol_data_2026-11-22T10-00-07Z .");
    }

    #[test]
    fn extract_and_items_command_lines() {
        let (repo, _) = fixture();
        insta::assert_snapshot!(extract(&repo, "a1").join(" "), @"borg extract --log-json --progress --sparse --numeric-ids --lock-wait 600 --remote-path borg-1.4 ssh://borg@backup:2222/./shop::a1");
        insta::assert_snapshot!(items(&repo, "a1").join(" "), @"borg list --json-lines --log-json --lock-wait 600 --remote-path borg-1.4 ssh://borg@backup:2222/./shop::a1");
    }

    #[test]
    fn listing_can_be_scoped_to_a_series_and_compact_frees_the_space() {
        let (repo, s) = fixture();
        insta::assert_snapshot!(list(&repo, &s.borg_prefix()).join(" "), @"borg list --json --glob-archives kentledge_shop_prod_vol_data_* --log-json --lock-wait 600 --remote-path borg-1.4 ssh://borg@backup:2222/./shop");
        insta::assert_snapshot!(compact(&repo).join(" "), @"borg compact --log-json --lock-wait 600 --remote-path borg-1.4 ssh://borg@backup:2222/./shop");
    }
}
