//! Starting a container (or exec) process: its own process group, a private mount namespace with the
//! volumes bind-mounted at their mount paths (read-only when asked), the working directory, and the
//! user, group and supplementary groups; all set up in the child between fork and exec. Also the table
//! of live process groups that a node kills when it stops.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::process::{Child, Command};

/// A user, group and supplementary groups to run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// One bind mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// The host path.
    pub source: PathBuf,
    /// Where it appears in the container.
    pub target: PathBuf,
    /// Remount read-only.
    pub read_only: bool,
}

/// Everything needed to start a process.
#[derive(Debug, Clone, Default)]
pub struct ProcessSpec {
    /// Program and arguments (the program is looked up in the `PATH` of `env`).
    pub argv: Vec<String>,
    /// The whole environment.
    pub env: Vec<(String, String)>,
    /// Working directory (created for containers, required for exec).
    pub working_dir: Option<PathBuf>,
    /// Run as; root when `None`.
    pub creds: Option<Creds>,
    /// Bind mounts in a new mount namespace (containers).
    pub mounts: Vec<MountSpec>,
    /// The hostname in a new UTS namespace (containers: the pod's hostname).
    pub hostname: Option<String>,
    /// Enter this process's mount and UTS namespaces instead (exec).
    pub enter_mount_ns_of: Option<u32>,
    /// Keep stdin as a pipe (else `/dev/null`).
    pub stdin: bool,
}

