//! Helpers for running the real binary and observing what it touched.

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A path under `examples/`.
pub fn example(name: &str) -> PathBuf {
    root().join("examples").join(name)
}

/// The built `kentledge` binary, with a clean environment for config and logs.
pub fn kentledge() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kentledge"));
    cmd.env_remove("KENTLEDGE_CONFIG")
        .env_remove("KENTLEDGE_LOG")
        .env_remove("KUBECONFIG")
        .current_dir(root());
    cmd
}

/// The result of a run, with text streams.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command to completion.
pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run kentledge");
    Run {
        code: status.code().expect("exited normally"),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs a command to completion, and its peak resident memory in bytes: the kernel's high-water
/// mark of the process's own memory (`VmHWM`), read every 5 ms until it exits. (`ru_maxrss`
/// from `wait4` would not do: it counts the test process's memory the child was forked from.)
pub fn run_measured(cmd: &mut Command) -> (Run, u64) {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kentledge");
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let status = loop {
        // Read before looking for the exit: a process that has exited but is not yet waited
        // for has no memory left to report, and its last reading stands.
        if let Some(kib) = std::fs::read_to_string(&status_file).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        }) {
            peak = peak.max(kib * 1024);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let run = Run {
        code: status.code().expect("exited normally"),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (run, peak)
}

/// A TCP listener posing as an API server: it counts every connection and answers none.
/// A kubeconfig that points at it proves whether a command made any API call.
pub struct Tripwire {
    pub kubeconfig: PathBuf,
    connections: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl Tripwire {
    pub fn new() -> Tripwire {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                seen.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut s) = stream {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf);
                }
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n    namespace: default\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n"
            ),
        )
        .unwrap();
        Tripwire {
            kubeconfig,
            connections,
            _dir: dir,
        }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Writes `text` to a file in a fresh temporary directory.
pub fn write_temp(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// The Events on `kind`/`name` in the test namespace: type, reason, message, count.
pub fn events_of(
    tc: &crate::cluster::TestCluster,
    kind: &str,
    name: &str,
) -> Vec<(String, String, String, i32)> {
    let api: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(tc.client(), &tc.namespace);
    tc.block_on(api.list(&Default::default()))
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some(kind)
                && e.involved_object.name.as_deref() == Some(name)
        })
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
                e.count.unwrap_or(0),
            )
        })
        .collect()
}

/// Runs a command on a terminal (a pseudo-terminal of `script`, 200 columns), as an operator
/// runs it: `stdout` is what the terminal showed (stdout and stderr together, with the
/// progress display's redraws).
pub fn on_terminal(cmd: &mut Command) -> Run {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
    let line = std::iter::once(quote(cmd.get_program()))
        .chain(cmd.get_args().map(quote))
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = Command::new("script");
    script
        .args(["--quiet", "--return", "--flush", "--command"])
        .arg(format!("stty cols 200 rows 50; exec {line}"))
        .arg("/dev/null")
        .stdin(std::process::Stdio::null());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        script.current_dir(d);
    }
    run(&mut script)
}

/// `n` bytes that no engine can compress (xorshift), for copies that take a moment; other
/// seeds give other bytes (the seed is spread before use: `seed | 1` alone made 2 and 3 one
/// stream, so half of a volume of files seeded 1, 2, 3, … was deduplicated away).
pub fn incompressible(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// A secret appears nowhere kentledge and the cluster keep it: not in the run's `outputs`, the
/// API server's request log (exec URLs) from request `since` on (the test's own setup came
/// before), Events or pod specs. Some request after `since` contains `requested` (`""`: any).
pub fn secret_nowhere(
    tc: &crate::cluster::TestCluster,
    since: usize,
    outputs: &[&str],
    secret: &str,
    requested: &str,
) {
    use k8s_openapi::api::core::v1::{Event, Pod};
    use kube::Api;
    for (i, o) in outputs.iter().enumerate() {
        assert!(!o.contains(secret), "output {i} holds the secret: {o}");
    }
    let requests = tc.requests().split_off(since);
    assert!(
        requests.iter().any(|r| r.contains(requested)),
        "a request with {requested:?} is in the log"
    );
    let leaked: Vec<&String> = requests.iter().filter(|r| r.contains(secret)).collect();
    assert!(leaked.is_empty(), "requests hold the secret: {leaked:?}");
    let events: Api<Event> = Api::namespaced(tc.client(), &tc.namespace);
    let events =
        serde_json::to_string(&tc.block_on(events.list(&Default::default())).unwrap()).unwrap();
    assert!(!events.contains(secret), "Events hold the secret");
    let pods: Api<Pod> = Api::namespaced(tc.client(), &tc.namespace);
    let pods =
        serde_json::to_string(&tc.block_on(pods.list(&Default::default())).unwrap()).unwrap();
    assert!(!pods.contains(secret), "pod specs hold the secret");
}

/// Starts `cmd`, waits (up to `secs`) until its stderr has a line containing `phase` (a log
/// event kentledge emits), sends `signal` (`libc::SIGTERM`, `libc::SIGKILL`) and returns the
/// whole run. Panics, killing the child, when the phase never comes.
pub fn signal_at(cmd: &mut Command, phase: &str, signal: i32, secs: u64) -> Run {
    signal_when(cmd, phase, || true, signal, secs)
}

/// [`signal_at`], once `also` holds too after `phase` (polled every 20 ms): for a phase whose
/// log event comes just before what it starts.
pub fn signal_when(
    cmd: &mut Command,
    phase: &str,
    also: impl FnMut() -> bool,
    signal: i32,
    secs: u64,
) -> Run {
    act_when(
        cmd,
        phase,
        also,
        // SAFETY: signalling our own child.
        |pid| unsafe {
            libc::kill(pid as i32, signal);
        },
        secs,
    )
}

/// Starts `cmd`, waits (up to `secs`) for `phase` on its stderr and then for `also`, does `act`
/// with the child's pid, and returns the whole run (the child runs to its end).
pub fn act_when(
    cmd: &mut Command,
    phase: &str,
    mut also: impl FnMut() -> bool,
    act: impl FnOnce(u32),
    secs: u64,
) -> Run {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let hit = line.contains(phase);
                seen.push_str(&line);
                seen.push('\n');
                if hit {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!("no {phase:?} within {secs} s:\n{seen}");
            }
        }
    }
    while !also() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{phase:?} came, but not what follows it, within {secs} s:\n{seen}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    act(child.id());
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    reader.join().unwrap();
    seen.extend(rx.try_iter().map(|l| l + "\n"));
    Run {
        code: status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
        }),
        stdout,
        stderr: seen,
    }
}

/// Sleeps into the next second of the wall clock: a snapshot taken after it is cut in a second
/// of its own (borg archive names carry the cut to the second; a backup refuses a snapshot cut
/// in the same second as one already copied).
pub fn next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(
        1010 - u64::from(now.subsec_millis()),
    ));
}

#[test]
fn incompressible_bytes_of_other_seeds_share_no_block() {
    use std::collections::HashSet;
    let blocks = |seed| -> HashSet<Vec<u8>> {
        incompressible(64 << 10, seed)
            .chunks(4096)
            .map(<[u8]>::to_vec)
            .collect()
    };
    let mut seen = HashSet::new();
    for seed in 0..8 {
        let b = blocks(seed);
        assert_eq!(b.len(), 16, "seed {seed}: a block repeats within its bytes");
        assert!(
            seen.is_disjoint(&b),
            "seed {seed} repeats another seed's bytes"
        );
        seen.extend(b);
    }
}
