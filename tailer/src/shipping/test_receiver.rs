//! `TestReceiver`: a minimal buck for tests, speaking the real protocol.
//!
//! It accepts connections on 127.0.0.1, checks the tailer's key against its allow-list,
//! answers the hello, opens every message with a real [`Session`] (so a replayed or
//! reordered message is caught and recorded), decodes frames with `contracts`, stores
//! events by id (a duplicate is counted, not stored twice) and acks after storing.
//! Knobs make it misbehave the ways a real buck can: go down and up, drop every
//! connection, delay acks, nack, reject chosen events, or swallow messages unacked.
//!
//! Not for production: it keeps everything in memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use contracts::frame::decode_frames;
use contracts::keys::KeyPair;
use contracts::transport::{
    self, ClientHello, FRAME_STREAM_VERSION, Message, PROTOCOL_MAX, PROTOCOL_MIN, RejectedFrame,
    ServerHello, codec,
};
use contracts::{Event, EventId};
use futures::{SinkExt, StreamExt};
use parsers::stream_events::decode_stream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// What a receiver has seen.
#[derive(Debug, Clone, Default)]
pub struct ReceiverStats {
    /// Hellos accepted.
    pub connections: u64,
    /// Hellos refused (key not allowed, encryption mismatch, no common version).
    pub refused: u64,
    /// Live packets received (each delivery, re-sends included).
    pub live_messages: u64,
    /// Bucket chunks received.
    pub chunk_messages: u64,
    /// Events received in live packets.
    pub live_frames: u64,
    /// Events received in bucket chunks.
    pub chunk_frames: u64,
    /// Nacks sent.
    pub nacks: u64,
    /// Data messages swallowed (neither stored nor acked) while the black hole was on.
    pub swallowed: u64,
    /// Frames rejected in acks.
    pub rejected_frames: u64,
    /// Frames received that were rejected earlier (they should never be re-sent).
    pub rejected_resent: u64,
    /// Buckets whose last chunk arrived after all the chunks before it.
    pub buckets_completed: u64,
    /// Messages that failed to open or made no sense (replays, forgeries).
    pub protocol_errors: Vec<String>,
}

struct Inner {
    id: String,
    keys: KeyPair,
    allowed: Vec<[u8; 32]>,
    encrypted: bool,
    /// Newest protocol version answered: below 3 it reads version-1 events only, as a
    /// buck of that time did.
    max_version: AtomicU8,
    store: Mutex<BTreeMap<EventId, (Event, u32)>>,
    stats: Mutex<ReceiverStats>,
    down: AtomicBool,
    /// Bumped to close every open connection.
    epoch: watch::Sender<u64>,
    ack_delay_ms: AtomicU64,
    nack_next: AtomicU32,
    nack_retry_ms: AtomicU32,
    black_hole: AtomicBool,
    mute: AtomicBool,
    reject: Mutex<HashSet<EventId>>,
    rejected_seen: Mutex<HashSet<EventId>>,
    /// Next chunk index expected per (crawl, bucket start).
    next_chunk: Mutex<HashMap<(String, i64), u32>>,
}

