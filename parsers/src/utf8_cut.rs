//! Cutting bytes without splitting a UTF-8 character.
//!
//! A cut in the middle of a character would turn a valid line into an invalid one, and the
//! event would be flagged `invalid_utf8` for a fault that is ours, not the file's.

/// The largest cut `<= at` that does not split a UTF-8 character of `b` (for bytes that are
/// not UTF-8 at all, it moves back at most three bytes, which is harmless).
pub(crate) fn char_floor(b: &[u8], at: usize) -> usize {
    if at >= b.len() {
        return b.len();
    }
    let mut cut = at;
    // Continuation bytes are 0b10xxxxxx; a character has at most three of them.
    while cut > 0 && at - cut < 3 && b[cut] & 0xC0 == 0x80 {
        cut -= 1;
    }
    if b[cut] & 0xC0 == 0x80 { at } else { cut }
}

/// Whether `b` is UTF-8 except, perhaps, for a character cut short at its very end (what a
/// reader's byte cap leaves); returns the length of the valid part when so.
pub(crate) fn valid_prefix_if_only_tail_cut(b: &[u8]) -> Option<usize> {
    match std::str::from_utf8(b) {
        Ok(_) => Some(b.len()),
        // `error_len() == None` means the input ended inside a character.
        Err(e) if e.error_len().is_none() => Some(e.valid_up_to()),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_splits_a_character() {
        let s = "aé€𝄞z".as_bytes();
        for at in 0..=s.len() + 2 {
            let cut = char_floor(s, at);
            assert!(cut <= at.min(s.len()));
            assert!(
                std::str::from_utf8(&s[..cut]).is_ok(),
                "cut {cut} from {at}"
            );
            assert!(at.min(s.len()) - cut < 4);
        }
        assert_eq!(
            char_floor(&[0x80, 0x80, 0x80, 0x80, 0x80], 4),
            4,
            "not utf-8: cut as asked"
        );
    }

    #[test]
    fn tail_cut_is_not_invalid() {
        let s = "ab€".as_bytes();
        assert_eq!(valid_prefix_if_only_tail_cut(&s[..4]), Some(2));
        assert_eq!(valid_prefix_if_only_tail_cut(s), Some(5));
        assert_eq!(valid_prefix_if_only_tail_cut(b"a\xFFb"), None);
    }
}
