//! The `relay` job: run a command in another pod by exec, with this pod's in-cluster
//! credentials, and copy its stdout to this process's stdout, for an engine that stores what a
//! command prints (`borg create --content-from-command`, `restic backup --stdin-from-command`).
//! A stream is whole only when the exec status says Success, every byte reached stdout and its end
//! has the marker the tool writes last; otherwise the exit code is non-zero, so the engine makes
//! no archive of it. What it says goes to stderr, one line each.

use std::io::Write;

use crate::kube::exec::{Exit, stream};

/// What to relay.
pub(super) struct Relay<'a> {
    pub(super) pod: &'a str,
    pub(super) container: &'a str,
    pub(super) command: &'a [String],
    pub(super) stdin_file: Option<&'a str>,
    pub(super) end_marker: Option<&'a str>,
}

fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "kentledge relay: {text}");
}

/// Whether a stream that ended with `tail` is whole, given the marker its tool writes last.
pub(super) fn has_marker(tail: &[u8], marker: Option<&str>) -> bool {
    match marker {
        None => true,
        Some(m) => {
            let text = String::from_utf8_lossy(tail);
            text.trim_end()
                .lines()
                .last()
                .is_some_and(|l| l.contains(m))
        }
    }
}

pub(super) fn relay(r: &Relay<'_>) -> i32 {
    let stdin = match r.stdin_file {
        Some(p) => match std::fs::read(p) {
            Ok(b) => Some(b),
            Err(e) => {
                say(&format!("reading {p}: {e}"));
                return 1;
            }
        },
        None => None,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say(&format!("starting: {e}"));
            return 1;
        }
    };
    rt.block_on(async {
        // In-cluster only: never a kubeconfig that happens to be on the node's filesystem.
        let config = match kube::Config::incluster() {
            Ok(c) => c,
            Err(e) => {
                say(&format!(
                    "no in-cluster credentials (is a ServiceAccount token mounted?): {e}"
                ));
                return 1;
            }
        };
        let ns = config.default_namespace.clone();
        let client = match kube::Client::try_from(config) {
            Ok(c) => c,
            Err(e) => {
                say(&format!("connecting to the API server: {e}"));
                return 1;
            }
        };
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client, &ns);
        let mut out = tokio::io::stdout();
        let s = stream(
            &pods,
            r.pod,
            r.container,
            r.command,
            stdin.as_deref(),
            &mut out,
        )
        .await;
        for line in s.stderr.lines().filter(|l| !l.trim().is_empty()) {
            say(&format!("{}/{}: {line}", r.pod, r.container));
        }
        let problem = if let Some(e) = &s.sink_error {
            Some(format!("the stream could not be passed on: {e}"))
        } else if s.exit != Exit::Code(0) {
            Some(format!(
                "the command in {}/{} ended with {}",
                r.pod, r.container, s.exit
            ))
        } else if !has_marker(&s.tail, r.end_marker) {
            Some(format!(
                "the stream ({} bytes) does not end with {:?}: it was cut short",
                s.bytes,
                r.end_marker.unwrap_or_default()
            ))
        } else {
            None
        };
        match problem {
            Some(p) => {
                say(&p);
                1
            }
            None => {
                say(&format!("{} bytes, complete", s.bytes));
                0
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::has_marker;

    #[test]
    fn a_stream_is_whole_only_with_its_end_marker_last() {
        let done = b"INSERT ...;\n-- Dump completed on 2026-12-01 10:00:00\n";
        assert!(has_marker(done, Some("-- Dump completed")));
        assert!(!has_marker(
            b"INSERT ...;\nINSERT",
            Some("-- Dump completed")
        ));
        assert!(
            !has_marker(b"-- Dump completed\nmore rows\n", Some("-- Dump completed")),
            "the marker must be last"
        );
        assert!(has_marker(b"anything", None));
    }
}
