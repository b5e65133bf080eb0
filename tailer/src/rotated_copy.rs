//! Finding the rest of a file after it moved: `locate` looks for the bytes after a
//! checkpoint in the file itself and in its rotated copies (`name.1`, `name.1.gz`,
//! `name.gz`, `name-20261121`, ...), most recent first.
//!
//! A candidate is the checkpointed file when:
//! - its head fingerprint matches, and it is a plain file with the checkpoint's device and
//!   inode (a rename keeps both) or another plain file (a copy made by copytruncate), or a
//!   gzip file (a compressed rotation), compared decompressed;
//! - it holds at least `offset` bytes (uncompressed);
//! - the bytes before `offset` hash to the checkpoint's tail (when one was recorded).
//!
//! The path itself is a candidate only by device and inode: a new file created at the
//! same path is never taken for the old one, even when its first line is the same.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::checkpointer::FileCheckpoint;
use crate::crawl_matcher::rotated_copies_of;
use crate::file_follower::Input;
use crate::fingerprint::{self, TailWindow};

/// Where a checkpointed file's bytes were found, positioned at its offset.
#[derive(Debug)]
pub struct Located {
    /// The file holding them.
    pub path: PathBuf,
    /// Its device.
    pub dev: u64,
    /// Its inode.
    pub inode: u64,
    /// Its (uncompressed) size, as far as known.
    pub size: u64,
    /// Open, positioned at the checkpoint's offset.
    pub input: Input,
}

/// Looks for the checkpointed file's bytes. `exclude` is a device and inode that must not
/// be taken (the file that was just truncated under the checkpoint).
pub fn locate(cp: &FileCheckpoint, exclude: Option<(u64, u64)>) -> Option<Located> {
    // A rotated file is never at its old path any more (that is how it was found rotated);
    // whatever is there now, even on the same inode number, is a newer file. Otherwise
    // the path itself comes first, and the directory is listed for copies only when the
    // path does not hold the bytes: reopening a closed file that merely grew (hundreds a
    // second with many files) then costs no directory listing.
    if !cp.rotated
        && let Some(l) = try_candidate(cp, &cp.path, exclude)
    {
        return Some(l);
    }
    let (Some(dir), Some(name)) = (
        cp.path.parent(),
        cp.path.file_name().and_then(|n| n.to_str()),
    ) else {
        return None;
    };
    let mut copies: Vec<(std::time::SystemTime, PathBuf)> = rotated_copies_of(dir, name)
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    // Most recent first: the copy just made by the rotation that was missed.
    copies.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    copies
        .into_iter()
        .find_map(|(_, path)| try_candidate(cp, &path, exclude))
}

/// Whether `path` holds the checkpointed file's bytes (logged at debug when not).
fn try_candidate(cp: &FileCheckpoint, path: &Path, exclude: Option<(u64, u64)>) -> Option<Located> {
    let found = if path.extension().is_some_and(|x| x == "gz") {
        try_gzip(cp, path)
    } else {
        try_plain(cp, path, exclude)
    };
    match found {
        Ok(Some(l)) => Some(l),
        Ok(None) => {
            tracing::debug!(candidate = %path.display(), seq = cp.seq, offset = cp.offset, head_len = cp.fingerprint.len, tail_len = cp.tail.len, "not the rotated copy");
            None
        }
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "cannot check candidate rotated copy");
            None
        }
    }
}

fn try_plain(
    cp: &FileCheckpoint,
    path: &Path,
    exclude: Option<(u64, u64)>,
) -> std::io::Result<Option<Located>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    let ident = (meta.dev(), meta.ino());
    if !meta.is_file() || exclude == Some(ident) {
        return Ok(None);
    }
    let same = ident == (cp.dev, cp.inode);
    // Another file is only taken by its head, and an empty head would match anything.
    if !same && (path == cp.path || cp.fingerprint.len == 0) {
        return Ok(None);
    }
    // The head is checked even on the same inode: a file truncated and rewritten in place
    // before its first checkpointed byte has no tail to compare, only a head.
    if !cp.fingerprint.matches_head(&mut file)? {
        return Ok(None);
    }
    if meta.len() < cp.offset {
        return Ok(None);
    }
    if cp.tail.len > 0 && fingerprint::tail_of(&file, cp.offset)? != Some(cp.tail) {
        return Ok(None);
    }
    crate::file_follower::FileFollower::seek_plain(&mut file, cp.offset)?;
    Ok(Some(Located {
        path: path.into(),
        dev: ident.0,
        inode: ident.1,
        size: meta.len(),
        input: Input::Plain(file),
    }))
}

fn try_gzip(cp: &FileCheckpoint, path: &Path) -> std::io::Result<Option<Located>> {
    let open = || File::open(path);
    let file = match open() {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if cp.fingerprint.len == 0 || !cp.fingerprint.matches_head(&mut GzDecoder::new(file))? {
        return Ok(None);
    }
    // Skip to the offset in a fresh stream (the head check may have read past it),
    // keeping the last bytes to check the tail.
    let mut gz = Box::new(GzDecoder::new(open()?));
    let mut window = TailWindow::default();
    let mut left = cp.offset;
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = fingerprint::read_full(gz.as_mut(), &mut buf[..want])?;
        if n == 0 {
            return Ok(None);
        }
        window.push(&buf[..n]);
        left -= n as u64;
    }
    if cp.tail.len > 0 && window.fingerprint() != cp.tail {
        return Ok(None);
    }
    Ok(Some(Located {
        path: path.into(),
        dev: meta.dev(),
        inode: meta.ino(),
        size: cp.offset,
        input: Input::Gzip(gz),
    }))
}
