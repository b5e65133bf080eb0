//! `run`: the tailer as one task: the reader on its own thread (its file I/O blocks) and
//! the shipper on the runtime, joined by a bounded channel and the shared spool usage.
//!
//! Shutdown has two phases: the reader stops reading, fsyncs the spool and saves its
//! checkpoints; only then is the shipper awaited, so a stop never leaves an offset saved
//! ahead of the spool or a frame in the spool that no checkpoint accounts for.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::TailerConfig;
use crate::error::TailerError;
use crate::events::TailerEvents;
use crate::pipeline::{SHIPPER_QUEUE, SpoolUsage};
use crate::read_scheduler::ReadScheduler;
use crate::shipping::Shipper;

/// Runs the tailer until `shutdown` is cancelled or a part fails.
pub async fn run(
    config: TailerConfig,
    shutdown: CancellationToken,
    events: Arc<TailerEvents>,
) -> Result<(), TailerError> {
    if config.nice != 0 {
        renice_process(config.nice);
    }
    events.spool_limit(config.spool_max_bytes);
    let (tx, rx) = tokio::sync::mpsc::channel(SHIPPER_QUEUE);
    let usage = SpoolUsage::new();
    let mut shipper = Shipper::spawn(
        config.clone(),
        rx,
        usage.clone(),
        events.clone(),
        shutdown.clone(),
    );
    // The reader stops on shutdown, or when the shipper ends first (it could not start).
    let stop_reading = shutdown.child_token();
    let reader_stop = stop_reading.clone();
    let nice = config.nice;
    let mut reader = tokio::task::spawn_blocking(move || {
        if nice != 0 {
            // On Linux niceness is per thread: set it on this one too.
            set_nice(0, nice);
        }
        ReadScheduler::new(config, tx, usage, events)?.run(&reader_stop)
    });
    let (read, shipped) = tokio::select! {
        read = &mut reader => {
            let read = joined(read, "reader thread");
            if let Err(e) = &read {
                tracing::error!(error = %e, "reader stopped; stopping the shipper");
                shutdown.cancel();
            }
            // Phase two: the spool is fsynced and the offsets saved; now the shipper.
            (read, shipper.await)
        }
        shipped = &mut shipper => {
            if let Ok(Err(e)) = &shipped {
                tracing::error!(error = %e, "shipper stopped; stopping the reader");
            }
            stop_reading.cancel();
            (joined(reader.await, "reader thread"), shipped)
        }
    };
    let shipped = match shipped {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(TailerError::Task(format!("shipper failed: {e}"))),
        Err(e) => Err(TailerError::Task(format!("shipper task failed: {e}"))),
    };
    read.and(shipped)
}

fn joined(
    r: Result<Result<(), TailerError>, tokio::task::JoinError>,
    what: &str,
) -> Result<(), TailerError> {
    r.unwrap_or_else(|e| Err(TailerError::Task(format!("{what} failed: {e}"))))
}

/// Sets the niceness of every thread of the process that exists now (Linux keeps it per
/// thread; threads created later inherit it from their creator).
fn renice_process(nice: i32) {
    let tids: Vec<u32> = std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if tids.is_empty() {
        set_nice(0, nice);
    }
    for tid in tids {
        set_nice(tid, nice);
    }
}

#[allow(unsafe_code)]
fn set_nice(tid: u32, nice: i32) {
    // SAFETY: setpriority takes plain integers and has no memory effects.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
    if rc != 0 {
        tracing::warn!(nice, error = %std::io::Error::last_os_error(), "cannot set niceness; running at the current priority");
    }
}
