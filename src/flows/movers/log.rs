//! Reading a mover pod's log: following it for events as they come, and knowing whether it was
//! read to the mover's last line (its `end` event) or only in part, and why.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};

use crate::mover::job::MoverEvent;

/// What was read of a mover's log.
#[derive(Debug, Default)]
pub(super) struct LogRead {
    /// The events, in order.
    pub(super) events: Vec<MoverEvent>,
    /// Why reading stopped before the end, when it did.
    pub(super) error: Option<String>,
}

impl LogRead {
    pub(super) fn failed(e: impl Into<String>) -> LogRead {
        LogRead {
            events: Vec::new(),
            error: Some(e.into()),
        }
    }

    pub(super) fn parse(text: &str) -> LogRead {
        LogRead {
            events: text.lines().filter_map(MoverEvent::parse).collect(),
            error: None,
        }
    }

    /// Whether the mover's last line (its `end` event) was read.
    pub(super) fn complete(&self) -> bool {
        matches!(self.events.last(), Some(MoverEvent::End { .. }))
    }
}

/// Follows the pod's log, forwarding events as they come and returning all of them, with the
/// error that ended the stream early, if one did.
pub(super) async fn follow(
    pods: Api<Pod>,
    name: String,
    tx: tokio::sync::mpsc::UnboundedSender<MoverEvent>,
) -> LogRead {
    use futures::{AsyncBufReadExt as _, StreamExt as _};
    let lp = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let mut read = LogRead::default();
    let stream = match pods.log_stream(&name, &lp).await {
        Ok(s) => s,
        Err(e) => return LogRead::failed(e.to_string()),
    };
    let mut lines = stream.lines();
    while let Some(line) = lines.next().await {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                read.error = Some(format!("the log stream broke: {e}"));
                break;
            }
        };
        if let Some(e) = MoverEvent::parse(&line) {
            let _ = tx.send(e.clone());
            read.events.push(e);
        } else if !line.trim().is_empty() {
            tracing::debug!(pod = %name, "{line}");
        }
    }
    read
}
