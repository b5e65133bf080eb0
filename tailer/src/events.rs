//! The tailer's counters: the only place they change, and their Prometheus rendering.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $help:literal,)*) => {
        /// Every counter and gauge the tailer exposes.
        #[derive(Debug, Default)]
        pub struct TailerEvents {
            $(#[doc = $help] pub $name: AtomicU64,)*
            /// Full or read-only disk episodes (spool, state, records): logged once each,
            /// rendered as `disk_full_episodes_total` and `disk_full`.
            pub disk: disk_space::DiskEpisodes,
        }

        impl TailerEvents {
            /// Renders the values in Prometheus text format, names prefixed `sluice_tailer_`.
            pub fn render_prometheus(&self, out: &mut String) {
                let mut e = metric_text::Exposition::new(out, "sluice_tailer");
                $(
                    let (name, value) = (stringify!($name), self.$name.load(Ordering::Relaxed));
                    if name.ends_with("_total") {
                        e.counter(name, $help, value);
                    } else {
                        e.gauge(name, $help, value);
                    }
                )*
                e.counter(
                    "disk_full_episodes_total",
                    "times reading paused because a disk was full, read-only or below its headroom",
                    self.disk.count(),
                );
                e.gauge(
                    "disk_full",
                    "1 while reading is paused for a full, read-only or low disk",
                    self.disk.active(),
                );
            }
        }
    };
}

counters! {
    lines_read_total: "lines read from files",
    events_total: "events made (multi-line records count once)",
    bytes_read_total: "bytes read from files",
    truncated_total: "lines cut to fit one frame",
    parse_failed_total: "lines that failed their source's parser and were shipped as plain",
    time_suspect_total: "events whose time was out of range and replaced by the read time",
    invalid_utf8_total: "lines with invalid UTF-8",
    files_followed: "files currently followed",
    files_open: "files currently open",
    rotations_total: "rotations detected (rename, copytruncate, compressed)",
    copytruncate_window_bytes_total: "bytes that may have been lost in a copytruncate window (written between copy and truncate)",
    spool_bytes: "bytes in the spool",
    spool_max_bytes: "the spool's size limit (spool_max_bytes): reading pauses when spool_bytes reaches it",
    spool_buckets: "bucket files in the spool",
    spool_full_pauses_total: "times reading paused because the spool was full",
    spool_paused: "1 while reading is paused because the spool is full",
    live_skipped_total: "frames not sent live because the shipper was behind (the repair send covers them)",
    live_wait_us_total: "microseconds the reader waited for the shipper to take a live copy (pacing by a busy shipper)",
    frames_sent_total: "frames sent in live packets",
    frames_acked_total: "frames acknowledged by bucks",
    frames_rejected_total: "frames a buck refused for good (invalid crawl id, undecodable)",
    packets_sent_total: "live packets sent",
    nacks_total: "packets a buck refused for now (retry later)",
    repair_chunks_sent_total: "bucket chunks sent by the repair path",
    buckets_delivered_total: "buckets acknowledged whole by every home",
    buckets_pruned_total: "delivered buckets deleted",
    connections_up: "connections to bucks currently up",
    connect_failures_total: "failed connection attempts",
    stand_in_packets_total: "live packets sent to a stand-in because every home was down",
    crawl_rejected_total: "files skipped because the crawl in their path is not a valid crawl id",
    files_lost_total: "files rotated away or deleted before being read to their end, with no rotated copy found",
    live_dropped_total: "frames whose live copy was dropped because a buck's in-flight buffer was full (the repair send covers them)",
    hello_rejected_total: "connections a buck refused at the hello (key not on its allow-list, version)",
    connections_lost_total: "established connections to bucks that closed or failed",
    repair_buckets_total: "(bucket, home) pairs whose bucket was sent whole by the repair path",
    buckets_pending: "sealed buckets not yet acknowledged whole by every home",
    janitor_passes_total: "spool janitor passes (each weighs every sealed bucket for pruning)",
}

/// The reading side's events: each observable happening is one method.
impl TailerEvents {
    /// `n` bytes were read from a file.
    pub fn read_bytes(&self, n: u64) {
        self.bytes_read_total.fetch_add(n, Ordering::Relaxed);
    }

    /// One physical line was read.
    pub fn line_read(&self) {
        self.lines_read_total.fetch_add(1, Ordering::Relaxed);
    }

