//! How the segment writer gathers one transaction's requests (group commit).
//!
//! Every commit writes again each B-tree page it touched, and the `url_host` index takes
//! inserts all over its pages: a commit of a few packets rewrites (and checksums into the
//! WAL) nearly as many index pages as a commit of many. So the batch grows for as long
//! as requests keep coming, each within `gap` of the last: under a backlog the queue
//! refills while the writer commits, and one transaction takes all of it. It is cut at
//! `max_events` and at `max_wait` after its first request, so a steady stream cannot
//! hold its first acks (and the live view) back for longer than that; and it stops at
//! the first quiet `gap`, so a lone packet waits at most `gap`.
//!
//! The writer stores each request as it takes it ([`Gathering::next`] after each), so
//! its inserting overlaps the batch's gathering: when gathering came first, the writer
//! sat idle for most of `max_wait` while connections prepared their next rows, and the
//! rows were inserted only after.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

/// When a batch stops growing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most events in one batch (`writer_max_batch_events`); one request is never split,
    /// so a batch may pass it by the last request's events.
    pub max_events: usize,
    /// Longest wait for the next request (`writer_max_delay_ms`): a quiet gap this long
    /// ends the batch.
    pub gap: Duration,
    /// Longest a batch keeps growing after its first request (`writer_max_batch_ms`).
    pub max_wait: Duration,
}

/// One batch being gathered: the writer asks for the next request whenever it has stored
/// the one before, so a batch's rows are inserted while its later requests arrive, and the
/// commit follows the last one at once.
#[derive(Debug)]
pub struct Gathering {
    limits: BatchLimits,
    /// When the batch stops growing, whatever still comes.
    cap: Instant,
    events: usize,
    open: bool,
}

impl Gathering {
    /// A batch whose first request (just received) carries `first_events` events.
    pub fn start(limits: BatchLimits, first_events: usize) -> Gathering {
        Gathering {
            limits,
            cap: Instant::now() + limits.max_wait,
            events: first_events,
            open: true,
        }
    }

