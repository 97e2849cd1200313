//! A run's results as Prometheus metrics for a Pushgateway (`--pushgateway URL`): each target's
//! success, bytes and duration, and the run's exit code and duration, in the text exposition
//! format. Pure: the push itself is [`crate::push`].

use std::fmt::Write as _;

/// One target of a run as metrics see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// `volume`, `database`, `bucket` (or `snapshot` for a snapshot run's PVCs).
    pub kind: &'static str,
    /// The PVC, `entry/database` or bucket entry.
    pub series: String,
    /// The repository, when the target is a copy.
    pub repository: Option<String>,
    /// Whether it worked (and was seen to).
    pub ok: bool,
    /// Bytes moved, when known.
    pub bytes: Option<u64>,
    /// Seconds it took, when known.
    pub seconds: Option<f64>,
}

/// What a run pushes: its command, exit code and duration, and its targets.
#[derive(Clone, Debug, PartialEq)]
pub struct RunMetrics<'a> {
    /// `snapshot`, `backup`, `prune`, `restore`.
    pub command: &'a str,
    /// The exit code.
    pub code: u8,
    /// Seconds the run took.
    pub seconds: f64,
    /// Its targets.
    pub targets: &'a [Target],
}

pub(crate) fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The text exposition format of a run (the grouping labels, job, config, namespace and
/// command, are the push URL's, so they are not repeated on each sample).
pub fn exposition(m: &RunMetrics<'_>) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, rows: Vec<(String, f64)>| {
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    gauge(
        "kentledge_run_exit_code",
        "The run's exit code (0 success, 3 partial, 1 failure, 130/143 interrupted).",
        vec![(String::new(), f64::from(m.code))],
    );
    gauge(
        "kentledge_run_duration_seconds",
        "How long the run took.",
        vec![(String::new(), m.seconds)],
    );
    let labels = |t: &Target| {
        let mut l = format!("{{kind=\"{}\",series=\"{}\"", t.kind, escape(&t.series));
        if let Some(r) = &t.repository {
            let _ = write!(l, ",repository=\"{}\"", escape(r));
        }
        l.push('}');
        l
    };
    gauge(
        "kentledge_target_success",
        "1 when the target (a snapshot, a copy into a repository) was done and seen done, else 0.",
        m.targets
            .iter()
            .map(|t| (labels(t), if t.ok { 1.0 } else { 0.0 }))
            .collect(),
    );
    gauge(
        "kentledge_target_bytes",
        "Bytes the target moved (read for a copy, dumped for a database).",
        m.targets
            .iter()
            .filter_map(|t| Some((labels(t), t.bytes? as f64)))
            .collect(),
    );
    gauge(
        "kentledge_target_duration_seconds",
        "How long the target took.",
        m.targets
            .iter()
            .filter_map(|t| Some((labels(t), t.seconds?)))
            .collect(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_and_its_targets() {
        let targets = [
            Target {
                kind: "volume",
                series: "data".into(),
                repository: Some("borg".into()),
                ok: true,
                bytes: Some(1024),
                seconds: Some(2.5),
            },
            Target {
                kind: "bucket",
                series: "me\"dia".into(),
                repository: Some("restic".into()),
                ok: false,
                bytes: None,
                seconds: None,
            },
        ];
        let text = exposition(&RunMetrics {
            command: "backup",
            code: 3,
            seconds: 12.0,
            targets: &targets,
        });
        insta::assert_snapshot!(text, @r#"
        # HELP kentledge_run_exit_code The run's exit code (0 success, 3 partial, 1 failure, 130/143 interrupted).
        # TYPE kentledge_run_exit_code gauge
        kentledge_run_exit_code 3
        # HELP kentledge_run_duration_seconds How long the run took.
        # TYPE kentledge_run_duration_seconds gauge
        kentledge_run_duration_seconds 12
        # HELP kentledge_target_success 1 when the target (a snapshot, a copy into a repository) was done and seen done, else 0.
        # TYPE kentledge_target_success gauge
        kentledge_target_success{kind="volume",series="data",repository="borg"} 1
        kentledge_target_success{kind="bucket",series="me\"dia",repository="restic"} 0
        # HELP kentledge_target_bytes Bytes the target moved (read for a copy, dumped for a database).
        # TYPE kentledge_target_bytes gauge
        kentledge_target_bytes{kind="volume",series="data",repository="borg"} 1024
        # HELP kentledge_target_duration_seconds How long the target took.
        # TYPE kentledge_target_duration_seconds gauge
        kentledge_target_duration_seconds{kind="volume",series="data",repository="borg"} 2.5
        "#);
    }
}