    /// An event was made; its `flags` say what happened to it on the way.
    pub fn event_made(&self, flags: contracts::EventFlags) {
        use contracts::EventFlags as F;
        self.events_total.fetch_add(1, Ordering::Relaxed);
        for (bit, counter) in [
            (F::TRUNCATED, &self.truncated_total),
            (F::PARSE_FAILED, &self.parse_failed_total),
            (F::TIME_SUSPECT, &self.time_suspect_total),
            (F::INVALID_UTF8, &self.invalid_utf8_total),
        ] {
            if flags.has(bit) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A rotation (rename, copytruncate, compression) was detected.
    pub fn rotation(&self) {
        self.rotations_total.fetch_add(1, Ordering::Relaxed);
    }

    /// `bytes` were lost between a copy and a truncate (copytruncate).
    pub fn copytruncate_window(&self, bytes: u64) {
        self.copytruncate_window_bytes_total
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// A file's crawl component was not a valid crawl id.
    pub fn crawl_rejected(&self) {
        self.crawl_rejected_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A file went away before it was read to its end.
    pub fn file_lost(&self) {
        self.files_lost_total.fetch_add(1, Ordering::Relaxed);
    }

    /// The files followed and open now.
    pub fn files(&self, followed: usize, open: usize) {
        self.files_followed
            .store(followed as u64, Ordering::Relaxed);
        self.files_open.store(open as u64, Ordering::Relaxed);
    }

    /// Reading paused (`true`) or resumed because of the spool size.
    pub fn spool_pause(&self, paused: bool) {
        if paused {
            self.spool_full_pauses_total.fetch_add(1, Ordering::Relaxed);
        }
        self.spool_paused
            .store(u64::from(paused), Ordering::Relaxed);
    }
}

/// The shipping side's events: each observable happening is one method.
impl TailerEvents {
    /// A connection to a buck was established.
    pub fn connected(&self) {
        self.connections_up.fetch_add(1, Ordering::Relaxed);
    }

    /// An established connection ended; `lost` unless it was closed for shutdown.
    pub fn disconnected(&self, lost: bool) {
        self.connections_up.fetch_sub(1, Ordering::Relaxed);
        if lost {
            self.connections_lost_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection attempt failed; `refused` when the buck turned the hello down.
    pub fn connect_failed(&self, refused: bool) {
        self.connect_failures_total.fetch_add(1, Ordering::Relaxed);
        if refused {
            self.hello_rejected_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A live packet of `frames` frames was sent (to a stand-in if `stand_in`).
    pub fn live_packet_sent(&self, frames: u32, stand_in: bool) {
        self.packets_sent_total.fetch_add(1, Ordering::Relaxed);
        self.frames_sent_total
            .fetch_add(frames.into(), Ordering::Relaxed);
        if stand_in {
            self.stand_in_packets_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The live copy of `frames` frames was dropped (the repair send covers them).
    pub fn live_dropped(&self, frames: u64) {
        self.live_dropped_total.fetch_add(frames, Ordering::Relaxed);
    }

    /// A buck acked a message: `acked` frames stored, `rejected` refused for good.
    pub fn acked(&self, acked: u64, rejected: u64) {
        self.frames_acked_total.fetch_add(acked, Ordering::Relaxed);
        self.frames_rejected_total
            .fetch_add(rejected, Ordering::Relaxed);
    }

    /// A buck nacked a message (it is sent again later).
    pub fn nacked(&self) {
        self.nacks_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A repair chunk was sent.
    pub fn repair_chunk_sent(&self) {
        self.repair_chunks_sent_total
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A home acked the last chunk of a bucket's repair send.
    pub fn repair_done(&self) {
        self.repair_buckets_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A bucket was acked whole by every home; `pending` sealed buckets are left.
    pub fn bucket_delivered(&self, pending: usize) {
        self.buckets_delivered_total.fetch_add(1, Ordering::Relaxed);
        self.buckets_pending(pending);
    }

    /// `pending` sealed buckets are not yet delivered to every home.
    pub fn buckets_pending(&self, pending: usize) {
        self.buckets_pending
            .store(pending as u64, Ordering::Relaxed);
    }

    /// A delivered bucket was deleted from the spool.
    pub fn bucket_pruned(&self) {
        self.buckets_pruned_total.fetch_add(1, Ordering::Relaxed);
    }

    /// The spool's size limit, from the config.
    pub fn spool_limit(&self, bytes: u64) {
        self.spool_max_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The spool now holds `bytes` bytes in `buckets` bucket files.
    pub fn spool_size(&self, bytes: u64, buckets: u64) {
        self.spool_bytes.store(bytes, Ordering::Relaxed);
        self.spool_buckets.store(buckets, Ordering::Relaxed);
    }

    /// The spool janitor finished a pass.
    pub fn janitor_pass(&self) {
        self.janitor_passes_total.fetch_add(1, Ordering::Relaxed);
    }
}
