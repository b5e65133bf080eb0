//! `RawRecord`: a line (or joined lines) as the reader found it, before parsing; and
//! `RecordRef`, the same with its bytes borrowed (from the tailer's read buffer, or the
//! joiner's), which is what the hot path passes around.

/// A line, or several joined lines, with where it was read.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RawRecord {
    /// Byte offset in the (uncompressed) file where the record starts: the event id's offset.
    pub offset: u64,
    /// The bytes, without the line terminator; joined lines are separated by `\n`.
    pub bytes: Vec<u8>,
    /// The record's length as it was in the file (terminators of joined lines counted as
    /// one `\n` each); larger than `bytes.len()` when the reader or the joiner cut it.
    pub original_len: u64,
    /// How many physical lines the record holds (at least 1).
    pub lines: u32,
}

impl RawRecord {
    /// One physical line read whole at `offset`.
    pub fn line(offset: u64, bytes: Vec<u8>) -> RawRecord {
        let original_len = bytes.len() as u64;
        RawRecord {
            offset,
            bytes,
            original_len,
            lines: 1,
        }
    }

    /// Whether bytes were cut off (by the reader, or the joiner's cap).
    pub fn is_cut(&self) -> bool {
        self.original_len > self.bytes.len() as u64
    }

    /// The record with its bytes borrowed.
    pub fn as_record_ref(&self) -> RecordRef<'_> {
        RecordRef {
            offset: self.offset,
            bytes: &self.bytes,
            original_len: self.original_len,
            lines: self.lines,
        }
    }
}

/// A [`RawRecord`] whose bytes are borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Byte offset in the (uncompressed) file where the record starts.
    pub offset: u64,
    /// The bytes, without the line terminator; joined lines are separated by `\n`.
    pub bytes: &'a [u8],
    /// The record's length as it was in the file; larger than `bytes.len()` when cut.
    pub original_len: u64,
    /// How many physical lines the record holds (at least 1).
    pub lines: u32,
}

impl<'a> RecordRef<'a> {
    /// One physical line read whole at `offset`.
    pub fn line(offset: u64, bytes: &'a [u8]) -> RecordRef<'a> {
        RecordRef {
            offset,
            bytes,
            original_len: bytes.len() as u64,
            lines: 1,
        }
    }

    /// An owned copy.
    pub fn to_record(&self) -> RawRecord {
        RawRecord {
            offset: self.offset,
            bytes: self.bytes.to_vec(),
            original_len: self.original_len,
            lines: self.lines,
        }
    }
}
