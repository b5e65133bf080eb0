//! Free space on the file systems the agents write to, and what an agent does when it
//! runs out: a full disk is a pause, not an exit.
//!
//! Every agent that writes (the tailer's spool and state, the buck's segments, porter's
//! temporary copies, archie's indexes) checks its [`Headroom`] before work that needs
//! space, so it pauses while the file system still has room for what must not fail
//! (SQLite's checkpoint, a state file's rename); and it treats ENOSPC, EDQUOT and EROFS
//! from a write as a [`StorageFault`], not as a reason to stop. A [`DiskEpisodes`] per
//! agent logs each episode once (with the path and the free space), counts it, and names
//! it in the agent's health until space returns.
//!
//! # Layout
//!
//! - [`headroom`]: `Headroom` (`min_free_bytes`, `min_free_percent`) and `free_space`.
//! - [`fault`]: `StorageFault`, which I/O errors mean "no space" or "read-only".
//! - [`episodes`]: `DiskEpisodes`, one full-disk episode logged and counted once.
//! - [`watch`]: `HeadroomWatch`, a few directories measured at most once an interval.
//!
//! # Example
//!
//! ```
//! use disk_space::{Headroom, StorageFault};
//!
//! let dir = std::env::temp_dir();
//! let headroom = Headroom { min_free_bytes: 0, min_free_percent: 0.0 };
//! assert!(headroom.check(&dir).is_ok());
//! let enospc = std::io::Error::from_raw_os_error(libc::ENOSPC);
//! assert_eq!(StorageFault::of(&enospc), Some(StorageFault::NoSpace));
//! ```
#![deny(missing_docs)]

pub mod episodes;
pub mod fault;
pub mod headroom;
pub mod watch;

pub use episodes::DiskEpisodes;
pub use fault::StorageFault;
pub use headroom::{FreeSpace, Headroom, LowSpace, free_space};
pub use watch::HeadroomWatch;
