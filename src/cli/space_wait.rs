//! Starting on a full or read-only disk: wait for space instead of exiting.
//!
//! An agent's start writes a little (keys, state directories, catalogs). On a crawler
//! host whose disk filled overnight, exiting would leave the host without its agent until
//! someone restarts it; waiting means it starts by itself once space returns. Only
//! storage faults (ENOSPC, EDQUOT, EROFS anywhere in the error's chain) are waited out;
//! any other error ends the start at once.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Longest wait between two tries.
pub const START_RETRY_MAX: Duration = Duration::from_secs(30);

/// Runs `attempt` until it succeeds or fails for a reason other than a storage fault,
/// waiting 1, 2, 4 ... 30 s between tries and logging the wait once. `Ok(None)` when
/// `shutdown` is cancelled while waiting.
pub async fn start_when_space<T, F, Fut>(
    agent: &str,
    dir: &Path,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> anyhow::Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut wait = Duration::from_secs(1);
    let mut told = false;
    loop {
        let e = match attempt().await {
            Ok(v) => {
                if told {
                    tracing::info!(agent, "space is back: started");
                }
                return Ok(Some(v));
            }
            Err(e) => e,
        };
        let Some(fault) = e.chain().find_map(disk_space::StorageFault::in_chain) else {
            return Err(e);
        };
        if shutdown.is_cancelled() {
            return Ok(None);
        }
        if !told {
            let existing = dir.ancestors().find(|p| p.exists()).unwrap_or(dir);
            let free = disk_space::free_space(existing)
                .map(|s| format!("{} bytes free of {}", s.available, s.total))
                .unwrap_or_else(|e| format!("free space unknown: {e}"));
            tracing::warn!(
                agent,
                dir = %dir.display(),
                "cannot start: {} ({free}): {e:#}; waiting for space, trying again every {} s at most (free space on that file system, or stop with Ctrl-C)",
                fault.name(),
                START_RETRY_MAX.as_secs()
            );
            told = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return Ok(None),
        }
        wait = (wait * 2).min(START_RETRY_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn enospc() -> anyhow::Error {
        anyhow::Error::new(std::io::Error::from_raw_os_error(libc::ENOSPC)).context("writing a key")
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_disk_is_waited_out_and_other_errors_are_not() {
        let dir = Path::new("/");
        let shutdown = CancellationToken::new();
        let tries = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let v = start_when_space("test", dir, &shutdown, || async {
            if tries.fetch_add(1, Ordering::Relaxed) < 3 {
                Err(enospc())
            } else {
                Ok(7)
            }
        })
        .await
        .unwrap();
        assert_eq!(v, Some(7));
        assert_eq!(tries.load(Ordering::Relaxed), 4);
        // 1 + 2 + 4 s of backoff, on paused time.
        assert_eq!(started.elapsed(), Duration::from_secs(7));

        let tries = AtomicU32::new(0);
        let e = start_when_space("test", dir, &shutdown, || async {
            tries.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(anyhow::anyhow!("bad config"))
        })
        .await
        .unwrap_err();
        assert_eq!(e.to_string(), "bad config");
        assert_eq!(tries.load(Ordering::Relaxed), 1);

        shutdown.cancel();
        let none = start_when_space("test", dir, &shutdown, || async { Err::<(), _>(enospc()) })
            .await
            .unwrap();
        assert_eq!(none, None);
    }
}
