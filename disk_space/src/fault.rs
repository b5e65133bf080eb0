//! Which I/O errors are a fault of the storage (wait for it) rather than of the work.

/// A write failed because of the file system, not because of what was written: the agent
/// pauses what needs space and retries, instead of exiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// ENOSPC or EDQUOT: the file system, or the user's quota, is full.
    NoSpace,
    /// EROFS: the file system was remounted read-only (often after an I/O error).
    ReadOnly,
}

impl StorageFault {
    /// The fault an I/O error stands for, if it is one.
    pub fn of(e: &std::io::Error) -> Option<StorageFault> {
        match e.raw_os_error()? {
            libc::ENOSPC | libc::EDQUOT => Some(StorageFault::NoSpace),
            libc::EROFS => Some(StorageFault::ReadOnly),
            _ => None,
        }
    }

    /// The fault behind an error chain (an `io::Error` anywhere in its sources), if any.
    pub fn in_chain(e: &(dyn std::error::Error + 'static)) -> Option<StorageFault> {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(io) = err.downcast_ref::<std::io::Error>()
                && let Some(f) = StorageFault::of(io)
            {
                return Some(f);
            }
            cur = err.source();
        }
        None
    }

    /// Short name, for logs, metrics and health.
    pub fn name(self) -> &'static str {
        match self {
            StorageFault::NoSpace => "disk full",
            StorageFault::ReadOnly => "file system read-only",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(std::io::Error);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "writing a state file")
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn names_space_and_read_only_faults_and_nothing_else() {
        let os = std::io::Error::from_raw_os_error;
        assert_eq!(
            StorageFault::of(&os(libc::ENOSPC)),
            Some(StorageFault::NoSpace)
        );
        assert_eq!(
            StorageFault::of(&os(libc::EDQUOT)),
            Some(StorageFault::NoSpace)
        );
        assert_eq!(
            StorageFault::of(&os(libc::EROFS)),
            Some(StorageFault::ReadOnly)
        );
        assert_eq!(StorageFault::of(&os(libc::ENOENT)), None);
        let plain = std::io::Error::other("no errno");
        assert_eq!(StorageFault::of(&plain), None);
        let chained = Wrapped(os(libc::ENOSPC));
        assert_eq!(
            StorageFault::in_chain(&chained),
            Some(StorageFault::NoSpace)
        );
        assert_eq!(StorageFault::in_chain(&Wrapped(plain)), None);
    }
}
