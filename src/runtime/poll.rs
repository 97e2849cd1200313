//! The one poll loop of the waits (snapshot cut and readiness, mover pods): run a step, stop
//! when it breaks, when the deadline has passed or when the token is cancelled; between steps,
//! sleep cancellably. What a step looks at is decided by pure conditions elsewhere
//! ([`crate::model::snapshots`], pod states in `kube::pods`); this module only keeps time.

use std::ops::ControlFlow;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How a poll ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Polled<T> {
    /// A step broke with this value.
    Done(T),
    /// The deadline passed after a step that did not break.
    TimedOut,
    /// The token was cancelled before a step, or while sleeping between two.
    Interrupted,
}

/// Runs `step` until it breaks, then every `every`:
///
/// - the token is looked at before each step (a cancelled token runs no step), and a sleep ends
///   as soon as it is cancelled; a step itself is never cut short;
/// - `until` is looked at after each step that did not break: once it has passed, the poll ends
///   with [`Polled::TimedOut`] instead of sleeping. So a step always runs first, and once more
///   after every sleep (even one that ends past the deadline), and no sleep starts after the
///   deadline. `None` waits for as long as it takes.
pub async fn poll<T>(
    every: Duration,
    until: Option<Instant>,
    cancel: &CancellationToken,
    step: impl AsyncFnMut() -> ControlFlow<T>,
) -> Polled<T> {
    poll_paced(|_| every, until, cancel, step).await
}

/// A pace that starts at `from` and doubles after each step up to `to`: what is usually quick
/// (a pod that starts, an object that goes) is seen soon, and a long wait costs no more
/// requests than polling every `to`.
pub fn rising(from: Duration, to: Duration) -> impl Fn(u32) -> Duration {
    move |n| from.saturating_mul(2u32.saturating_pow(n)).min(to)
}

/// [`poll`] with a sleep that may change: `pace(n)` after the `n`th step that did not break
/// (0-based), e.g. [`rising`].
pub async fn poll_paced<T>(
    pace: impl Fn(u32) -> Duration,
    until: Option<Instant>,
    cancel: &CancellationToken,
    step: impl AsyncFnMut() -> ControlFlow<T>,
) -> Polled<T> {
    poll_woken(pace, until, cancel, &tokio::sync::Notify::new(), step).await
}

