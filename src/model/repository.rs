//! A repository as every layer names it: which engine keeps it, and where ([`Location`], parsed
//! once for validation, plans, pod specs and the in-pod side).

use serde::{Deserialize, Serialize};

/// borg or restic.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// BorgBackup 1.2 – 1.4.
    Borg,
    /// restic 0.14 and newer.
    Restic,
}

impl Engine {
    /// The engine's program name.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Borg => "borg",
            Engine::Restic => "restic",
        }
    }
}

impl std::fmt::Display for Engine {
    /// The engine's program name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A repository's location as its engine takes it, parsed once by [`Location::parse`]: the
/// config's validation, the plan (which mover settings a repository needs), the pod spec and the
/// in-pod side all read this one typed value. [`Display`](std::fmt::Display) gives back exactly
/// the text it was parsed from (the mover job carries that text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    text: String,
    kind: Kind,
}

/// What a [`Location`] points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A path in the mover's filesystem (a repository kept on a volume; restic's `local:` too).
    Path,
    /// borg over ssh: `ssh://user@host[:port]/path`.
    Ssh(SshTarget),
    /// restic over sftp: `sftp:[user@]host:path` or `sftp://[user@]host[:port]/path`.
    Sftp(SshTarget),
    /// restic's REST server: `rest:http(s)://…`.
    Rest,
    /// restic on S3: `s3:…`.
    S3,
    /// Another restic backend: `b2:`, `azure:`, `gs:`, `swift:`, `rclone:`.
    Other,
}

/// The ssh server of an `ssh://` or `sftp:` location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshTarget {
    /// The login name, when the location names one.
    pub user: Option<String>,
    /// The host, an IPv6 address without its brackets.
    pub host: String,
    /// The port, when the location names one.
    pub port: Option<u16>,
    /// The repository's path on the server as a remote shell takes it (relative to the home
    /// directory unless it starts with `/`; borg's `/./rel` and `/~/rel` are `rel`).
    pub path: String,
}

impl SshTarget {
    /// `user@host` (or `host`) as ssh's command line takes it: an IPv6 host stays bare.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

/// The restic backends kentledge reaches, by scheme.
const RESTIC_SCHEMES: [&str; 8] = ["sftp", "rest", "s3", "b2", "azure", "gs", "swift", "rclone"];

impl Location {
    /// Parses `text` as `engine` takes a repository: borg an `ssh://user@host[:port]/path` URL,
    /// restic one of `sftp:`, `rest:`, `s3:`, `b2:`, `azure:`, `gs:`, `swift:`, `rclone:`; both
    /// an absolute path (restic also `local:`), which only a mover's own volume provides. The
    /// errors are the config's validation messages.
    pub fn parse(engine: Engine, text: &str) -> Result<Location, String> {
        let kind =
            if text.starts_with('/') || (engine == Engine::Restic && text.starts_with("local:")) {
                Kind::Path
            } else {
                match engine {
                    Engine::Borg => Kind::Ssh(borg_ssh(text)?),
                    Engine::Restic => restic(text)?,
                }
            };
        Ok(Location {
            text: text.to_owned(),
            kind,
        })
    }

    /// What it points at.
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// The text it was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A path in the mover's filesystem.
    pub fn is_path(&self) -> bool {
        self.kind == Kind::Path
    }

    /// borg over ssh (`ssh://`).
    pub fn is_ssh(&self) -> bool {
        matches!(self.kind, Kind::Ssh(_))
    }

    /// restic over sftp (`sftp:`).
    pub fn is_sftp(&self) -> bool {
        matches!(self.kind, Kind::Sftp(_))
    }