/// A test buck listening on 127.0.0.1. Stops when dropped.
pub struct TestReceiver {
    inner: Arc<Inner>,
    addr: SocketAddr,
    cancel: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test thread that panicked while holding the lock already failed the test.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TestReceiver {
    /// Starts a receiver named `id` (its id in the cluster file) on a free port, accepting
    /// the tailer keys in `allowed`. Like the real buck, one with `encrypted` refuses
    /// plain tailers, and any receiver seals for a tailer that asks for it.
    pub async fn start(
        id: &str,
        keys: KeyPair,
        allowed: Vec<[u8; 32]>,
        encrypted: bool,
    ) -> std::io::Result<TestReceiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            id: id.to_owned(),
            keys,
            allowed,
            encrypted,
            max_version: AtomicU8::new(PROTOCOL_MAX),
            store: Mutex::new(BTreeMap::new()),
            stats: Mutex::new(ReceiverStats::default()),
            down: AtomicBool::new(false),
            epoch: watch::channel(0).0,
            ack_delay_ms: AtomicU64::new(0),
            nack_next: AtomicU32::new(0),
            nack_retry_ms: AtomicU32::new(0),
            black_hole: AtomicBool::new(false),
            mute: AtomicBool::new(false),
            reject: Mutex::new(HashSet::new()),
            rejected_seen: Mutex::new(HashSet::new()),
            next_chunk: Mutex::new(HashMap::new()),
        });
        let cancel = CancellationToken::new();
        tokio::spawn(accept_loop(listener, inner.clone(), cancel.clone()));
        Ok(TestReceiver {
            inner,
            addr,
            cancel,
        })
    }

    /// The address tailers connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The receiver's public key as text, for the cluster file.
    pub fn public_key_text(&self) -> String {
        self.inner.keys.public_text()
    }

    /// Goes down (every connection closed, new ones closed at once) or comes back up.
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
        if down {
            self.drop_connections();
        }
    }

    /// Closes every open connection (the tailer reconnects).
    pub fn drop_connections(&self) {
        self.inner.epoch.send_modify(|e| *e += 1);
    }

    /// Answers protocol versions up to `version` from the next connection on (below 3,
    /// it reads version-1 events only, as a buck of that version did).
    pub fn set_max_version(&self, version: u8) {
        self.inner.max_version.store(version, Ordering::SeqCst);
    }

    /// Waits this long before each ack.
    pub fn set_ack_delay(&self, delay: Duration) {
        self.inner
            .ack_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Nacks the next `n` data messages with `retry_after_ms`.
    pub fn nack_next(&self, n: u32, retry_after_ms: u32) {
        self.inner
            .nack_retry_ms
            .store(retry_after_ms, Ordering::SeqCst);
        self.inner.nack_next.store(n, Ordering::SeqCst);
    }

    /// Rejects the event `id` for good whenever it arrives.
    pub fn reject_event(&self, id: EventId) {
        lock(&self.inner.reject).insert(id);
    }

    /// While on, data messages are swallowed: neither stored nor acked (a buck that
    /// dies before committing).
    pub fn set_black_hole(&self, on: bool) {
        self.inner.black_hole.store(on, Ordering::SeqCst);
    }

    /// While on, nothing at all is answered, not even pings (a buck that hangs); data
    /// messages are swallowed as with the black hole.
    pub fn set_mute(&self, on: bool) {
        self.inner.mute.store(on, Ordering::SeqCst);
    }

    /// The ids stored, sorted.
    pub fn event_ids(&self) -> Vec<EventId> {
        lock(&self.inner.store).keys().copied().collect()
    }

    /// How many times each stored event arrived (1 = once; more = at-least-once re-sends).
    pub fn copies(&self) -> BTreeMap<EventId, u32> {
        lock(&self.inner.store)
            .iter()
            .map(|(id, (_, n))| (*id, *n))
            .collect()
    }

    /// A copy of the counters.
    pub fn stats(&self) -> ReceiverStats {
        lock(&self.inner.stats).clone()
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.drop_connections();
    }
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>, cancel: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
        };
        if inner.down.load(Ordering::SeqCst) {
            drop(stream);
            continue;
        }
        let inner = inner.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(stream, &inner, cancel).await {
                lock(&inner.stats).protocol_errors.push(e);
            }
        });
    }
}

