//! The record writer: the one task that writes the records beside spool buckets (the
//! `.delivered` and `.acked` sidecars), so that the shipper never waits on a disk.
//!
//! Records are written one at a time. Two writes of one bucket's record racing on the
//! blocking pool could leave the older one on disk, and a delivered bucket would then
//! look undelivered.
//!
//! Why its queue is bounded and the shipper still never stalls on it: every record is the
//! whole state of its sidecar (the homes that have the bucket, or every range each home
//! acked), so a newer record for the same sidecar replaces one still waiting. The writer
//! takes records off [`RECORD_QUEUE`] while it writes or waits for space, and keeps at
//! most one per sidecar: what waits is bounded by the buckets in the spool, nothing is
//! lost, and the shipper's `send` finds room within one turn of this task.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use super::acked_ranges::AckedRecord;
use super::delivery::DeliveryRecord;
use crate::events::TailerEvents;

/// Capacity of the shipper-to-writer channel, in records. The writer drains it even while
/// a write is under way, so it fills only for a moment; see the module documentation.
pub(crate) const RECORD_QUEUE: usize = 64;

/// The first and the longest wait before a delivery record refused for space is written
/// again.
const RECORD_RETRY_MIN: Duration = Duration::from_millis(100);
const RECORD_RETRY_MAX: Duration = Duration::from_secs(5);

/// A record to write beside its bucket at `path`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SidecarWrite {
    /// Which homes have the bucket whole; `complete` wakes the janitor after.
    Delivery {
        /// The bucket file.
        path: PathBuf,
        /// The record.
        record: DeliveryRecord,
        /// Every home has the bucket: it may be pruned.
        complete: bool,
    },
    /// What each home acked. Skipped when the bucket is gone (pruned meanwhile).
    Acked {
        /// The bucket file.
        path: PathBuf,
        /// Every range acked so far, per home.
        record: AckedRecord,
    },
}

/// Which sidecar a write replaces: a bucket has one of each kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Sidecar {
    Delivery(PathBuf),
    Acked(PathBuf),
}

impl SidecarWrite {
    fn sidecar(&self) -> Sidecar {
        match self {
            SidecarWrite::Delivery { path, .. } => Sidecar::Delivery(path.clone()),
            SidecarWrite::Acked { path, .. } => Sidecar::Acked(path.clone()),
        }
    }
}

/// Records waiting to be written, at most one per sidecar, oldest first.
#[derive(Default)]
struct Waiting {
    order: VecDeque<Sidecar>,
    by_sidecar: HashMap<Sidecar, SidecarWrite>,
}

impl Waiting {
    /// Adds `write`, replacing a record of the same sidecar that has not been written yet.
    fn push(&mut self, mut write: SidecarWrite) {
        let sidecar = write.sidecar();
        if let Some(older) = self.by_sidecar.get(&sidecar) {
            // The janitor is woken if either asked for it: waking it is only a hint.
            if let (
                SidecarWrite::Delivery { complete: was, .. },
                SidecarWrite::Delivery { complete, .. },
            ) = (older, &mut write)
            {
                *complete |= *was;
            }
        } else {
            self.order.push_back(sidecar.clone());
        }
        self.by_sidecar.insert(sidecar, write);
    }

    /// Puts back a write that found no space, unless a newer one of its sidecar came in.
    fn retry(&mut self, write: SidecarWrite) {
        let sidecar = write.sidecar();
        if !self.by_sidecar.contains_key(&sidecar) {
            self.order.push_front(sidecar.clone());
            self.by_sidecar.insert(sidecar, write);
        }
    }