    /// The ssh server of an `ssh://` or `sftp:` location.
    pub fn ssh_target(&self) -> Option<&SshTarget> {
        match &self.kind {
            Kind::Ssh(t) | Kind::Sftp(t) => Some(t),
            _ => None,
        }
    }
}

impl std::fmt::Display for Location {
    /// Exactly the parsed text.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// `host`, or `[v6]`, and the text after it (`:port`, or empty).
fn split_host(hostport: &str) -> Option<(&str, &str)> {
    match hostport.strip_prefix('[') {
        Some(h) => h.split_once(']'),
        None => Some(match hostport.split_once(':') {
            Some((h, _)) => (h, &hostport[h.len()..]),
            None => (hostport, ""),
        }),
    }
}

/// `ssh://user@host[:port]/path`, strictly.
fn borg_ssh(url: &str) -> Result<SshTarget, String> {
    let err =
        || format!("{url:?} is not an ssh:// repository URL, expected ssh://user@host[:port]/path");
    let rest = url.strip_prefix("ssh://").ok_or_else(err)?;
    let (authority, path) = rest.split_once('/').ok_or_else(err)?;
    let (user, hostport) = authority.split_once('@').ok_or_else(err)?;
    if user.is_empty() || path.is_empty() {
        return Err(err());
    }
    let bracketed = hostport.starts_with('[');
    let (host, after) = split_host(hostport).ok_or_else(err)?;
    let port = match after.strip_prefix(':') {
        None if after.is_empty() => None,
        None => return Err(err()),
        Some(port) => Some(port.parse::<u16>().map_err(|_| {
            if bracketed {
                err()
            } else {
                format!("{url:?}: port {port:?} is not a number 1-65535")
            }
        })?),
    };
    if host.is_empty() {
        return Err(err());
    }
    let path = match path.strip_prefix("./").or_else(|| path.strip_prefix("~/")) {
        Some(rel) => rel.to_owned(),
        None => format!("/{path}"),
    };
    Ok(SshTarget {
        user: Some(user.to_owned()),
        host: host.to_owned(),
        port,
        path,
    })
}

/// A restic repository string other than a path.
fn restic(repo: &str) -> Result<Kind, String> {
    for scheme in RESTIC_SCHEMES {
        if let Some(rest) = repo.strip_prefix(scheme).and_then(|r| r.strip_prefix(':')) {
            if rest.is_empty() {
                return Err(format!("{repo:?}: nothing after {scheme}:"));
            }
            return Ok(match scheme {
                "sftp" => Kind::Sftp(sftp(rest)),
                "rest" => {
                    check_http_url(rest)?;
                    Kind::Rest
                }
                "s3" => {
                    if rest.starts_with("http://") || rest.starts_with("https://") {
                        check_http_url(rest)?;
                    }
                    Kind::S3
                }
                _ => Kind::Other,
            });
        }
    }
    Err(format!(
        "{repo:?} is not a restic repository, expected one of sftp:, rest:, s3:, b2:, azure:, gs:, swift:, rclone:"
    ))
}

/// The server of what follows `sftp:`, as restic reads it (leniently: restic itself reports a
/// malformed one): `[user@]host:path`, or `//[user@]host[:port]/path` where the path after the
/// host's `/` is the server's (so `//h//srv` is `/srv`, `//h/rel` is `rel`).
fn sftp(rest: &str) -> SshTarget {
    let (authority, path, url) = match rest.strip_prefix("//") {
        Some(url) => {
            let (a, p) = url.split_once('/').unwrap_or((url, ""));
            (a, p, true)
        }
        None => {
            // The host part ends at the first ':' outside brackets.
            let first_colon = rest.find(':').unwrap_or(rest.len());
            let at = rest[..first_colon].rfind('@').map_or(0, |i| i + 1);
            let end = match rest[at..].strip_prefix('[') {
                Some(v6) => v6.find(']').map(|i| at + i + 2),
                None => rest[at..].find(':').map(|i| at + i),
            };
            let end = end.unwrap_or(rest.len());
            let path = rest[end..].strip_prefix(':').unwrap_or(&rest[end..]);
            (&rest[..end], path, false)
        }
    };
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_owned()), h),
        None => (None, authority),
    };
    let (host, port) = match hostport.strip_prefix('[').and_then(|h| h.split_once(']')) {
        Some((h, after)) => (h, after.strip_prefix(':')),
        None if url => match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
        None => (hostport, None),
    };
    SshTarget {
        user,
        host: host.to_owned(),
        port: port.and_then(|p| p.parse().ok()),
        path: path.to_owned(),
    }
}