/// Why a process could not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// No command and no arguments (an image's entrypoint is not known here).
    #[error("no command specified")]
    NoCommand,
    /// The program was not found.
    #[error("exec: {program:?}: {detail}")]
    NotFound {
        /// The program.
        program: String,
        /// `executable file not found in $PATH` or `stat PATH: no such file or directory`.
        detail: String,
    },
    /// A path contains a NUL byte.
    #[error("invalid path or argument {0:?}")]
    Nul(String),
    /// The mount namespace of the target could not be opened.
    #[error("opening the mount namespace of process {pid}: {source}")]
    Namespace {
        /// The process.
        pid: u32,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Setting up the child or exec failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Live process groups (each container and exec process leads its own); [`ProcessTable::kill_all`]
/// sends them all SIGKILL.
#[derive(Debug, Default, Clone)]
pub struct ProcessTable(Arc<Mutex<HashSet<i32>>>);

impl ProcessTable {
    fn insert(&self, pgid: i32) {
        if let Ok(mut s) = self.0.lock() {
            s.insert(pgid);
        }
    }
    /// Forget a group (its leader has exited and the group has been killed).
    pub fn remove(&self, pgid: i32) {
        if let Ok(mut s) = self.0.lock() {
            s.remove(&pgid);
        }
    }
    /// How many groups are live.
    pub fn len(&self) -> usize {
        self.0.lock().map(|s| s.len()).unwrap_or(0)
    }
    /// Whether none is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// SIGKILL every group.
    pub fn kill_all(&self) {
        let groups: Vec<i32> = self
            .0
            .lock()
            .map(|mut s| s.drain().collect())
            .unwrap_or_default();
        for g in groups {
            signal_group(g, libc::SIGKILL);
        }
    }
}

/// Send a signal to a whole process group.
pub fn signal_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals the group; no memory is touched.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

fn cstr(p: &[u8]) -> Result<CString, SpawnError> {
    CString::new(p).map_err(|_| SpawnError::Nul(String::from_utf8_lossy(p).into_owned()))
}

/// Every directory from `/` down to `dir` (excluding `/`), for `mkdir -p` in the child.
fn ancestors_to_create(dir: &Path) -> Result<Vec<CString>, SpawnError> {
    let mut acc = PathBuf::from("/");
    let mut out = Vec::new();
    for c in dir.components() {
        if let Component::Normal(n) = c {
            acc.push(n);
            out.push(cstr(acc.as_os_str().as_bytes())?);
        }
    }
    Ok(out)
}

/// A mount prepared for the child: all strings allocated before fork.
struct ChildMount {
    mkdirs: Vec<CString>,
    touch: Option<CString>,
    source: CString,
    target: CString,
    read_only: bool,
}

fn prepare_mounts(mounts: &[MountSpec]) -> Result<Vec<ChildMount>, SpawnError> {
    let mut sorted: Vec<&MountSpec> = mounts.iter().collect();
    sorted.sort_by_key(|m| m.target.components().count());
    sorted
        .into_iter()
        .map(|m| {
            let file = m.source.metadata().map(|md| !md.is_dir()).unwrap_or(false);
            let dir = if file {
                m.target.parent().unwrap_or(Path::new("/"))
            } else {
                &m.target
            };
            Ok(ChildMount {
                mkdirs: ancestors_to_create(dir)?,
                touch: if file {
                    Some(cstr(m.target.as_os_str().as_bytes())?)
                } else {
                    None
                },
                source: cstr(m.source.as_os_str().as_bytes())?,
                target: cstr(m.target.as_os_str().as_bytes())?,
                read_only: m.read_only,
            })
        })
        .collect()
}

fn check(rc: libc::c_int) -> std::io::Result<()> {
    if rc == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Runs in the forked child: only async-signal-safe calls on pre-allocated data.
fn child_setup(
    mounts: &[ChildMount],
    hostname: Option<&CString>,
    ns_fd: Option<libc::c_int>,
    uts_fd: Option<libc::c_int>,
    workdir: Option<&(Vec<CString>, CString)>,
    creds: Option<&(u32, u32, Vec<libc::gid_t>)>,
) -> std::io::Result<()> {
    // SAFETY: plain system calls on NUL-terminated strings and integers prepared before fork.
    unsafe {
        if !mounts.is_empty() {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            for m in mounts {
                for d in &m.mkdirs {
                    libc::mkdir(d.as_ptr(), 0o755);
                }
                if let Some(t) = &m.touch {
                    let fd = libc::open(
                        t.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o644,
                    );
                    if fd >= 0 {
                        libc::close(fd);
                    }
                }
                check(libc::mount(
                    m.source.as_ptr(),
                    m.target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ))?;
                if m.read_only {
                    check(libc::mount(
                        std::ptr::null(),
                        m.target.as_ptr(),
                        std::ptr::null(),
                        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
                        std::ptr::null(),
                    ))?;
                }
            }
        }
        if let Some(h) = hostname {
            check(libc::unshare(libc::CLONE_NEWUTS))?;
            check(libc::sethostname(h.as_ptr(), h.as_bytes().len()))?;
        }
        if let Some(fd) = ns_fd {
            check(libc::setns(fd, libc::CLONE_NEWNS))?;
        }
        if let Some(fd) = uts_fd {
            check(libc::setns(fd, libc::CLONE_NEWUTS))?;
        }
        if let Some((mkdirs, dir)) = workdir {
            for d in mkdirs {
                libc::mkdir(d.as_ptr(), 0o755);
            }
            check(libc::chdir(dir.as_ptr()))?;
        }
        if let Some((uid, gid, groups)) = creds {
            check(libc::setgroups(groups.len(), groups.as_ptr()))?;
            check(libc::setgid(*gid))?;
            check(libc::setuid(*uid))?;
        }
    }
    Ok(())
}

/// Look a program up in a `PATH`, as runc does before exec (only to produce its error text).
fn lookup(program: &str, env: &[(String, String)], root_check: bool) -> Result<(), SpawnError> {
    if !root_check {
        return Ok(());
    }
    if program.contains('/') {
        return if Path::new(program).exists() {
            Ok(())
        } else {
            Err(SpawnError::NotFound {
                program: program.into(),
                detail: format!("stat {program}: no such file or directory"),
            })
        };
    }
    let path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or(DEFAULT_PATH);
    if path
        .split(':')
        .filter(|d| !d.is_empty())
        .any(|d| is_executable(&Path::new(d).join(program)))
    {
        Ok(())
    } else {
        Err(SpawnError::NotFound {
            program: program.into(),
            detail: "executable file not found in $PATH".into(),
        })
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The `PATH` a container gets when its spec sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Start a process per `spec`, leading its own process group (recorded in `table`), with piped
/// stdout/stderr.
pub fn spawn(spec: &ProcessSpec, table: &ProcessTable) -> Result<Child, SpawnError> {
    let Some(program) = spec.argv.first() else {
        return Err(SpawnError::NoCommand);
    };
    // The container's filesystem is the host's plus bind mounts, so the host lookup gives runc's answer
    // unless the program lives under a mount; then the child's exec decides.
    let under_mount = spec
        .mounts
        .iter()
        .any(|m| Path::new(program).starts_with(&m.target))
        || spec.enter_mount_ns_of.is_some();
    lookup(program, &spec.env, !under_mount)?;
    let mounts = prepare_mounts(&spec.mounts)?;
    let ns_file = match spec.enter_mount_ns_of {
        Some(pid) => Some(
            std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
                .map_err(|source| SpawnError::Namespace { pid, source })?,
        ),
        None => None,
    };
    let ns_fd = ns_file.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    let uts_file = match spec.enter_mount_ns_of {
        Some(pid) => std::fs::File::open(format!("/proc/{pid}/ns/uts")).ok(),
        None => None,
    };
    let uts_fd = uts_file.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    let hostname = match &spec.hostname {
        Some(h) => Some(cstr(h.as_bytes())?),
        None => None,
    };
    let workdir = match &spec.working_dir {
        Some(d) => {
            let mkdirs = if spec.enter_mount_ns_of.is_none() {
                ancestors_to_create(d)?
            } else {
                Vec::new()
            };
            Some((mkdirs, cstr(d.as_os_str().as_bytes())?))
        }
        None => None,
    };
    let creds = spec.creds.as_ref().map(|c| {
        (
            c.uid,
            c.gid,
            c.groups
                .iter()
                .map(|g| *g as libc::gid_t)
                .collect::<Vec<_>>(),
        )
    });
    let mut cmd = Command::new(program);
    cmd.args(&spec.argv[1..])
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(if spec.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    // SAFETY: the closure only makes system calls on data allocated before fork (see child_setup).
    unsafe {
        cmd.pre_exec(move || {
            child_setup(
                &mounts,
                hostname.as_ref(),
                ns_fd,
                uts_fd,
                workdir.as_ref(),
                creds.as_ref(),
            )
        });
    }
    let child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound && !program.contains('/') {
            SpawnError::NotFound {
                program: program.clone(),
                detail: "executable file not found in $PATH".into(),
            }
        } else {
            SpawnError::Io(e)
        }
    })?;
    drop(ns_file);
    drop(uts_file);
    if let Some(pid) = child.id() {
        table.insert(pid as i32);
    }
    Ok(child)
}

/// The exit code a runtime reports for a wait status (128 + signal when killed).
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mkdir_chain() {
        let v = ancestors_to_create(Path::new("/a/b/c")).unwrap();
        let v: Vec<&str> = v.iter().map(|c| c.to_str().unwrap()).collect();
        assert_eq!(v, ["/a", "/a/b", "/a/b/c"]);
    }

    #[test]
    fn program_lookup_errors_read_like_runc() {
        let env = vec![("PATH".to_string(), "/usr/bin:/bin".to_string())];
        assert!(lookup("sh", &env, true).is_ok());
        assert_eq!(
            lookup("nope-not-here", &env, true).unwrap_err().to_string(),
            "exec: \"nope-not-here\": executable file not found in $PATH"
        );
        assert_eq!(
            lookup("/no/such", &env, true).unwrap_err().to_string(),
            "exec: \"/no/such\": stat /no/such: no such file or directory"
        );
    }

    #[tokio::test]
    async fn runs_with_a_read_only_bind_mount() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("f"), "data").unwrap();
        let target = tempfile::tempdir().unwrap();
        let spec = ProcessSpec {
            argv: vec![
                "sh".into(),
                "-c".into(),
                "cat m/f; echo x > m/g && echo wrote".into(),
            ],
            env: vec![("PATH".into(), DEFAULT_PATH.into())],
            working_dir: Some(target.path().to_path_buf()),
            mounts: vec![MountSpec {
                source: src.path().into(),
                target: target.path().join("m"),
                read_only: true,
            }],
            ..ProcessSpec::default()
        };
        let table = ProcessTable::default();
        let child = spawn(&spec, &table).unwrap();
        let out = child.wait_with_output().await.unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "data");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Read-only file system"),
            "{out:?}"
        );
        assert!(!src.path().join("g").exists());
        assert_eq!(table.len(), 1);
    }
}
