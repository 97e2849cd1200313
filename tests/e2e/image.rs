//! The image's runtime filesystem (`scripts/image.sh rootfs`: Debian packages assembled by
//! mmdebstrap, the filesystem `make image` packs with the release binary) runs the mover's real
//! work: the kentledge binary put in it, chrooted, as the image's non-root user, backs a tree up
//! into borg and restic repositories and restores it whole, so a missing library or a wrong
//! engine version in the image fails here.

use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::path::Path;
use std::process::Command;

use kentledge::engines::{Series, SeriesKind};
use kentledge::mover::job::{Access, Action, Engine, Job, MoverEvent};

use crate::support::root;

/// The image's user.
const UID: u32 = 65532;

fn chroot(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new("/usr/sbin/chroot")
        .arg(format!("--userspec={UID}:{UID}"))
        .arg(dir)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/home/kentledge")
        .output()
        .expect("chroot");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn own(path: &Path) {
    for e in walk(path) {
        chown(&e, Some(UID), Some(UID)).unwrap();
    }
}

fn walk(path: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![path.to_owned()];
    if path.is_dir() && !path.is_symlink() {
        for e in std::fs::read_dir(path).unwrap() {
            out.extend(walk(&e.unwrap().path()));
        }
    }
    out
}

/// Every entry under `dir`: relative path, kind, mode, bytes (files) or target (links).
fn tree(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = walk(dir)
        .into_iter()
        .skip(1)
        .map(|p| {
            let m = std::fs::symlink_metadata(&p).unwrap();
            let what = if m.is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                format!("dir {:o}", m.mode() & 0o7777)
            } else {
                let bytes = std::fs::read(&p).unwrap();
                format!(
                    "file {:o} {} {:x}",
                    m.mode() & 0o7777,
                    bytes.len(),
                    fingerprint(&bytes)
                )
            };
            (p.strip_prefix(dir).unwrap().display().to_string(), what)
        })
        .collect();
    out.sort();
    out
}

fn fingerprint(bytes: &[u8]) -> u128 {
    // Not a cryptographic need: a cheap fingerprint of the contents.
    bytes.iter().fold(0xcbf29ce484222325u128, |h, b| {
        (h ^ u128::from(*b)).wrapping_mul(0x100000001b3)
    })
}