/// Serves one connection. `Err` only for what a correct tailer never causes.
async fn serve(stream: TcpStream, inner: &Inner, cancel: CancellationToken) -> Result<(), String> {
    let mut epoch = inner.epoch.subscribe();
    epoch.mark_unchanged();
    let mut wire = Framed::new(stream, codec());
    let hello_bytes = match wire.next().await {
        Some(Ok(b)) => b,
        _ => return Ok(()),
    };
    let hello = ClientHello::decode(&hello_bytes).map_err(|e| format!("hello: {e}"))?;
    let refusal = if !inner.allowed.contains(&hello.public_key) {
        Some("key not on the allow-list".to_owned())
    } else if !hello.encrypted && inner.encrypted {
        Some("this buck requires encrypted messages".to_owned())
    } else {
        None
    };
    let max_version = inner.max_version.load(Ordering::SeqCst);
    let version = hello.negotiate(PROTOCOL_MIN, max_version);
    let (Some(version), None) = (version, &refusal) else {
        lock(&inner.stats).refused += 1;
        let reason = refusal.unwrap_or_else(|| "no common protocol version".into());
        let _ = wire
            .send(Bytes::from(ServerHello::Reject { reason }.encode()))
            .await;
        return Ok(());
    };
    let tailer_key = crypto_box::PublicKey::from(hello.public_key);
    let keys = hello.encrypted.then(|| (inner.keys.secret(), &tailer_key));
    // As the real buck: a tailer that asks for sealing gets it.
    let accepted = transport::accept(&hello_bytes, version, max_version, &inner.id, keys);
    let streams = version >= FRAME_STREAM_VERSION;
    if wire.send(Bytes::from(accepted.answer)).await.is_err() {
        return Ok(());
    }
    lock(&inner.stats).connections += 1;
    let mut session = accepted.session;
    loop {
        let buf = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = epoch.changed() => return Ok(()),
            got = wire.next() => match got {
                Some(Ok(b)) => b,
                _ => return Ok(()),
            },
        };
        if inner.down.load(Ordering::SeqCst) {
            return Ok(());
        }
        let msg = session.open(&buf).map_err(|e| format!("open: {e}"))?;
        if inner.mute.load(Ordering::SeqCst) {
            continue;
        }
        let reply = match msg {
            Message::Ping { token } => Some(Message::Pong { token }),
            Message::Pong { .. } => None,
            Message::Live { seq, frames } => receive(inner, seq, &frames, false, streams),
            Message::BucketChunk {
                seq,
                crawl,
                bucket_start,
                chunk,
                last,
                frames,
            } => {
                let reply = receive(inner, seq, &frames, true, streams);
                if matches!(reply, Some(Message::Ack { .. })) {
                    check_chunk_order(inner, crawl.as_str(), bucket_start, chunk, last)?;
                }
                reply
            }
            m @ (Message::Ack { .. } | Message::Nack { .. }) => {
                return Err(format!("a tailer sent {m:?}"));
            }
        };
        let Some(reply) = reply else { continue };
        let delay = inner.ack_delay_ms.load(Ordering::SeqCst);
        if delay > 0 && matches!(reply, Message::Ack { .. }) {
            tokio::select! {
                _ = epoch.changed() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
            }
        }
        let sealed = session.seal(&reply).map_err(|e| format!("seal: {e}"))?;
        if wire.send(Bytes::from(sealed)).await.is_err() {
            return Ok(());
        }
    }
}

/// Chunks of a bucket must arrive in order from 0; a repeat (a re-send after a lost ack)
/// is fine, a gap is not.
fn check_chunk_order(
    inner: &Inner,
    crawl: &str,
    start: i64,
    chunk: u32,
    last: bool,
) -> Result<(), String> {
    let mut next = lock(&inner.next_chunk);
    let expected = next.entry((crawl.to_owned(), start)).or_insert(0);
    if chunk > *expected {
        return Err(format!(
            "bucket {crawl}@{start}: chunk {chunk} where {expected} was expected"
        ));
    }
    if chunk == *expected {
        *expected += 1;
        if last {
            // A later send of the same bucket (after a restart) starts again from 0.
            next.remove(&(crawl.to_owned(), start));
            lock(&inner.stats).buckets_completed += 1;
        }
    }
    Ok(())
}

