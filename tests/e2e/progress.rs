//! The progress display as an operator sees it on a terminal (a pseudo-terminal): `list` counts
//! the repositories read and the archives found, a restore shows bytes of the total with a bar;
//! with no terminal (a CronJob, a pipe) none of it is written.

use crate::list::backed_up;
use crate::support::{incompressible, on_terminal, run};

#[test]
fn a_terminal_shows_list_and_restore_progress_and_a_pipe_gets_only_log_lines() {
    let (tc, spec, _) = backed_up("progress", |d| {
        // Large enough that the extract runs for a while after its first progress report.
        std::fs::write(d.join("big.bin"), incompressible(160 << 20, 7)).unwrap();
    });
    let cfg = tc.config("shop", &spec);

    let r = on_terminal(tc.kentledge(&cfg).arg("list"));
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("1 VolumeSnapshots; repositories: 0 of 2 read, 0 archives"),
        "the list display while the movers start: {}",
        r.stdout
    );
    let r = run(tc.kentledge(&cfg).arg("list"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        !r.stderr.contains("repositories: 0 of 2 read") && !r.stdout.contains("of 2 read"),
        "no display without a terminal: {}{}",
        r.stdout,
        r.stderr
    );

    let r = on_terminal(tc.kentledge(&cfg).args([
        "restore",
        "volume",
        "data",
        "--repository",
        "borg-local",
        "--to",
        "copy",
    ]));
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout.contains("borg-local → copy: ") && r.stdout.contains(" of 160.00 MiB ["),
        "the restore display shows bytes of the archive's total: {}",
        r.stdout
    );
    assert_eq!(
        std::fs::read(tc.volume_dir("copy").join("big.bin"))
            .unwrap()
            .len(),
        160 << 20
    );
}