#[test]
fn the_images_filesystem_runs_the_movers_backup_and_restore_with_borg_and_restic() {
    let out = Command::new(root().join("scripts/image.sh"))
        .arg("rootfs")
        .current_dir(root())
        .output()
        .expect("scripts/image.sh");
    assert!(
        out.status.success(),
        "scripts/image.sh rootfs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rootfs = root().join(String::from_utf8_lossy(&out.stdout).trim());
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("root");
    std::fs::create_dir(&img).unwrap();
    let x = Command::new("tar")
        .arg("-xf")
        .arg(&rootfs)
        .arg("-C")
        .arg(&img)
        .status()
        .unwrap();
    assert!(x.success());
    let bin = img.join("usr/local/bin/kentledge");
    std::fs::copy(env!("CARGO_BIN_EXE_kentledge"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();

    // What is inside, as the image's user sees it.
    let (code, versions, err) = chroot(&img, &["kentledge", "version", "--engines"]);
    assert_eq!(code, 0, "{versions}{err}");
    assert!(versions.contains("borg    borg 1.4"), "{versions}");
    assert!(versions.contains("restic  restic 0."), "{versions}");
    assert!(versions.contains("ssh     OpenSSH_"), "{versions}");
    assert!(versions.contains("rsync   rsync"), "{versions}");
    assert!(!versions.contains("MISSING"), "{versions}");
    let passwd = std::fs::read_to_string(img.join("etc/passwd")).unwrap();
    assert!(passwd.contains("kentledge:x:65532:65532"), "{passwd}");

    // The mover's volumes, as a pod would mount them.
    let data = img.join("data");
    std::fs::create_dir_all(data.join("sub/deeper")).unwrap();
    std::fs::write(data.join("hello.txt"), "hello from the image\n").unwrap();
    std::fs::write(data.join("sub/deeper/big.bin"), vec![42u8; 3 << 20]).unwrap();
    std::fs::write(data.join("ünïcødé ✓.txt"), "ü").unwrap();
    std::os::unix::fs::symlink("hello.txt", data.join("link")).unwrap();
    std::fs::set_permissions(
        data.join("hello.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    own(&data);
    let want = tree(&data);
    let secrets = img.join("kentledge/secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("passphrase"), "image test passphrase").unwrap();
    std::fs::set_permissions(
        secrets.join("passphrase"),
        std::fs::Permissions::from_mode(0o400),
    )
    .unwrap();
    for d in ["kentledge/cache", "repository"] {
        std::fs::create_dir_all(img.join(d)).unwrap();
    }
    own(&img.join("kentledge"));
    own(&img.join("repository"));

    let series = Series {
        config: "shop".into(),
        namespace: "shop".into(),
        kind: SeriesKind::Volume,
        name: "data".into(),
    };
    for engine in [Engine::Borg, Engine::Restic] {
        let access = Access {
            name: engine.name().into(),
            engine,
            location: format!("/repository/{}", engine.name()),
            init: Some(if engine == Engine::Borg {
                "repokey-blake2".into()
            } else {
                String::new()
            }),
            passphrase: true,
            ssh: None,
            lock_wait_secs: 5,
            remote_path: None,
            compression: None,
            mover_prefix: "kentledge-mover-".into(),
        };
        let job = |action: Action| {
            Job {
                repository: access.clone(),
                action,
            }
            .to_arg()
        };
        let backup = job(Action::Backup {
            series: series.clone(),
            cut: "2026-12-01T10:00:00Z".parse().unwrap(),
            snapshot: "data-20261201-100000-a1b2".into(),
            upload_limit: None,
            exclude: Vec::new(),
        });
        let (code, said, err) = chroot(&img, &["kentledge", "mover", "--job", &backup]);
        assert_eq!(code, 0, "{engine:?} backup: {said}{err}");
        let archive = said
            .lines()
            .find_map(|l| match MoverEvent::parse(l) {
                Some(MoverEvent::Summary { summary }) => Some(summary.archive),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{engine:?}: no summary in {said}"));
        // Restore into an empty /data, then compare with the tree backed up.
        let kept = img.join(format!("backed-up-{}", engine.name()));
        std::fs::rename(&data, &kept).unwrap();
        std::fs::create_dir(&data).unwrap();
        own(&data);
        let restore = job(Action::Restore {
            series: series.clone(),
            archive,
            replace: false,
        });
        let (code, said, err) = chroot(&img, &["kentledge", "mover", "--job", &restore]);
        assert_eq!(code, 0, "{engine:?} restore: {said}{err}");
        assert!(
            said.lines()
                .any(|l| matches!(MoverEvent::parse(l), Some(MoverEvent::Restored(_)))),
            "{said}"
        );
        assert_eq!(tree(&data), want, "{engine:?}: the restored tree differs");
        std::fs::remove_dir_all(&data).unwrap();
        std::fs::rename(&kept, &data).unwrap();
    }
}

/// `sha256sum FILE`'s digest.
fn sha256(file: &Path) -> String {
    let o = Command::new("sha256sum").arg(file).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn the_oci_archive_is_a_consistent_image_layout_with_the_binary_and_a_non_root_user() {
    let dir = tempfile::tempdir().unwrap();
    // The packaging of `make image`, with this build's binary instead of a release build.
    let out = Command::new(root().join("scripts/image.sh"))
        .arg(env!("CARGO_BIN_EXE_kentledge"))
        .current_dir(root())
        .output()
        .expect("scripts/image.sh");
    assert!(
        out.status.success(),
        "scripts/image.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let archive = root().join(String::from_utf8_lossy(&out.stdout).trim());
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        archive.ends_with(format!("kentledge-{version}.oci.tar")),
        "{archive:?}"
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("image layer") && said.contains("bytes compressed"),
        "{said}"
    );
    let layout = dir.path().join("oci");
    std::fs::create_dir(&layout).unwrap();
    assert!(
        Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&layout)
            .status()
            .unwrap()
            .success()
    );
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    assert_eq!(
        read(&layout.join("oci-layout"))["imageLayoutVersion"],
        "1.0.0"
    );
    let index = read(&layout.join("index.json"));
    let m = &index["manifests"][0];
    assert_eq!(
        m["annotations"]["io.containerd.image.name"],
        format!("ghcr.io/kentledge/kentledge:{version}")
    );
    // Every descriptor names a blob with that digest and size.
    let blob = |d: &serde_json::Value| {
        let digest = d["digest"].as_str().unwrap();
        let p = layout
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap());
        assert_eq!(format!("sha256:{}", sha256(&p)), digest);
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            d["size"].as_u64().unwrap()
        );
        p
    };
    let manifest = read(&blob(m));
    let config = read(&blob(&manifest["config"]));
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(
        config["config"]["Entrypoint"][0],
        "/usr/local/bin/kentledge"
    );
    assert_eq!(config["os"], "linux");
    let layer = blob(&manifest["layers"][0]);
    // The layer's uncompressed digest is the config's diff_id, and it holds the binary.
    let plain = dir.path().join("layer.tar");
    let gunzip = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -dc '{}' > '{}'",
            layer.display(),
            plain.display()
        ))
        .status()
        .unwrap();
    assert!(gunzip.success());
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        format!("sha256:{}", sha256(&plain))
    );
    let listed = Command::new("tar")
        .arg("-tvf")
        .arg(&plain)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.ends_with("./usr/local/bin/kentledge") && l.starts_with("-rwxr-xr-x")),
        "the binary is in the layer"
    );
    assert!(listed.contains("./usr/bin/borg"), "borg is in the layer");
}
