//! `FileFollower`: reading one file (one seq) from an offset: its open input, its line
//! state, its multi-line joiner and event builder, and the offsets that become its
//! checkpoint.
//!
//! The input is the live file, or a rotated copy of it (plain or gzip) when the lines after
//! the checkpoint are only there any more. Either way offsets are those of the uncompressed
//! original, so an event read from `crawl.log.1.gz` gets the id it would have had if read
//! from `crawl.log`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Instant;

use contracts::CrawlId;
use flate2::read::GzDecoder;
use parsers::{EventBuilder, MultilineJoiner, RecordRef};

use crate::checkpointer::FileCheckpoint;
use crate::events::TailerEvents;
use crate::fingerprint::{self, FINGERPRINT_BYTES, Fingerprint};
use crate::frame_batch::FrameBatch;
use crate::line_reader::LineReader;

/// A hash of a path's bytes, to match the paths notify names against thousands of files
/// without hashing each path (`Path`'s own hash walks its components) every pass. Two
/// paths with the same key only cost an extra look.
pub fn path_key(path: &Path) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    use std::os::unix::ffi::OsStrExt;
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
        .hash_one(path.as_os_str().as_bytes())
}

/// Where a follower's bytes come from.
#[derive(Debug)]
pub enum Input {
    /// A plain file (the live file, or a renamed copy), read sequentially.
    Plain(File),
    /// A gzip-compressed rotated copy, decompressed as it is read.
    Gzip(Box<GzDecoder<File>>),
}

impl Input {
    fn reader(&mut self) -> &mut dyn Read {
        match self {
            Input::Plain(f) => f,
            Input::Gzip(g) => g.as_mut(),
        }
    }

    /// The plain file, if this is one.
    pub fn plain(&self) -> Option<&File> {
        match self {
            Input::Plain(f) => Some(f),
            Input::Gzip(_) => None,
        }
    }
}

/// What is fixed for every event of a file: built once per source.
#[derive(Debug, Clone)]
pub struct FileContext {
    /// Index of the source in the config.
    pub source: usize,
    /// The source's `path` pattern (stored in checkpoints).
    pub source_pattern: String,
    /// The file's crawl.
    pub crawl: CrawlId,
    /// Parser for the source.
    pub format: parsers::SourceFormat,
    /// Join stack traces.
    pub multiline: bool,
    /// The `app` on events.
    pub app: String,
    /// The `host` on events.
    pub host: String,
    /// The tailer id.
    pub tailer_id: u64,
    /// Longest line kept.
    pub max_line_bytes: usize,
}

/// One file being read.
#[derive(Debug)]
pub struct FileFollower {
    /// The path the file was found at; for a rotated file, the path it had.
    pub path: PathBuf,
    /// Device of the input file.
    pub dev: u64,
    /// Inode of the input file.
    pub inode: u64,
    /// The seq its events carry.
    pub seq: u64,
    /// Hash of its first bytes (grows with the file up to 256 bytes).
    pub fingerprint: Fingerprint,
    /// Rotated away (renamed, copied and truncated, deleted): read to the end, then done.
    pub rotated: bool,
    /// Read to its end and emitted; dropped once its last events are fsynced.
    pub done: bool,
    /// Events of every byte before this offset are in the spool (not yet fsynced).
    pub spooled: u64,
    /// Hash of the bytes before `spooled`.
    pub spooled_tail: Fingerprint,
    /// Events of every byte before this offset are fsynced: the checkpoint.
    pub durable: u64,
    /// Hash of the bytes before `durable`.
    pub durable_tail: Fingerprint,
    /// Size of the input file when last looked at.
    pub last_size: u64,
    /// When bytes last arrived (or the follower was opened).
    pub last_growth: Instant,
    /// The last read failed (logged once until a read succeeds).
    pub failing: bool,
    /// When it was last checked and read (see `ReadScheduler::read_all`).
    pub last_polled: Instant,
    /// [`path_key`] of `path`.
    pub key: u64,
    /// Whether notify watches its directory, once the reader has asked (`None`: ask).
    pub watched: Option<bool>,
    /// Its checkpoint entry as last made, and whether that was saved: made anew only
    /// when the file moved on, so an open file that did not costs no copy and no
    /// comparison at each save.
    entry: Option<(FileCheckpoint, bool)>,
    /// Static facts about the file.
    pub ctx: FileContext,
    input: Input,
    /// The first bytes read, while fewer than 256: the head fingerprint is taken from the
    /// bytes actually read, never re-read from the file, so it always describes the content
    /// that carries this seq (a pread could see a file rewritten in between).
    head: Option<Vec<u8>>,
    lines: LineReader,
    records: Records,
}