    fn pop(&mut self) -> Option<SidecarWrite> {
        let sidecar = self.order.pop_front()?;
        self.by_sidecar.remove(&sidecar)
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Writes the records received on `rx` until it closes and every record is written.
pub(crate) async fn write_records(
    mut rx: mpsc::Receiver<SidecarWrite>,
    janitor_kick: Arc<Notify>,
    events: Arc<TailerEvents>,
) {
    let mut waiting = Waiting::default();
    let mut open = true;
    let mut wait = RECORD_RETRY_MIN;
    loop {
        if waiting.is_empty() {
            match rx.recv().await {
                Some(w) => waiting.push(w),
                None => return,
            }
        }
        let Some(write) = waiting.pop() else { continue };
        let ev = events.clone();
        let job = tokio::task::spawn_blocking(move || save_record(write, &ev));
        tokio::pin!(job);
        let saved = loop {
            tokio::select! {
                saved = &mut job => break saved,
                got = rx.recv(), if open => match got {
                    Some(w) => waiting.push(w),
                    None => open = false,
                },
            }
        };
        match saved {
            Ok(Ok(complete)) => {
                wait = RECORD_RETRY_MIN;
                if complete {
                    janitor_kick.notify_one();
                }
            }
            // A delivery record is what lets the janitor free the bucket: on a full
            // disk it is written again until it fits, or the spool could never shrink.
            Ok(Err(again)) => {
                waiting.retry(again);
                let pause = tokio::time::sleep(wait);
                tokio::pin!(pause);
                loop {
                    tokio::select! {
                        _ = &mut pause => break,
                        got = rx.recv(), if open => match got {
                            Some(w) => waiting.push(w),
                            None => open = false,
                        },
                    }
                }
                wait = (wait * 2).min(RECORD_RETRY_MAX);
            }
            Err(e) => tracing::error!("bucket record writer failed: {e}"),
        }
        if !open && waiting.is_empty() {
            return;
        }
    }
}

/// Writes one record. `Ok(complete)` once written (or given up for a reason waiting
/// cannot fix), `complete` meaning the bucket is delivered and the janitor may go;
/// `Err(write)` when a delivery record found no space, to be written again later.
fn save_record(write: SidecarWrite, events: &TailerEvents) -> Result<bool, SidecarWrite> {
    match write {
        SidecarWrite::Delivery {
            path,
            record,
            complete,
        } => match record.save(&path) {
            Ok(()) => Ok(complete),
            Err(e) => {
                let record_path = DeliveryRecord::path_of(&path);
                if let Some(fault) = disk_space::StorageFault::of(&e) {
                    events.disk.fault("tailer", &record_path, fault);
                    return Err(SidecarWrite::Delivery {
                        path,
                        record,
                        complete,
                    });
                }
                tracing::error!(
                    path = %record_path.display(),
                    "cannot write delivery record (the bucket will be sent again after a restart): {e}"
                );
                Ok(false)
            }
        },
        SidecarWrite::Acked { path, record } => {
            if path.exists()
                && let Err(e) = record.merge_into_file(&path)
            {
                let record_path = AckedRecord::path_of(&path);
                // Without it only a restart's re-send grows: on a full disk, skip it.
                match disk_space::StorageFault::of(&e) {
                    Some(fault) => {
                        events.disk.fault("tailer", &record_path, fault);
                    }
                    None => tracing::warn!(
                        path = %record_path.display(),
                        "cannot write acked record (a restart would re-send more of the bucket): {e}"
                    ),
                }
            }
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn delivery(path: &str, delivered: &[&str], complete: bool) -> SidecarWrite {
        SidecarWrite::Delivery {
            path: path.into(),
            record: DeliveryRecord {
                version: super::super::delivery::DELIVERY_RECORD_VERSION,
                homes: ["a", "b"].iter().map(|h| h.to_string()).collect(),
                delivered: delivered.iter().map(|h| h.to_string()).collect(),
                expected: Default::default(),
                unrouted: 0,
            },
            complete,
        }
    }

    #[test]
    fn a_newer_record_replaces_a_waiting_one_of_the_same_sidecar_in_place() {
        let mut w = Waiting::default();
        w.push(delivery("/s/1.b", &[], false));
        w.push(SidecarWrite::Acked {
            path: "/s/1.b".into(),
            record: AckedRecord::default(),
        });
        w.push(delivery("/s/2.b", &[], false));
        w.push(delivery("/s/1.b", &["a", "b"], true));
        w.push(delivery("/s/1.b", &["a"], false));
        let SidecarWrite::Delivery {
            path,
            record,
            complete,
        } = w.pop().unwrap()
        else {
            panic!("the oldest sidecar comes first")
        };
        assert_eq!(path, PathBuf::from("/s/1.b"));
        assert_eq!(record.delivered, BTreeSet::from(["a".to_string()]));
        assert!(complete, "a replaced record still wakes the janitor");
        assert!(matches!(w.pop(), Some(SidecarWrite::Acked { .. })));
        assert!(
            matches!(w.pop(), Some(SidecarWrite::Delivery { path, .. }) if path == Path::new("/s/2.b"))
        );
        assert!(w.pop().is_none() && w.is_empty());
    }

    #[test]
    fn a_retried_write_goes_first_unless_a_newer_one_came_in() {
        let mut w = Waiting::default();
        w.push(delivery("/s/2.b", &[], false));
        w.retry(delivery("/s/1.b", &[], false));
        assert_eq!(w.pop(), Some(delivery("/s/1.b", &[], false)));

        w.push(delivery("/s/1.b", &["a"], false));
        w.retry(delivery("/s/1.b", &[], false));
        assert_eq!(w.pop(), Some(delivery("/s/2.b", &[], false)));
        assert_eq!(w.pop(), Some(delivery("/s/1.b", &["a"], false)));
    }

    #[tokio::test]
    async fn every_record_is_written_before_the_writer_ends() {
        let dir = tempfile::tempdir().unwrap();
        let bucket = dir.path().join("00.b");
        std::fs::write(&bucket, b"frames").unwrap();
        let (tx, rx) = mpsc::channel(1);
        let kick = Arc::new(Notify::new());
        let writer = tokio::spawn(write_records(
            rx,
            kick.clone(),
            Arc::new(TailerEvents::default()),
        ));
        let p = bucket.to_str().unwrap();
        for w in [delivery(p, &[], false), delivery(p, &["a", "b"], true)] {
            tx.send(w).await.unwrap();
        }
        drop(tx);
        writer.await.unwrap();
        let saved = DeliveryRecord::load(&bucket).unwrap().unwrap();
        assert!(saved.complete(), "the last record is on disk: {saved:?}");
        tokio::time::timeout(Duration::from_secs(5), kick.notified())
            .await
            .expect("the janitor was woken");
    }
}
