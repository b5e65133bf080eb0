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

/// One gathered batch, and whether the queue is still open.
#[derive(Debug)]
pub struct Gathered<T> {
    /// The requests, in arrival order.
    pub requests: Vec<T>,
    /// `false` once every sender is gone: commit this batch and stop.
    pub open: bool,
}

/// Gathers requests after `first` from `rx` until one of `limits` is reached; `events`
/// tells how many events a request carries.
pub async fn gather<T>(
    first: T,
    rx: &mut mpsc::Receiver<T>,
    limits: BatchLimits,
    events: impl Fn(&T) -> usize,
) -> Gathered<T> {
    let cap = Instant::now() + limits.max_wait;
    let mut n = events(&first);
    let mut requests = vec![first];
    while n < limits.max_events {
        let next = match rx.try_recv() {
            Ok(r) => Some(r),
            Err(mpsc::error::TryRecvError::Disconnected) => {
                return Gathered {
                    requests,
                    open: false,
                };
            }
            Err(mpsc::error::TryRecvError::Empty) => {
                let now = Instant::now();
                if now >= cap || limits.gap.is_zero() {
                    break;
                }
                let until = (now + limits.gap).min(cap);
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(r)) => Some(r),
                    Ok(None) => {
                        return Gathered {
                            requests,
                            open: false,
                        };
                    }
                    Err(_) => None,
                }
            }
        };
        let Some(r) = next else { break };
        n += events(&r);
        requests.push(r);
    }
    Gathered {
        requests,
        open: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
