//! `RawRecord`: a line (or joined lines) as the reader found it, before parsing.

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
}