/// [`poll_paced`] whose sleep also ends when `wake` is notified (a notification made while a
/// step runs ends the next sleep at once): a waiter told that what it waits for has probably
/// happened looks again now, not at the end of a long sleep.
pub async fn poll_woken<T>(
    pace: impl Fn(u32) -> Duration,
    until: Option<Instant>,
    cancel: &CancellationToken,
    wake: &tokio::sync::Notify,
    mut step: impl AsyncFnMut() -> ControlFlow<T>,
) -> Polled<T> {
    let mut n: u32 = 0;
    loop {
        if cancel.is_cancelled() {
            return Polled::Interrupted;
        }
        if let ControlFlow::Break(v) = step().await {
            return Polled::Done(v);
        }
        if until.is_some_and(|u| Instant::now() >= u) {
            return Polled::TimedOut;
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Polled::Interrupted,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(pace(n)) => {}
        }
        n = n.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_millis(200);

    /// A step that records when it ran (since `t0`) and breaks on its `n`th run (1-based).
    fn times(t0: Instant, at: &mut Vec<Duration>, n: usize) -> ControlFlow<usize> {
        at.push(t0.elapsed());
        if at.len() == n {
            ControlFlow::Break(n)
        } else {
            ControlFlow::Continue(())
        }
    }

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_rising_pace_doubles_up_to_its_ceiling() {
        let t0 = Instant::now();
        let mut at = Vec::new();
        let pace = rising(Duration::from_millis(50), Duration::from_millis(300));
        let r = poll_paced(pace, None, &CancellationToken::new(), async || {
            times(t0, &mut at, 6)
        })
        .await;
        assert_eq!(r, Polled::Done(6));
        assert_eq!(at, ms(&[0, 50, 150, 350, 650, 950]));
        let pace = rising(Duration::from_millis(50), Duration::from_millis(300));
        assert_eq!(pace(u32::MAX), Duration::from_millis(300), "no overflow");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_ends_the_sleep_at_once_even_one_sent_while_a_step_ran() {
        let t0 = Instant::now();
        let mut at = Vec::new();
        let wake = tokio::sync::Notify::new();
        let r = poll_woken(
            |_| Duration::from_secs(60),
            None,
            &CancellationToken::new(),
            &wake,
            async || {
                // Told during the first step: the sleep after it does not happen.
                if at.is_empty() {
                    wake.notify_one();
                }
                times(t0, &mut at, 3)
            },
        )
        .await;
        assert_eq!(r, Polled::Done(3));
        assert_eq!(at, ms(&[0, 0, 60_000]), "one wake ends one sleep");
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_that_breaks_at_once_never_sleeps() {
        let t0 = Instant::now();
        let mut at = Vec::new();
        let r = poll(EVERY, None, &CancellationToken::new(), async || {
            times(t0, &mut at, 1)
        })
        .await;
        assert_eq!(r, Polled::Done(1));
        assert_eq!(at, ms(&[0]));
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn steps_run_every_interval_until_one_breaks() {
        let t0 = Instant::now();
        let mut at = Vec::new();
        let r = poll(EVERY, None, &CancellationToken::new(), async || {
            times(t0, &mut at, 4)
        })
        .await;
        assert_eq!(r, Polled::Done(4));
        assert_eq!(at, ms(&[0, 200, 400, 600]));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_is_looked_at_after_a_step_and_never_slept_past() {
        let t0 = Instant::now();
        let mut at = Vec::new();
        let until = Some(t0 + Duration::from_millis(500));
        let r = poll(EVERY, until, &CancellationToken::new(), async || {
            times(t0, &mut at, 100)
        })
        .await;
        assert_eq!(r, Polled::TimedOut);
        // The sleep that ends past the deadline is followed by one more step, then no sleep.
        assert_eq!(at, ms(&[0, 200, 400, 600]));
        assert_eq!(t0.elapsed(), Duration::from_millis(600));
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_that_breaks_past_the_deadline_is_done() {
        let t0 = Instant::now();
        let mut at = Vec::new();
        let until = Some(t0 + Duration::from_millis(300));
        let r = poll(EVERY, until, &CancellationToken::new(), async || {
            times(t0, &mut at, 3)
        })
        .await;
        assert_eq!(r, Polled::Done(3));
        assert_eq!(at, ms(&[0, 200, 400]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_already_passed_still_runs_one_step() {
        let t0 = Instant::now();
        let mut at = Vec::new();
        let r = poll(EVERY, Some(t0), &CancellationToken::new(), async || {
            times(t0, &mut at, 100)
        })
        .await;
        assert_eq!(r, Polled::TimedOut);
        assert_eq!(at, ms(&[0]));
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_step_that_ends_past_the_deadline_is_not_followed_by_a_sleep() {
        let t0 = Instant::now();
        let mut at = Vec::new();
        let until = Some(t0 + Duration::from_millis(300));
        let r = poll(EVERY, until, &CancellationToken::new(), async || {
            tokio::time::sleep(Duration::from_millis(250)).await;
            times(t0, &mut at, 100)
        })
        .await;
        assert_eq!(r, Polled::TimedOut);
        assert_eq!(at, ms(&[250, 700]));
        assert_eq!(t0.elapsed(), Duration::from_millis(700));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_token_runs_no_step() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let mut ran = false;
        let r: Polled<()> = poll(EVERY, None, &cancel, async || {
            ran = true;
            ControlFlow::Continue(())
        })
        .await;
        assert_eq!(r, Polled::Interrupted);
        assert!(!ran);
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_during_a_sleep_ends_it_at_once() {
        let t0 = Instant::now();
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            c.cancel();
        });
        let mut at = Vec::new();
        let until = Some(t0 + Duration::from_secs(10));
        let r = poll(EVERY, until, &cancel, async || times(t0, &mut at, 100)).await;
        assert_eq!(r, Polled::Interrupted);
        assert_eq!(at, ms(&[0, 200]));
        assert_eq!(t0.elapsed(), Duration::from_millis(250));
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_during_a_step_lets_it_finish_and_runs_no_other() {
        let t0 = Instant::now();
        let cancel = CancellationToken::new();
        let mut at = Vec::new();
        let r = poll(EVERY, None, &cancel, async || {
            cancel.cancel();
            tokio::time::sleep(Duration::from_millis(50)).await;
            times(t0, &mut at, 100)
        })
        .await;
        assert_eq!(r, Polled::Interrupted);
        assert_eq!(at, ms(&[50]));
    }
}