/// Stores a data message's events and says what to answer. Without `streams` (a
/// connection before protocol version 3) only version-1 events are read.
fn receive(inner: &Inner, seq: u64, frames: &[u8], chunk: bool, streams: bool) -> Option<Message> {
    if inner.black_hole.load(Ordering::SeqCst) {
        lock(&inner.stats).swallowed += 1;
        return None;
    }
    if inner
        .nack_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        lock(&inner.stats).nacks += 1;
        return Some(Message::Nack {
            seq,
            retry_after_ms: inner.nack_retry_ms.load(Ordering::SeqCst),
            reason: "test receiver nack".into(),
        });
    }
    let (events, torn) = if streams {
        decode_stream(frames)
    } else {
        decode_frames(frames)
    };
    let received = events.len() as u64;
    let stray = events.iter().filter(|e| e.is_err()).count();
    let reject = lock(&inner.reject).clone();
    let mut rejected = Vec::new();
    let mut rejected_resent = 0;
    {
        let mut store = lock(&inner.store);
        let mut seen = lock(&inner.rejected_seen);
        for (index, e) in events.into_iter().enumerate() {
            match e {
                Ok(ev) if reject.contains(&ev.id) => {
                    if !seen.insert(ev.id) {
                        rejected_resent += 1;
                    }
                    rejected.push(RejectedFrame {
                        index: index as u32,
                        reason: "rejected by test".into(),
                    });
                }
                Ok(ev) => store.entry(ev.id).or_insert((ev, 0)).1 += 1,
                Err(e) => rejected.push(RejectedFrame {
                    index: index as u32,
                    reason: e.to_string(),
                }),
            }
        }
    }
    let mut s = lock(&inner.stats);
    if let Some(t) = torn {
        s.protocol_errors
            .push(format!("message {seq}: torn frame {t}"));
    }
    if !streams && stray > 0 {
        s.protocol_errors.push(format!(
            "message {seq}: {stray} frames are not version-1 events on a connection before frame streams"
        ));
    }
    if chunk {
        s.chunk_messages += 1;
        s.chunk_frames += received;
    } else {
        s.live_messages += 1;
        s.live_frames += received;
    }
    s.rejected_frames += rejected.len() as u64;
    s.rejected_resent += rejected_resent;
    Some(Message::Ack { seq, rejected })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The receiver's replay check is what the shipping tests rely on to show that
    /// counters only increase: check that it does catch a replayed message.
    #[tokio::test]
    async fn a_replayed_message_is_caught_and_the_connection_closed() {
        let tailer = KeyPair::generate();
        let buck = KeyPair::generate();
        let r = TestReceiver::start("b0", buck.clone(), vec![*tailer.public().as_bytes()], true)
            .await
            .unwrap();
        let mut wire = Framed::new(TcpStream::connect(r.addr()).await.unwrap(), codec());
        let hello = ClientHello::new(1, *tailer.public().as_bytes(), true, "t".into());
        let hello_bytes = hello.encode();
        wire.send(Bytes::from(hello_bytes.clone())).await.unwrap();
        let answer = wire.next().await.unwrap().unwrap();
        let mut session = transport::join(
            &hello,
            &hello_bytes,
            &answer,
            Some((tailer.secret(), buck.public())),
        )
        .unwrap()
        .session;
        let ping = session.seal(&Message::Ping { token: 1 }).unwrap();
        wire.send(Bytes::from(ping.clone())).await.unwrap();
        let pong = session.open(&wire.next().await.unwrap().unwrap()).unwrap();
        assert_eq!(pong, Message::Pong { token: 1 });
        assert!(r.stats().protocol_errors.is_empty());

        wire.send(Bytes::from(ping)).await.unwrap();
        assert!(
            !matches!(wire.next().await, Some(Ok(_))),
            "the connection stayed open after a replay"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while r.stats().protocol_errors.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let errors = r.stats().protocol_errors;
        assert!(
            errors.len() == 1 && errors[0].contains("replayed"),
            "{errors:?}"
        );
    }

    #[tokio::test]
    async fn a_key_not_allowed_gets_a_reject() {
        let r = TestReceiver::start("b0", KeyPair::generate(), vec![], true)
            .await
            .unwrap();
        let mut wire = Framed::new(TcpStream::connect(r.addr()).await.unwrap(), codec());
        let hello = ClientHello::new(
            1,
            *KeyPair::generate().public().as_bytes(),
            true,
            "t".into(),
        );
        wire.send(Bytes::from(hello.encode())).await.unwrap();
        let answer = ServerHello::decode(&wire.next().await.unwrap().unwrap()).unwrap();
        assert!(
            matches!(answer, ServerHello::Reject { ref reason } if reason.contains("allow-list")),
            "{answer:?}"
        );
        assert!(wire.next().await.is_none());
        assert_eq!(r.stats().refused, 1);
    }
}