/// Lines to frames: the joiner and the builder, apart from the line reader so that the
/// lines it lends can be built while it is borrowed.
#[derive(Debug)]
struct Records {
    joiner: Option<MultilineJoiner>,
    builder: EventBuilder,
}

impl Records {
    fn new(ctx: &FileContext, seq: u64) -> Records {
        Records {
            joiner: ctx
                .multiline
                .then(|| MultilineJoiner::new(ctx.max_line_bytes)),
            builder: EventBuilder::new(
                ctx.format,
                ctx.tailer_id,
                seq,
                ctx.crawl.clone(),
                ctx.host.clone(),
                ctx.app.clone(),
                ctx.max_line_bytes,
            ),
        }
    }

    /// One physical line: joined, or built at once.
    fn emit(
        &mut self,
        line: RecordRef<'_>,
        read_time_us: i64,
        out: &mut FrameBatch,
        counters: &TailerEvents,
    ) {
        counters.line_read();
        match self.joiner.as_mut() {
            Some(j) => {
                if let Some(r) = j.push_ref(line) {
                    build(&mut self.builder, r, read_time_us, out, counters);
                }
            }
            None => build(&mut self.builder, line, read_time_us, out, counters),
        }
    }

    /// The pending multi-line record, if any, complete or not.
    fn flush(&mut self, read_time_us: i64, out: &mut FrameBatch, counters: &TailerEvents) {
        if let Some(r) = self.joiner.as_mut().and_then(MultilineJoiner::flush_ref) {
            build(&mut self.builder, r, read_time_us, out, counters);
        }
    }

    fn pending_offset(&self) -> Option<u64> {
        self.joiner
            .as_ref()
            .and_then(MultilineJoiner::pending_offset)
    }
}

/// Builds the event of `record` and appends its frame to `out`.
fn build(
    builder: &mut EventBuilder,
    record: RecordRef<'_>,
    read_time_us: i64,
    out: &mut FrameBatch,
    counters: &TailerEvents,
) {
    let event = builder.build_ref(record, read_time_us);
    counters.event_made(event.flags);
    if !out.push(&event) {
        // Cannot happen: the builder cuts every event to fit. A frame that does not fit
        // could not be spooled or read back, so it is never written.
        tracing::error!(id = %event.id, "event does not fit one frame; not spooled");
    }
}

