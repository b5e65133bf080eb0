//! The receiver: accepts tailer connections, authenticates them, and turns their
//! messages into write requests, acking each only after the writer committed it.
//!
//! One task per connection: at most `max_pending_hellos` before their hello (a permit is
//! taken before `accept`, so excess connections wait in the listen backlog, and the hello
//! must come within `hello_timeout_ms`), at most `max_connections` tailers past it, at
//! most `max_connections_per_address` from one address, and none silent for longer than
//! `idle_timeout_ms`. A connection
//! reads up to `max_in_flight` messages (and `max_in_flight_bytes` of them) ahead while
//! earlier ones are being committed, so that under a backlog the writer finds enough
//! queued to make one large transaction of it; the replies go out in message order. Anything that breaks the protocol — garbage bytes, a
//! message that fails authentication (wrong key, forged), a replayed or reordered counter
//! — closes that connection only, with a logged and counted reason; nothing of that
//! message is stored.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use contracts::keys::KeyPair;
use contracts::transport::{
    self, ClientHello, Message, PROTOCOL_MIN, RejectedFrame, ServerHello, Session, TransportError,
    codec,
};
use contracts::{CrawlId, Event};
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, SinkExt, StreamExt};
use parsers::stream_events::decode_stream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::allow_list::AllowList;
use crate::config::BuckConfig;
use crate::events::{BuckEvents, ConnectionRejection};
use crate::segment_writer::{Origin, PreparedEvent, SegmentWriter};

/// How often an open connection's key is checked against the allow-list again.
const ALLOW_LIST_RECHECK: Duration = Duration::from_secs(1);

/// What every connection task shares.
pub(crate) struct ReceiverContext {
    pub config: Arc<BuckConfig>,
    pub key: KeyPair,
    pub allow: AllowList,
    pub writer: SegmentWriter,
    pub events: Arc<BuckEvents>,
}