    /// The batch's next request, or `None` once one of the limits is reached (or every
    /// sender is gone, see [`open`](Gathering::open)); `events` tells how many events a
    /// request carries.
    pub async fn next<T>(
        &mut self,
        rx: &mut mpsc::Receiver<T>,
        events: impl Fn(&T) -> usize,
    ) -> Option<T> {
        if !self.open || self.events >= self.limits.max_events {
            return None;
        }
        let now = Instant::now();
        // Checked before a queued request too: under a backlog the queue never runs dry,
        // and the time between requests is the writer's own inserting.
        if now >= self.cap {
            return None;
        }
        let next = match rx.try_recv() {
            Ok(r) => Some(r),
            Err(mpsc::error::TryRecvError::Disconnected) => None,
            Err(mpsc::error::TryRecvError::Empty) => {
                if self.limits.gap.is_zero() {
                    return None;
                }
                let until = (now + self.limits.gap).min(self.cap);
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(r) => r,
                    Err(_) => return None,
                }
            }
        };
        match next {
            Some(r) => {
                self.events += events(&r);
                Some(r)
            }
            None => {
                self.open = false;
                None
            }
        }
    }

    /// `false` once every sender is gone: commit this batch and stop.
    pub fn open(&self) -> bool {
        self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One gathered batch, and whether the queue is still open.
    struct Gathered<T> {
        requests: Vec<T>,
        open: bool,
    }

    /// Every request of the batch that starts with `first`, as the writer takes them.
    async fn gather(
        first: usize,
        rx: &mut mpsc::Receiver<usize>,
        limits: BatchLimits,
        events: impl Fn(&usize) -> usize,
    ) -> Gathered<usize> {
        let mut g = Gathering::start(limits, events(&first));
        let mut requests = vec![first];
        while let Some(r) = g.next(rx, &events).await {
            requests.push(r);
        }
        Gathered {
            requests,
            open: g.open(),
        }
    }

    const LIMITS: BatchLimits = BatchLimits {
        max_events: 1000,
        gap: Duration::from_millis(2),
        max_wait: Duration::from_millis(50),
    };

    /// Sends a request of `events` events every `every`, `count` times.
    fn feed(tx: mpsc::Sender<usize>, every: Duration, count: usize, events: usize) {
        tokio::spawn(async move {
            for _ in 0..count {
                tokio::time::sleep(every).await;
                if tx.send(events).await.is_err() {
                    return;
                }
            }
        });
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_within_the_gap_grows_one_batch_up_to_the_time_cap() {
        let (tx, mut rx) = mpsc::channel(1024);
        feed(tx, Duration::from_millis(1), 200, 1);
        let start = Instant::now();
        let first = rx.recv().await.unwrap();
        let g = gather(first, &mut rx, LIMITS, |n| *n).await;
        assert!(g.open);
        // Requests at 1, 2, ... ms; the cap is 50 ms after the first (the one due at
        // the cap itself may fall on either side of it).
        assert!(
            (50..=51).contains(&g.requests.len()),
            "{}",
            g.requests.len()
        );
        assert_eq!(start.elapsed(), Duration::from_millis(51));
    }

    #[tokio::test(start_paused = true)]
    async fn requests_further_apart_than_the_gap_are_committed_one_by_one() {
        let (tx, mut rx) = mpsc::channel(1024);
        feed(tx, Duration::from_millis(3), 10, 5);
        for _ in 0..10 {
            let first = rx.recv().await.unwrap();
            let waited = Instant::now();
            let g = gather(first, &mut rx, LIMITS, |n| *n).await;
            assert_eq!(g.requests, vec![5]);
            assert!(
                waited.elapsed() <= LIMITS.gap,
                "a lone request waits at most one gap"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_is_cut_at_the_event_limit_without_waiting() {
        let (tx, mut rx) = mpsc::channel(1024);
        for _ in 0..30 {
            tx.send(100).await.unwrap();
        }
        let start = Instant::now();
        let first = rx.recv().await.unwrap();
        let g = gather(first, &mut rx, LIMITS, |n| *n).await;
        assert_eq!(g.requests.len(), 10, "1000 events");
        assert_eq!(start.elapsed(), Duration::ZERO);
        let next = rx.recv().await.unwrap();
        let g = gather(next, &mut rx, LIMITS, |n| *n).await;
        assert_eq!(g.requests.len(), 10, "the rest waits for the next batch");
    }

    #[tokio::test(start_paused = true)]
    async fn a_queue_that_never_runs_dry_is_cut_at_the_time_cap() {
        let (tx, mut rx) = mpsc::channel(1024);
        for _ in 0..200 {
            tx.send(1).await.unwrap();
        }
        let limits = BatchLimits {
            max_events: 1_000_000,
            ..LIMITS
        };
        let first = rx.recv().await.unwrap();
        let mut g = Gathering::start(limits, first);
        let mut taken = 1;
        // The writer takes 1 ms to store each request.
        tokio::time::advance(Duration::from_millis(1)).await;
        while g.next(&mut rx, |n| *n).await.is_some() {
            taken += 1;
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert_eq!(taken, 50, "50 ms of inserting, then the commit");
        assert!(g.open());
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_gap_commits_what_is_queued_at_once() {
        let (tx, mut rx) = mpsc::channel(1024);
        tx.send(1).await.unwrap();
        tx.send(1).await.unwrap();
        feed(tx, Duration::from_millis(1), 5, 1);
        let first = rx.recv().await.unwrap();
        let limits = BatchLimits {
            gap: Duration::ZERO,
            ..LIMITS
        };
        let g = gather(first, &mut rx, limits, |n| *n).await;
        assert_eq!(g.requests.len(), 2);
        assert!(g.open);
    }

    #[tokio::test(start_paused = true)]
    async fn closed_senders_end_the_batch_and_say_so() {
        let (tx, mut rx) = mpsc::channel(1024);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        drop(tx);
        let first = rx.recv().await.unwrap();
        let g = gather(first, &mut rx, LIMITS, |n| *n).await;
        assert_eq!(g.requests, vec![1, 2]);
        assert!(!g.open);
    }
}
