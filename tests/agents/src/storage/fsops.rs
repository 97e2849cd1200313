//! Volume data on disk: point-in-time copies that keep everything a backup must (modes, owners,
//! timestamps, symlinks, hard links, sparse files, xattrs), sizes, and removal.

use std::path::Path;

use tokio::process::Command;

/// Copies the contents of `src` into `dst` (created if needed) with `cp -a --sparse=always`.
pub async fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dst).await?;
    let out = Command::new("cp")
        .arg("-a")
        .arg("--sparse=always")
        .arg(format!("{}/.", src.display()))
        .arg(dst)
        .output()
        .await?;
    succeeded(&out, || format!("cp {} {}", src.display(), dst.display()))
}

/// `Ok` when the command of `out` succeeded; else an error naming it (`what`) with its stderr.
fn succeeded(out: &std::process::Output, what: impl FnOnce() -> String) -> std::io::Result<()> {
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{}: {}",
            what(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The apparent size of a tree in bytes (`du -sb`).
pub async fn tree_size(dir: &Path) -> std::io::Result<u64> {
    let out = Command::new("du").arg("-sb").arg(dir).output().await?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("du -sb {}: no size", dir.display())))
}

/// Removes a directory tree; a missing one is fine.
pub async fn remove_tree(dir: &Path) -> std::io::Result<()> {
    match tokio::fs::remove_dir_all(dir).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Mounts a tmpfs of `bytes` on `dir` (created if needed), or resizes the one there
/// (`remount`): a volume that holds no more than its size.
pub async fn mount_limited(dir: &Path, bytes: u64, remount: bool) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let options = if remount {
        format!("remount,size={bytes}")
    } else {
        format!("size={bytes},mode=0755")
    };
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &options, "kentledge-volume"])
        .arg(dir)
        .output()
        .await?;
    succeeded(&out, || {
        format!("mount -t tmpfs -o {options} {}", dir.display())
    })
}

/// Unmounts `dir` at once (lazily: a process still in it does not hold it up); errors are
/// ignored (the mount may be gone already).
pub fn unmount_now(dir: &Path) {
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .status();
}

/// Bytes in a Kubernetes quantity (`1Gi`, `500M`, `1024`); `None` when it is not one.
pub fn quantity_bytes(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        _ => return None,
    };
    Some((n * mult).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity_bytes("1Gi"), Some(1 << 30));
        assert_eq!(quantity_bytes("500M"), Some(500_000_000));
        assert_eq!(quantity_bytes("1024"), Some(1024));
        assert_eq!(quantity_bytes("1.5Ki"), Some(1536));
        assert_eq!(quantity_bytes("x"), None);
    }
}
