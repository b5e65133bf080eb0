//! `BuckConnection`: the one TCP connection from this tailer to one buck, kept open.
//!
//! A connection task owns the socket and the sealed [`Session`]; it knows nothing of
//! packets, buckets or delivery. It connects, says hello, reports `Up` with an outbox to
//! the shipper, then seals whatever the shipper puts in the outbox and forwards every ack
//! and nack back. Pings keep the connection alive and prove the buck is still there; a
//! connection that hears nothing for `idle_timeout_ms` is dropped. Whenever a connection
//! ends the task reports `Down` and tries again after an exponential, jittered backoff.
//!
//! The shipper keeps every unacknowledged message itself and re-sends it on the next
//! `Up`, so nothing is lost when this task drops a connection mid-stream. The outbox is
//! bounded ([`OUTBOX_QUEUE`]); the shipper only fills the room it has and never waits on
//! it, so this task may wait on the shipper's channel without a cycle.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use contracts::keys::KeyPair;
use contracts::transport::{
    ChunkHead, ClientHello, FRAME_STREAM_VERSION, HandshakeError, JoinError, Message, PackedFrames,
    Session, TransportError, codec, join,
};
use contracts::{BuckEntry, CrawlId};
use crypto_box::PublicKey;
use futures::{SinkExt, StreamExt};
use parsers::stream_events::to_version1_frames;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::shipper::OUTBOX_QUEUE;
use crate::events::TailerEvents;

/// Messages whose frames exceed this are sealed on the blocking pool: compressing and
/// encrypting a 1 MiB bucket chunk takes milliseconds, too long to hold a runtime thread.
const SEAL_INLINE_MAX_BYTES: usize = 128 * 1024;

/// Numbers every connection, so the shipper can tell a stale report from a current one.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// What every connection of this tailer shares.
#[derive(Clone)]
pub(crate) struct LinkParams {
    /// This tailer's id, sent in the hello.
    pub tailer_id: u64,
    /// This host's name, sent in the hello for the buck's logs.
    pub host: String,
    /// This tailer's key pair.
    pub keys: KeyPair,
    /// Whether messages are sealed.
    pub encryption: bool,
    /// The newest protocol version offered in the hello.
    pub max_protocol_version: u8,
    /// zlib level of what the tailer sends.
    pub compression_level: u32,
    /// TCP connect plus hello exchange.
    pub connect_timeout: Duration,
    /// Keep-alive interval.
    pub ping_interval: Duration,
    /// Silence after which the connection is dropped.
    pub idle_timeout: Duration,
    /// Backoff bounds, in milliseconds.
    pub backoff_min_ms: u64,
    /// Backoff bounds, in milliseconds.
    pub backoff_max_ms: u64,
}

/// What a connection task tells the shipper.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// A connection is established: what is put in `outbox` is sealed and sent.
    Up {
        /// The buck's id.
        buck: String,
        /// This connection's number.
        generation: u64,
        /// Where the shipper puts messages for this connection.
        outbox: mpsc::Sender<Outgoing>,
    },
    /// A connection attempt failed or an established connection ended.
    Down {
        /// The buck's id.
        buck: String,
        /// The connection's number (0 for a failed attempt).
        generation: u64,
    },
    /// The buck answered a message: an ack or a nack.
    Reply {
        /// The buck's id.
        buck: String,
        /// The answer.
        message: Message,
    },
}