impl FileFollower {
    /// A follower of `input`, whose next byte is at `offset`, carrying `seq`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        path: PathBuf,
        dev: u64,
        inode: u64,
        seq: u64,
        fingerprint: Fingerprint,
        offset: u64,
        tail: Fingerprint,
        input: Input,
        ctx: FileContext,
    ) -> FileFollower {
        FileFollower {
            key: path_key(&path),
            path,
            dev,
            inode,
            seq,
            fingerprint,
            rotated: false,
            done: false,
            spooled: offset,
            spooled_tail: tail,
            durable: offset,
            durable_tail: tail,
            last_size: 0,
            last_growth: Instant::now(),
            failing: false,
            last_polled: Instant::now(),
            watched: None,
            entry: None,
            head: None,
            lines: LineReader::new(offset, ctx.max_line_bytes),
            records: Records::new(&ctx, seq),
            input,
            ctx,
        }
    }

    /// Opens `file` (already positioned nowhere in particular) for reading from `offset`.
    pub fn seek_plain(file: &mut File, offset: u64) -> std::io::Result<()> {
        file.seek(SeekFrom::Start(offset)).map(|_| ())
    }

    /// The input.
    pub fn input(&self) -> &Input {
        &self.input
    }

    /// Offset of the next byte read from the input.
    pub fn position(&self) -> u64 {
        self.lines.position()
    }

    /// Whether a multi-line record is waiting for more lines.
    pub fn has_pending_record(&self) -> bool {
        self.records.pending_offset().is_some()
    }

    /// Takes the head fingerprint from the bytes read from here on; `prefix` holds the
    /// bytes before the current position (all of them: the position must be its length).
    pub fn collect_head(&mut self, prefix: Vec<u8>) {
        if prefix.len() as u64 == self.position() && prefix.len() < FINGERPRINT_BYTES {
            self.fingerprint = Fingerprint::of(&prefix);
            self.head = Some(prefix);
        }
    }

    /// Starts the file over under a new seq (it was truncated or rewritten in place).
    pub fn restart_as(&mut self, seq: u64) -> std::io::Result<()> {
        if let Input::Plain(f) = &mut self.input {
            f.seek(SeekFrom::Start(0))?;
        }
        self.head = Some(Vec::new());
        self.fingerprint = Fingerprint::of(b"");
        self.seq = seq;
        self.spooled = 0;
        self.durable = 0;
        self.spooled_tail = Fingerprint::of(b"");
        self.durable_tail = self.spooled_tail;
        self.lines = LineReader::new(0, self.ctx.max_line_bytes);
        self.records = Records::new(&self.ctx, seq);
        Ok(())
    }

    /// Reads up to about `budget` bytes, appending the frames of complete records to
    /// `out`. Returns the bytes read (0: at the end of the input for now).
    pub fn read(
        &mut self,
        scratch: &mut [u8],
        budget: usize,
        read_time_us: i64,
        out: &mut FrameBatch,
        counters: &TailerEvents,
    ) -> std::io::Result<u64> {
        let mut total = 0u64;
        while (total as usize) < budget {
            let want = (budget - total as usize).min(scratch.len());
            let records = &mut self.records;
            let n = self
                .lines
                .read_once(self.input.reader(), &mut scratch[..want], |line| {
                    records.emit(line, read_time_us, out, counters)
                })?;
            if n == 0 {
                break;
            }
            if let Some(head) = &mut self.head {
                let take = (FINGERPRINT_BYTES - head.len()).min(n);
                head.extend_from_slice(&scratch[..take]);
                self.fingerprint = Fingerprint::of(head);
                if head.len() >= FINGERPRINT_BYTES {
                    self.head = None;
                }
            }
            total += n as u64;
        }
        if total > 0 {
            self.last_growth = Instant::now();
            counters.read_bytes(total);
        }
        self.after_emit()?;
        Ok(total)
    }

    /// Emits what is held back because more could follow: the pending multi-line record
    /// and, when `last_line` (the file can no longer grow), a last line without `\n`.
    pub fn flush(
        &mut self,
        last_line: bool,
        read_time_us: i64,
        out: &mut FrameBatch,
        counters: &TailerEvents,
    ) -> std::io::Result<()> {
        if last_line {
            let records = &mut self.records;
            self.lines
                .take_partial(|line| records.emit(line, read_time_us, out, counters));
        }
        self.records.flush(read_time_us, out, counters);
        self.after_emit()
    }

    /// Moves `spooled` to what has been emitted (never past a pending multi-line record).
    fn after_emit(&mut self) -> std::io::Result<()> {
        let mut at = self.lines.line_start();
        if let Some(p) = self.records.pending_offset() {
            at = at.min(p);
        }
        if at != self.spooled {
            self.spooled = at;
            if let Input::Plain(f) = &self.input {
                if let Some(t) = fingerprint::tail_of(f, at)? {
                    self.spooled_tail = t;
                }
            } else {
                // A compressed copy cannot be read backwards; its checkpoint relies on the
                // head fingerprint alone (a zero-length tail means "not checked").
                self.spooled_tail = Fingerprint::default();
            }
        }
        Ok(())
    }

    /// The fsync of the spool made everything spooled durable.
    pub fn mark_durable(&mut self) {
        self.durable = self.spooled;
        self.durable_tail = self.spooled_tail;
    }

    /// Makes its checkpoint entry anew if the file moved on since it was last made.
    pub fn refresh_entry(&mut self) {
        let current = self.entry.as_ref().is_some_and(|(c, _)| {
            c.seq == self.seq
                && c.offset == self.durable
                && c.tail == self.durable_tail
                && c.fingerprint == self.fingerprint
                && c.rotated == self.rotated
        });
        if !current {
            self.entry = Some((self.checkpoint(), false));
        }
    }

    /// Its checkpoint entry as last made (see [`FileFollower::refresh_entry`]) and whether
    /// it was saved since.
    pub fn entry(&self) -> Option<(&FileCheckpoint, bool)> {
        self.entry.as_ref().map(|(c, saved)| (c, *saved))
    }

    /// The entry last made was saved.
    pub fn entry_saved(&mut self) {
        if let Some((_, saved)) = &mut self.entry {
            *saved = true;
        }
    }

    /// Its current checkpoint entry, and whether it is saved as it is.
    pub fn into_entry(mut self) -> (FileCheckpoint, bool) {
        self.refresh_entry();
        self.entry
            .take()
            .unwrap_or_else(|| (self.checkpoint(), false))
    }

    /// The checkpoint entry for this file.
    pub fn checkpoint(&self) -> FileCheckpoint {
        FileCheckpoint {
            path: self.path.clone(),
            dev: self.dev,
            inode: self.inode,
            fingerprint: self.fingerprint,
            tail: self.durable_tail,
            seq: self.seq,
            offset: self.durable,
            crawl: self.ctx.crawl.clone(),
            source: self.ctx.source_pattern.clone(),
            rotated: self.rotated,
        }
    }
}