/// Accepts connections until `shutdown`; each connection runs on `tracker`.
///
/// Three bounds keep a client that connects and stalls from taking what tailers need: a
/// `max_pending_hellos` permit is taken before `accept` (excess connections wait in the
/// listen backlog) and held only until the hello, which must come within
/// `hello_timeout_ms`; one of the `max_connections` slots is taken only after a hello
/// was accepted; and one address holds at most `max_connections_per_address`.
pub(crate) async fn run(
    listener: TcpListener,
    ctx: Arc<ReceiverContext>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let limits = Arc::new(Limits {
        pending: Arc::new(Semaphore::new(ctx.config.max_pending_hellos)),
        slots: Arc::new(Semaphore::new(ctx.config.max_connections)),
        per_address: std::sync::Mutex::new(HashMap::new()),
    });
    loop {
        let pending = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = limits.pending.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning on the error.
                    tracing::warn!(error = %e, "accept failed; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(from) =
            AddressHold::take(&limits, peer.ip(), ctx.config.max_connections_per_address)
        else {
            ctx.events.connection_rejected(ConnectionRejection::TooMany);
            tracing::debug!(%peer, "connection closed: max_connections_per_address reached");
            drop(stream);
            continue;
        };
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        let limits = limits.clone();
        tracker.spawn(async move {
            let _from = from;
            serve(stream, peer, &ctx, &shutdown, pending, &limits).await;
        });
    }
    tracing::info!("receiver stopped accepting connections");
}

/// The receiver's connection bounds.
struct Limits {
    /// Connections not past their hello (`max_pending_hellos`).
    pending: Arc<Semaphore>,
    /// Tailers past their hello (`max_connections`).
    slots: Arc<Semaphore>,
    /// Open connections per source address.
    per_address: std::sync::Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection counted against its address; uncounted on drop.
struct AddressHold {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl AddressHold {
    fn take(limits: &Arc<Limits>, ip: IpAddr, max: usize) -> Option<AddressHold> {
        let mut m = limits.per_address.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressHold {
            limits: limits.clone(),
            ip,
        })
    }
}

impl Drop for AddressHold {
    fn drop(&mut self) {
        let mut m = self
            .limits
            .per_address
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

struct Closed {
    why: ConnectionRejection,
    detail: String,
    /// Already counted (a refusal is counted before its reply goes out, so whoever reads
    /// the reply sees the count).
    counted: bool,
}

fn closed(why: ConnectionRejection, detail: impl Into<String>) -> Closed {
    Closed {
        why,
        detail: detail.into(),
        counted: false,
    }
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &ReceiverContext,
    shutdown: &CancellationToken,
    pending: OwnedSemaphorePermit,
    limits: &Limits,
) {
    ctx.events.connection_accepted();
    let _ = stream.set_nodelay(true);
    if let Err(c) = connection(stream, peer, ctx, shutdown, pending, limits).await {
        if !c.counted {
            ctx.events.connection_rejected(c.why);
        }
        tracing::warn!(%peer, reason = c.why.name(), detail = %c.detail, "tailer connection closed");
    }
    ctx.events.connection_closed();
}

type Wire = Framed<TcpStream, LengthDelimitedCodec>;

async fn refuse(
    framed: &mut Wire,
    events: &BuckEvents,
    why: ConnectionRejection,
    reason: String,
) -> Result<(), Closed> {
    events.connection_rejected(why);
    let _ = framed
        .send(Bytes::from(
            ServerHello::Reject {
                reason: reason.clone(),
            }
            .encode(),
        ))
        .await;
    Err(Closed {
        counted: true,
        ..closed(why, reason)
    })
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &ReceiverContext,
    shutdown: &CancellationToken,
    pending: OwnedSemaphorePermit,
    limits: &Limits,
) -> Result<(), Closed> {
    let mut framed = Framed::new(stream, codec());
    let timeout = Duration::from_millis(ctx.config.hello_timeout_ms);
    let first = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        r = tokio::time::timeout(timeout, framed.next()) => r,
    };
    let bytes = match first {
        Err(_) => {
            return Err(closed(
                ConnectionRejection::HelloTimeout,
                format!("no hello within {} ms", ctx.config.hello_timeout_ms),
            ));
        }
        Ok(None) => return Ok(()),
        Ok(Some(Err(e))) => {
            return Err(closed(
                ConnectionRejection::Garbage,
                format!("reading the hello: {e}"),
            ));
        }
        Ok(Some(Ok(b))) => b,
    };
    let hello = ClientHello::decode(&bytes)
        .map_err(|e| closed(ConnectionRejection::Garbage, e.to_string()))?;
    let max_version = ctx.config.max_protocol_version;
    let Some(version) = hello.negotiate(PROTOCOL_MIN, max_version) else {
        let reason = format!(
            "tailer speaks protocol versions {}..={}, this buck speaks {PROTOCOL_MIN}..={max_version}: upgrade the older side",
            hello.min_version, hello.max_version
        );
        return refuse(
            &mut framed,
            &ctx.events,
            ConnectionRejection::Version,
            reason,
        )
        .await;
    };
    if !ctx.allow.allows(&hello.public_key) {
        let key = contracts::keys::public_key_text(&crypto_box::PublicKey::from(hello.public_key));
        let reason = format!(
            "tailer key {key} is not on the allow-list of buck {}: add it to allowed_tailers or allowed_tailers_file",
            ctx.config.id
        );
        return refuse(&mut framed, &ctx.events, ConnectionRejection::Auth, reason).await;
    }
    if !hello.encrypted && ctx.config.encryption {
        let reason = format!(
            "buck {} requires encrypted messages: turn encryption on in the tailer (or set encryption = false on the buck)",
            ctx.config.id
        );
        return refuse(
            &mut framed,
            &ctx.events,
            ConnectionRejection::Encryption,
            reason,
        )
        .await;
    }
    // Past its hello, the connection leaves the pending bound for a tailer slot.
    drop(pending);
    let Ok(_slot) = limits.slots.clone().try_acquire_owned() else {
        let reason = format!(
            "buck {} serves {} tailers already (max_connections): retry later",
            ctx.config.id, ctx.config.max_connections
        );
        return refuse(
            &mut framed,
            &ctx.events,
            ConnectionRejection::TooMany,
            reason,
        )
        .await;
    };
    // A tailer that asks for sealing gets it even from a buck that would accept plain.
    let encrypted = hello.encrypted;
    let tailer_key = crypto_box::PublicKey::from(hello.public_key);
    let accepted = transport::accept(
        &bytes,
        version,
        max_version,
        &ctx.config.id,
        encrypted.then(|| (ctx.key.secret(), &tailer_key)),
    );
    if framed.send(Bytes::from(accepted.answer)).await.is_err() {
        return Ok(());
    }
    let cipher = if encrypted {
        accepted.cipher.name()
    } else {
        "none"
    };
    ctx.events.session_started(cipher);
    tracing::info!(%peer, tailer = format!("{:016x}", hello.tailer_id), host = %hello.host, version, cipher, "tailer connected");
    let mut session = Some(accepted.session);
    // Each reply comes with the bytes of its message, so that what is held in flight is
    // bounded in bytes (`max_in_flight_bytes`) as well as in messages.
    let mut pending: FuturesOrdered<BoxFuture<'static, (Message, usize)>> = FuturesOrdered::new();
    let mut pending_bytes = 0usize;
    let mut reading = true;
    // A key removed from the allow-list loses its open connections too, not only new ones.
    let mut recheck = tokio::time::interval(ALLOW_LIST_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let tailer_id = hello.tailer_id;
    let idle = Duration::from_millis(ctx.config.idle_timeout_ms.max(1));
    let mut heard = tokio::time::Instant::now();
    loop {
        if !reading && pending.is_empty() {
            return Ok(());
        }
        tokio::select! {
            biased;
            Some((reply, bytes)) = pending.next(), if !pending.is_empty() => {
                pending_bytes -= bytes;
                let sess = session.as_mut().ok_or_else(|| closed(ConnectionRejection::Garbage, "session lost"))?;
                let wire = sess.seal(&reply).map_err(|e| closed(ConnectionRejection::Garbage, format!("sealing a reply: {e}")))?;
                if framed.send(Bytes::from(wire)).await.is_err() {
                    // The tailer went away; it re-sends whatever was not acked.
                    return Ok(());
                }
            }
            // Two-phase stop: read no more, but send the acks of what is being committed.
            _ = shutdown.cancelled(), if reading => reading = false,
            _ = tokio::time::sleep_until(heard + idle), if reading => {
                return Err(closed(
                    ConnectionRejection::Idle,
                    format!("nothing received for {} ms (idle_timeout_ms)", ctx.config.idle_timeout_ms),
                ));
            }
            _ = recheck.tick() => {
                if !ctx.allow.allows(&hello.public_key) {
                    return Err(closed(
                        ConnectionRejection::Revoked,
                        "the tailer's key was removed from the allow-list",
                    ));
                }
            }
            // Past the byte bound the next message waits, but one message is always let
            // in when nothing is pending, however large.
            frame = framed.next(), if reading
                && pending.len() < ctx.config.max_in_flight
                && pending_bytes < ctx.config.max_in_flight_bytes => match frame {
                None => reading = false,
                Some(Err(e)) => return Err(closed(ConnectionRejection::Garbage, format!("reading a message: {e}"))),
                Some(Ok(wire)) => {
                    heard = tokio::time::Instant::now();
                    let bytes = wire.len();
                    let opened = open_message(&mut session, wire).await?;
                    let msg = opened.map_err(|e| {
                        let why = match e {
                            TransportError::Replay { .. } => ConnectionRejection::Replay,
                            TransportError::Authentication { .. } => ConnectionRejection::Auth,
                            _ => ConnectionRejection::Garbage,
                        };
                        closed(why, e.to_string())
                    })?;
                    if let Some(reply) = handle(msg, tailer_id, ctx)? {
                        pending_bytes += bytes;
                        pending.push_back(reply.map(move |m| (m, bytes)).boxed());
                    }
                }
            },
        }
    }
}

/// Messages larger than this are decrypted and inflated on the blocking pool, and their
/// frames decoded there: a 2 MiB message takes milliseconds, too long for a runtime
/// thread that serves other connections (the tailer seals by the same rule).
const OPEN_INLINE_MAX_BYTES: usize = 128 * 1024;

/// Opens one message with the connection's session, on the blocking pool when it is
/// large. The session travels there and back: opening is sequential per connection.
async fn open_message(
    session: &mut Option<Session>,
    wire: bytes::BytesMut,
) -> Result<Result<Message, TransportError>, Closed> {
    let lost = || closed(ConnectionRejection::Garbage, "session lost");
    if wire.len() <= OPEN_INLINE_MAX_BYTES {
        return Ok(session.as_mut().ok_or_else(lost)?.open(&wire));
    }
    let mut s = session.take().ok_or_else(lost)?;
    let (s, r) = tokio::task::spawn_blocking(move || {
        let r = s.open(&wire);
        (s, r)
    })
    .await
    .map_err(|e| {
        closed(
            ConnectionRejection::Garbage,
            format!("opening task failed: {e}"),
        )
    })?;
    *session = Some(s);
    Ok(r)
}

/// Turns one message into the future of its reply.
fn handle(
    msg: Message,
    tailer_id: u64,
    ctx: &ReceiverContext,
) -> Result<Option<BoxFuture<'static, Message>>, Closed> {
    let (seq, frames, crawl, origin) = match msg {
        Message::Live { seq, frames } => (seq, frames, None, Origin::Live),
        Message::BucketChunk {
            seq, crawl, frames, ..
        } => (seq, frames, Some(crawl), Origin::Repair),
        Message::Ping { token } => {
            return Ok(Some(
                futures::future::ready(Message::Pong { token }).boxed(),
            ));
        }
        // A pong needs no answer.
        Message::Pong { .. } => return Ok(None),
        Message::Ack { .. } | Message::Nack { .. } => {
            return Err(closed(
                ConnectionRejection::Garbage,
                "a tailer sent an ack or nack: only bucks send those",
            ));
        }
    };
    let writer = ctx.writer.clone();
    let stats = ctx.events.clone();
    let retry_after_ms = ctx.config.nack_retry_after_ms;
    Ok(Some(
        async move {
            // Decoding a large message's events allocates every line: off the runtime.
            // Their segment rows are worked out here too, so the one writer only inserts.
            let decoded = if frames.len() > OPEN_INLINE_MAX_BYTES {
                tokio::task::spawn_blocking(move || {
                    prepare(decode_events(&frames, crawl.as_ref(), tailer_id))
                })
                .await
            } else {
                Ok(prepare(decode_events(&frames, crawl.as_ref(), tailer_id)))
            };
            let (events, rejected, foreign) = match decoded {
                Ok(d) => d,
                Err(e) => {
                    stats.nacked();
                    return Message::Nack {
                        seq,
                        retry_after_ms,
                        reason: format!("decoding task failed: {e}"),
                    };
                }
            };
            stats.message_received(events.len(), rejected.len());
            if foreign > 0 {
                stats.foreign_ids(foreign);
                tracing::warn!(
                    tailer = format!("{tailer_id:016x}"),
                    frames = foreign,
                    "refused frames whose event ids name another tailer: a tailer may only write its own ids"
                );
            }
            if events.is_empty() {
                return Message::Ack { seq, rejected };
            }
            match writer.write_prepared(events, origin).await {
                Ok(_) => Message::Ack { seq, rejected },
                Err(e) => {
                    stats.nacked();
                    Message::Nack {
                        seq,
                        retry_after_ms,
                        reason: e.to_string(),
                    }
                }
            }
        }
        .boxed(),
    ))
}

type Decoded<E> = (Vec<E>, Vec<RejectedFrame>, usize);

/// The decoded events with their segment rows worked out ([`PreparedEvent`]).
fn prepare((events, rejected, foreign): Decoded<Event>) -> Decoded<PreparedEvent> {
    let events = events.into_iter().map(PreparedEvent::new).collect();
    (events, rejected, foreign)
}

/// Decodes a message's frames (version-1 events or a frame stream; the fields a compact
/// event leaves out are parsed from its line here). An undecodable event (including an invalid crawl id), an
/// event whose id names another tailer than the connection's `tailer_id` (so that one
/// allowed key cannot pre-insert ids that would suppress another host's lines) or, in a
/// bucket chunk, an event of another crawl is rejected for good; a framing error rejects
/// the unreadable rest as one entry at the index where it starts. Also returns how many
/// were refused for naming another tailer.
fn decode_events(frames: &[u8], bucket_crawl: Option<&CrawlId>, tailer_id: u64) -> Decoded<Event> {
    let (items, framing) = decode_stream(frames);
    let mut events = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    let mut foreign = 0;
    let n = items.len();
    for (i, item) in items.into_iter().enumerate() {
        let index = i as u32;
        match item {
            Ok(ev) if ev.id.tailer != tailer_id => {
                foreign += 1;
                rejected.push(RejectedFrame {
                    index,
                    reason: format!(
                        "event id names tailer {:016x}, but this connection is tailer {tailer_id:016x}",
                        ev.id.tailer
                    ),
                });
            }
            Ok(ev) => match bucket_crawl {
                Some(c) if *c != ev.crawl => rejected.push(RejectedFrame {
                    index,
                    reason: format!("event of crawl {} in a bucket of crawl {c}", ev.crawl),
                }),
                _ => events.push(ev),
            },
            Err(e) => rejected.push(RejectedFrame {
                index,
                reason: e.to_string(),
            }),
        }
    }
    if let Some(e) = framing {
        rejected.push(RejectedFrame {
            index: n as u32,
            reason: format!("{e}; the rest of the message is unreadable"),
        });
    }
    (events, rejected, foreign)
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::{EventFlags, EventId, Format};

    fn event(crawl: &str, offset: u64) -> Event {
        Event {
            id: EventId {
                tailer: 1,
                file_seq: 0,
                offset,
            },
            time_us: 0,
            flags: EventFlags::default(),
            original_len: 1,
            format: Format::Plain,
            crawl: CrawlId::parse(crawl).unwrap(),
            host: "h".into(),
            app: "a".into(),
            fields: vec![],
            raw: b"x".to_vec(),
        }
    }

    #[test]
    fn rejects_bad_frames_for_good_and_keeps_the_rest() {
        let mut buf = Vec::new();
        contracts::frame::put_event_frame(&mut buf, &event("a", 0));
        buf.extend_from_slice(&[0, 3, 9, 9, 9]); // a frame that does not decode
        contracts::frame::put_event_frame(&mut buf, &event("b", 1));
        buf.extend_from_slice(&[0, 50, 1]); // torn
        let (ev, rej, _) = decode_events(&buf, Some(&CrawlId::parse("a").unwrap()), 1);
        assert_eq!(ev.len(), 1);
        assert_eq!(
            rej.iter().map(|r| r.index).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(rej[1].reason.contains("crawl b"), "{}", rej[1].reason);
        let (ev, rej, _) = decode_events(&buf[..buf.len() - 3], None, 1);
        assert_eq!((ev.len(), rej.len()), (2, 1));
    }
}