/// Why a connection attempt or an established connection ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("no answer within {0:?} (connect and hello)")]
    Timeout(Duration),
    #[error("the buck refused the connection: {0}")]
    Rejected(String),
    #[error(
        "the buck closed the connection during the hello (is this tailer's public key on its allow-list?)"
    )]
    ClosedInHello,
    #[error("bad hello from the buck: {0}")]
    BadHello(contracts::DecodeError),
    #[error("the buck at this address says it is {got:?}: fix the cluster file's ingest address")]
    WrongBuck { got: String },
    #[error(
        "the buck answered encrypted = {got} while this tailer has encryption = {want}: both sides must agree"
    )]
    EncryptionMismatch { want: bool, got: bool },
    #[error("{0}")]
    Handshake(HandshakeError),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Transport(#[from] TransportError),
    #[error("the buck sent {0}, which only a tailer sends")]
    Unexpected(&'static str),
    #[error("the buck closed the connection")]
    Closed,
    #[error("nothing heard from the buck for {0:?}")]
    Idle(Duration),
    #[error("sealing a message failed: {0}")]
    SealTask(String),
}

type Wire = Framed<TcpStream, LengthDelimitedCodec>;

/// The task that keeps one buck's connection open.
pub(crate) struct BuckConnection {
    entry: BuckEntry,
    buck_key: Option<PublicKey>,
    params: Arc<LinkParams>,
    events: Arc<TailerEvents>,
    to_shipper: mpsc::Sender<LinkEvent>,
    cancel: CancellationToken,
}

impl BuckConnection {
    /// Starts the task for `entry`; it runs until `cancel` fires.
    pub(crate) fn spawn(
        entry: BuckEntry,
        params: Arc<LinkParams>,
        events: Arc<TailerEvents>,
        to_shipper: mpsc::Sender<LinkEvent>,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        // Checked when the cluster file is loaded, so a missing key here means encryption is off.
        let buck_key = entry.public_key();
        let conn = BuckConnection {
            entry,
            buck_key,
            params,
            events,
            to_shipper,
            cancel,
        };
        tokio::spawn(conn.run())
    }

    async fn run(self) {
        let mut backoff = Backoff::new(self.params.backoff_min_ms, self.params.backoff_max_ms);
        let buck = self.entry.id.clone();
        // Failed attempts since the last success: a buck down for hours is logged at
        // 1, 2, 4, 8... failures, not at every attempt.
        let mut failures: u32 = 0;
        loop {
            let attempt = tokio::select! {
                _ = self.cancel.cancelled() => return,
                r = tokio::time::timeout(self.params.connect_timeout, self.connect()) => r,
            };
            match attempt {
                Ok(Ok((wire, session, version))) => {
                    backoff.reset();
                    failures = 0;
                    let generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
                    let (outbox, inbox) = mpsc::channel(OUTBOX_QUEUE);
                    tracing::info!(buck = %buck, addr = %self.entry.ingest, "connected to buck");
                    self.events.connected();
                    let up = LinkEvent::Up {
                        buck: buck.clone(),
                        generation,
                        outbox,
                    };
                    let ended = if self.to_shipper.send(up).await.is_err() {
                        None
                    } else {
                        self.serve(wire, session, version, inbox).await
                    };
                    self.events.disconnected(ended.is_some());
                    let _ = self
                        .to_shipper
                        .send(LinkEvent::Down {
                            buck: buck.clone(),
                            generation,
                        })
                        .await;
                    match ended {
                        // Shutdown, or the shipper is gone.
                        None => return,
                        Some(e) => {
                            tracing::warn!(buck = %buck, addr = %self.entry.ingest, "connection to buck lost: {e}; reconnecting");
                        }
                    }
                }
                Ok(Err(e)) => {
                    failures = failures.saturating_add(1);
                    self.failed(&buck, e, failures).await
                }
                Err(_) => {
                    failures = failures.saturating_add(1);
                    let e = LinkError::Timeout(self.params.connect_timeout);
                    self.failed(&buck, e, failures).await
                }
            }
            let wait = backoff.next_delay();
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn failed(&self, buck: &str, e: LinkError, failures: u32) {
        self.events.connect_failed(matches!(
            e,
            LinkError::Rejected(_) | LinkError::ClosedInHello
        ));
        if failures.is_power_of_two() {
            tracing::warn!(buck = %buck, addr = %self.entry.ingest, failures, "cannot open a connection to buck: {e}; retrying with backoff");
        } else {
            tracing::debug!(buck = %buck, addr = %self.entry.ingest, failures, "cannot open a connection to buck: {e}");
        }
        let _ = self
            .to_shipper
            .send(LinkEvent::Down {
                buck: buck.to_owned(),
                generation: 0,
            })
            .await;
    }

    /// Connects and exchanges hellos.
    async fn connect(&self) -> Result<(Wire, Session, u8), LinkError> {
        let addr = &self.entry.ingest;
        let stream =
            TcpStream::connect(addr.as_str())
                .await
                .map_err(|source| LinkError::Connect {
                    addr: addr.clone(),
                    source,
                })?;
        stream.set_nodelay(true)?;
        let mut wire = Framed::new(stream, codec());
        let mut hello = ClientHello::new(
            self.params.tailer_id,
            *self.params.keys.public().as_bytes(),
            self.params.encryption,
            self.params.host.clone(),
        );
        hello.max_version = hello.max_version.min(self.params.max_protocol_version);
        let hello_bytes = Bytes::from(hello.encode());
        wire.send(hello_bytes.clone()).await?;
        let answer = match wire.next().await {
            Some(Ok(buf)) => buf,
            Some(Err(e)) if is_reset(&e) => return Err(LinkError::ClosedInHello),
            Some(Err(e)) => return Err(e.into()),
            None => return Err(LinkError::ClosedInHello),
        };
        let keys = match (&self.buck_key, self.params.encryption) {
            (Some(k), true) => Some((self.params.keys.secret(), k)),
            _ => None,
        };
        let joined = join(&hello, &hello_bytes, &answer, keys).map_err(|e| match e {
            JoinError::Decode(d) => LinkError::BadHello(d),
            JoinError::Refused(reason) => LinkError::Rejected(reason),
            JoinError::Handshake(h) => LinkError::Handshake(h),
        })?;
        if joined.buck_id != self.entry.id {
            return Err(LinkError::WrongBuck {
                got: joined.buck_id,
            });
        }
        if joined.encrypted != self.params.encryption {
            return Err(LinkError::EncryptionMismatch {
                want: self.params.encryption,
                got: joined.encrypted,
            });
        }
        tracing::debug!(buck = %joined.buck_id, version = joined.version, cipher = joined.cipher.name(), "hello accepted");
        Ok((
            wire,
            joined
                .session
                .with_compression(self.params.compression_level),
            joined.version,
        ))
    }

    /// Runs an established connection that speaks protocol `version`. Returns `None` on
    /// shutdown, else why it ended.
    async fn serve(
        &self,
        mut wire: Wire,
        mut session: Session,
        version: u8,
        mut inbox: mpsc::Receiver<Outgoing>,
    ) -> Option<LinkError> {
        let buck = &self.entry.id;
        let mut ping = tokio::time::interval(self.params.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let mut token = 0u64;
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return None,
                out = inbox.recv() => {
                    let msg = out?;
                    let sealed = match seal(session, msg, version < FRAME_STREAM_VERSION).await {
                        Ok((s, w)) => { session = s; w }
                        Err(e) => return Some(e),
                    };
                    if let Err(e) = wire.send(Bytes::from(sealed)).await {
                        return Some(e.into());
                    }
                }
                got = wire.next() => {
                    let buf = match got {
                        Some(Ok(buf)) => buf,
                        Some(Err(e)) => return Some(e.into()),
                        None => return Some(LinkError::Closed),
                    };
                    last_heard = Instant::now();
                    let message = match session.open(&buf) {
                        Ok(m) => m,
                        Err(e) => return Some(e.into()),
                    };
                    match message {
                        Message::Ping { token } => {
                            let pong = match session.seal(&Message::Pong { token }) {
                                Ok(w) => w,
                                Err(e) => return Some(e.into()),
                            };
                            if let Err(e) = wire.send(Bytes::from(pong)).await {
                                return Some(e.into());
                            }
                        }
                        Message::Pong { .. } => {}
                        m @ (Message::Ack { .. } | Message::Nack { .. }) => {
                            let reply = LinkEvent::Reply { buck: buck.clone(), message: m };
                            if self.to_shipper.send(reply).await.is_err() {
                                return None;
                            }
                        }
                        Message::Live { .. } => return Some(LinkError::Unexpected("a live packet")),
                        Message::BucketChunk { .. } => return Some(LinkError::Unexpected("a bucket chunk")),
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > self.params.idle_timeout {
                        return Some(LinkError::Idle(self.params.idle_timeout));
                    }
                    token += 1;
                    let sealed = match session.seal(&Message::Ping { token }) {
                        Ok(w) => w,
                        Err(e) => return Some(e.into()),
                    };
                    if let Err(e) = wire.send(Bytes::from(sealed)).await {
                        return Some(e.into());
                    }
                }
            }
        }
    }
}

fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
    )
}

/// What the shipper asks a connection to send.
#[derive(Debug, Clone)]
pub(crate) enum Outgoing {
    /// A message the connection compresses and seals.
    Message(Message),
    /// A live packet whose frames were compressed once for all of its homes: the
    /// connection only compresses the few bytes before them and seals.
    Live {
        /// The buck's sequence number for it.
        seq: u64,
        /// The frames, compressed.
        packed: Arc<PackedFrames>,
    },
    /// A repair chunk whose frames were compressed once, however many homes it goes to
    /// (see [`super::chunk_packs`]): the connection only seals it.
    Chunk {
        /// The buck's sequence number for it.
        seq: u64,
        /// The bucket's crawl.
        crawl: CrawlId,
        /// The bucket's start, seconds since the epoch.
        bucket_start: i64,
        /// Index of the chunk within the bucket.
        chunk: u32,
        /// Whether it is the bucket's last chunk.
        last: bool,
        /// The frames, compressed.
        packed: Arc<PackedFrames>,
    },
}

impl Outgoing {
    /// The message with its frame stream rewritten as version-1 events, for a buck that
    /// speaks a protocol version before frame streams. Frames compressed once for every
    /// home are of no use then: the connection compresses the rewritten ones itself.
    fn into_version1_events(self) -> Outgoing {
        let v1 = |frames: &Bytes| {
            let mut out = Vec::new();
            match to_version1_frames(frames, &mut out) {
                Ok(_) => Bytes::from(out),
                // Never from this tailer's own writer; the buck refuses the framing
                // error and says so.
                Err(e) => {
                    tracing::error!(
                        "a message's frames cannot be rewritten for a buck of an older protocol version ({e}); sent as they are"
                    );
                    frames.clone()
                }
            }
        };
        let message = match self {
            Outgoing::Live { seq, packed } => Message::Live {
                seq,
                frames: v1(packed.frames()),
            },
            Outgoing::Chunk {
                seq,
                crawl,
                bucket_start,
                chunk,
                last,
                packed,
            } => Message::BucketChunk {
                seq,
                crawl,
                bucket_start,
                chunk,
                last,
                frames: v1(packed.frames()),
            },
            Outgoing::Message(Message::Live { seq, frames }) => Message::Live {
                seq,
                frames: v1(&frames),
            },
            Outgoing::Message(Message::BucketChunk {
                seq,
                crawl,
                bucket_start,
                chunk,
                last,
                frames,
            }) => Message::BucketChunk {
                seq,
                crawl,
                bucket_start,
                chunk,
                last,
                frames: v1(&frames),
            },
            Outgoing::Message(m) => m,
        };
        Outgoing::Message(message)
    }
}

/// Seals `out`, on the blocking pool when it is large, after rewriting its frames as
/// version-1 events when `version1` (a buck before frame streams; the rewrite parses
/// every line, so it goes to the blocking pool with the sealing). The session moves there
/// and back because its counter must advance exactly once per message, in order.
async fn seal(
    mut session: Session,
    out: Outgoing,
    version1: bool,
) -> Result<(Session, Vec<u8>), LinkError> {
    let large = match &out {
        Outgoing::Message(Message::Live { frames, .. } | Message::BucketChunk { frames, .. }) => {
            frames.len() > SEAL_INLINE_MAX_BYTES || (version1 && !frames.is_empty())
        }
        Outgoing::Chunk { packed, .. } => {
            packed.compressed_len() > SEAL_INLINE_MAX_BYTES || version1
        }
        Outgoing::Live { .. } => version1,
        _ => false,
    };
    let seal_one = |session: &mut Session, out: &Outgoing| match out {
        Outgoing::Message(m) => session.seal(m),
        Outgoing::Live { seq, packed } => session.seal_live(*seq, packed),
        Outgoing::Chunk {
            seq,
            crawl,
            bucket_start,
            chunk,
            last,
            packed,
        } => session.seal_chunk(
            &ChunkHead {
                seq: *seq,
                crawl,
                bucket_start: *bucket_start,
                chunk: *chunk,
                last: *last,
            },
            packed,
        ),
    };
    if !large {
        let w = seal_one(&mut session, &out)?;
        return Ok((session, w));
    }
    let (session, r) = tokio::task::spawn_blocking(move || {
        let out = if version1 {
            out.into_version1_events()
        } else {
            out
        };
        let r = seal_one(&mut session, &out);
        (session, r)
    })
    .await
    .map_err(|e| LinkError::SealTask(e.to_string()))?;
    Ok((session, r?))
}