/// Checks an http(s) URL with a host.
pub fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(user: Option<&str>, host: &str, port: Option<u16>, path: &str) -> SshTarget {
        SshTarget {
            user: user.map(str::to_owned),
            host: host.into(),
            port,
            path: path.into(),
        }
    }

    fn parse(engine: Engine, text: &str) -> Kind {
        let l = Location::parse(engine, text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(l.to_string(), text, "Display gives back the text");
        l.kind
    }

    #[test]
    fn borg_ssh_urls() {
        for (text, want) in [
            (
                "ssh://borg@127.0.0.1:2222/./repos/shop",
                target(Some("borg"), "127.0.0.1", Some(2222), "repos/shop"),
            ),
            (
                "ssh://borg@backup/srv/borg",
                target(Some("borg"), "backup", None, "/srv/borg"),
            ),
            (
                "ssh://u@host/~/repo",
                target(Some("u"), "host", None, "repo"),
            ),
            ("ssh://u@[::1]/r", target(Some("u"), "::1", None, "/r")),
            (
                "ssh://u@[::1]:2222/r",
                target(Some("u"), "::1", Some(2222), "/r"),
            ),
        ] {
            assert_eq!(parse(Engine::Borg, text), Kind::Ssh(want), "{text}");
        }
        let v6 = Location::parse(Engine::Borg, "ssh://u@[::1]:2222/r").unwrap();
        assert!(v6.is_ssh() && !v6.is_sftp());
        assert_eq!(v6.ssh_target().unwrap().destination(), "u@::1");
        assert_eq!(
            Location::parse(Engine::Borg, "backup.example.com:/repo"),
            Err("\"backup.example.com:/repo\" is not an ssh:// repository URL, expected ssh://user@host[:port]/path".into())
        );
        assert_eq!(
            Location::parse(Engine::Borg, "ssh://u@host:x/r"),
            Err("\"ssh://u@host:x/r\": port \"x\" is not a number 1-65535".into())
        );
        for bad in [
            "ssh://host/repo",
            "ssh://u@host",
            "ssh://u@host/",
            "ssh://@host/r",
            "ssh://u@:22/r",
            "ssh://u@[::1/r",
            "ssh://u@[::1]x/r",
            "ssh://u@[::1]:x/r",
            "sftp:u@h:/r",
            "rest:http://h/",
        ] {
            assert!(Location::parse(Engine::Borg, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn restic_locations() {
        for (text, want) in [
            (
                "sftp:restic@backup:/srv/restic",
                target(Some("restic"), "backup", None, "/srv/restic"),
            ),
            (
                "sftp:user@host:/path",
                target(Some("user"), "host", None, "/path"),
            ),
            ("sftp:host:rel", target(None, "host", None, "rel")),
            (
                "sftp:u@[::1]:/srv/r",
                target(Some("u"), "::1", None, "/srv/r"),
            ),
            (
                "sftp://restic@backup:2222//srv/restic",
                target(Some("restic"), "backup", Some(2222), "/srv/restic"),
            ),
            (
                "sftp://user@[::1]:22//path",
                target(Some("user"), "::1", Some(22), "/path"),
            ),
            (
                "sftp://user@host/rel",
                target(Some("user"), "host", None, "rel"),
            ),
        ] {
            assert_eq!(parse(Engine::Restic, text), Kind::Sftp(want), "{text}");
        }
        let v6 = Location::parse(Engine::Restic, "sftp://user@[::1]:22//path").unwrap();
        assert!(v6.is_sftp() && !v6.is_ssh());
        assert_eq!(v6.ssh_target().unwrap().destination(), "user@::1");
        assert_eq!(
            parse(Engine::Restic, "rest:http://127.0.0.1:8000/"),
            Kind::Rest
        );
        assert_eq!(parse(Engine::Restic, "rest:https://u:p@h/r"), Kind::Rest);
        assert_eq!(
            parse(Engine::Restic, "s3:https://s3.example.com/b/p"),
            Kind::S3
        );
        assert_eq!(
            parse(Engine::Restic, "s3:s3.amazonaws.com/bucket"),
            Kind::S3
        );
        for other in [
            "b2:bucket:path",
            "azure:c:/p",
            "gs:b:/",
            "swift:c:/p",
            "rclone:r:p",
        ] {
            assert_eq!(parse(Engine::Restic, other), Kind::Other, "{other}");
        }
        let rest = Location::parse(Engine::Restic, "rest:http://x/").unwrap();
        assert_eq!(rest.ssh_target(), None);
        assert!(!rest.is_sftp() && !rest.is_path());
        assert_eq!(
            Location::parse(Engine::Restic, "s3:"),
            Err("\"s3:\": nothing after s3:".into())
        );
        assert_eq!(
            Location::parse(Engine::Restic, "rest:ftp://x"),
            Err("\"ftp://x\" must start with http:// or https://".into())
        );
        assert_eq!(
            Location::parse(Engine::Restic, "s3:https:///b"),
            Err("\"https:///b\" has no host".into())
        );
        assert!(
            Location::parse(Engine::Restic, "webdav:x")
                .unwrap_err()
                .contains("is not a restic repository")
        );
        assert!(Location::parse(Engine::Restic, "ssh://u@h/r").is_err());
    }

    #[test]
    fn volume_paths() {
        for engine in [Engine::Borg, Engine::Restic] {
            for text in ["/repository", "/repository/sub/dir"] {
                assert_eq!(parse(engine, text), Kind::Path, "{engine} {text}");
                assert_eq!(Location::parse(engine, text).unwrap().ssh_target(), None);
            }
        }
        assert_eq!(parse(Engine::Restic, "local:/srv/restic"), Kind::Path);
        assert!(Location::parse(Engine::Borg, "local:/srv/borg").is_err());
    }
}
