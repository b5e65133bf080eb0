//! The frame: a 2-byte big-endian length, then one encoded event.
//!
//! The same reader walks a buck's received packet and a tailer's spool file at recovery,
//! where a trailing [`FrameError::Incomplete`] marks the torn last frame of a crash.

use crate::{DecodeError, Event, EventRef};

/// Largest frame payload: what a 2-byte length can say.
pub const MAX_FRAME_PAYLOAD: usize = u16::MAX as usize;

/// Why the next frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The buffer ends inside the frame starting at `at`: read more, or (in a spool file
    /// after a crash) cut it off there.
    #[error("frame at byte {at} is incomplete: {have} of {need} bytes present")]
    Incomplete {
        /// Where the incomplete frame starts.
        at: usize,
        /// Bytes present from `at`.
        have: usize,
        /// Bytes the frame needs.
        need: usize,
    },
    /// A zero-length frame: never written, so the bytes are corrupt.
    #[error("frame at byte {at} has length 0")]
    Empty {
        /// Where.
        at: usize,
    },
}

/// Appends one frame holding `event` (an [`Event`] or an [`EventRef`]) to `out`. The event
/// must already fit (see [`EventRef::fit`]); returns false and writes nothing otherwise.
pub fn put_event_frame<'a>(out: &mut Vec<u8>, event: impl Into<EventRef<'a>>) -> bool {
    put_frame(out, |out| event.into().encode(out))
}

/// Appends one frame whose payload `body` writes; false, with nothing appended, when the
/// payload is empty or longer than a frame allows.
pub(crate) fn put_frame(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) -> bool {
    let at = out.len();
    // The length goes first but is only known once the payload is written: patching it
    // afterwards saves sizing every field twice.
    out.extend_from_slice(&[0, 0]);
    body(out);
    let len = out.len() - at - 2;
    if len == 0 || len > MAX_FRAME_PAYLOAD {
        out.truncate(at);
        return false;
    }
    out[at..at + 2].copy_from_slice(&(len as u16).to_be_bytes());
    true
}

/// Walks the frames of a buffer. Yields each payload with its offset; stops at the end
/// or at the first error, which it yields once.
pub struct FrameReader<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> FrameReader<'a> {
    /// Reads frames from `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        FrameReader {
            buf,
            pos: 0,
            failed: false,
        }
    }

    /// Offset just past the last complete frame returned.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Checks the next frame without consuming it: its total length (2 + payload).
    pub fn check(&self) -> Result<Option<usize>, FrameError> {
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            return Ok(None);
        }
        if rest.len() < 2 {
            return Err(FrameError::Incomplete {
                at: self.pos,
                have: rest.len(),
                need: 2,
            });
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if len == 0 {
            return Err(FrameError::Empty { at: self.pos });
        }
        if rest.len() < 2 + len {
            return Err(FrameError::Incomplete {
                at: self.pos,
                have: rest.len(),
                need: 2 + len,
            });
        }
        Ok(Some(2 + len))
    }
}

impl<'a> Iterator for FrameReader<'a> {
    type Item = Result<(usize, &'a [u8]), FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.check() {
            Ok(None) => None,
            Ok(Some(total)) => {
                let at = self.pos;
                self.pos += total;
                Some(Ok((at, &self.buf[at + 2..at + total])))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Decodes every frame of `buf` as an event. For each frame, `Ok(event)` or the reason it
/// does not decode; a framing error (an incomplete or empty frame) ends the walk.
pub fn decode_frames(buf: &[u8]) -> (Vec<Result<Event, DecodeError>>, Option<FrameError>) {
    let mut out = Vec::new();
    for item in FrameReader::new(buf) {
        match item {
            Ok((_, payload)) => out.push(Event::decode(payload)),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::arb_event;
    use proptest::prelude::*;

    #[test]
    fn an_event_too_large_for_a_frame_writes_nothing() {
        let mut e = crate::event::tests::small_event();
        e.raw = vec![b'x'; MAX_FRAME_PAYLOAD];
        let mut buf = b"before".to_vec();
        assert!(!put_event_frame(&mut buf, &e));
        assert_eq!(buf, b"before");
        assert!(e.truncate_to_fit(MAX_FRAME_PAYLOAD));
        assert!(put_event_frame(&mut buf, &e));
        assert_eq!(buf.len(), 6 + 2 + MAX_FRAME_PAYLOAD);
    }

    proptest! {
        #[test]
        fn frames_round_trip(events in prop::collection::vec(arb_event(), 0..8)) {
            let mut buf = Vec::new();
            for e in &events {
                prop_assert!(put_event_frame(&mut buf, e));
            }
            let (got, err) = decode_frames(&buf);
            prop_assert!(err.is_none());
            let got: Vec<Event> = got.into_iter().collect::<Result<_, _>>()?;
            prop_assert_eq!(got, events);
        }

        #[test]
        fn every_truncated_prefix_is_incomplete(events in prop::collection::vec(arb_event(), 1..4), cut in any::<prop::sample::Index>()) {
            let mut buf = Vec::new();
            let mut ends = vec![0];
            for e in &events {
                put_event_frame(&mut buf, e);
                ends.push(buf.len());
            }
            let cut = cut.index(buf.len());
            let mut r = FrameReader::new(&buf[..cut]);
            let mut last_ok = 0;
            for item in r.by_ref() {
                match item {
                    Ok((at, p)) => last_ok = at + 2 + p.len(),
                    Err(FrameError::Incomplete { at, .. }) => prop_assert_eq!(at, last_ok),
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                }
            }
            prop_assert!(ends.contains(&last_ok));
        }

        #[test]
        fn garbage_never_panics(b in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_frames(&b);
        }
    }
}
