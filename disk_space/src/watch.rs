//! `HeadroomWatch`: an agent's data directories measured against its headroom, at most
//! once an interval, so a hot loop may ask every cycle.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::headroom::{Headroom, LowSpace};

/// How often the file systems are measured by default: `statvfs` is cheap, but a reader
/// cycling every few milliseconds need not call it each time.
pub const DEFAULT_EVERY: Duration = Duration::from_millis(250);

/// Watches the file systems of some directories against one [`Headroom`].
#[derive(Debug, Clone)]
pub struct HeadroomWatch {
    headroom: Headroom,
    dirs: Vec<PathBuf>,
    every: Duration,
    last: Option<Instant>,
    low: Option<(PathBuf, LowSpace)>,
}

impl HeadroomWatch {
    /// Watches `dirs` (each on its own file system or not) every `every`.
    pub fn new(headroom: Headroom, dirs: Vec<PathBuf>, every: Duration) -> HeadroomWatch {
        HeadroomWatch {
            headroom,
            dirs,
            every,
            last: None,
            low: None,
        }
    }

    /// The first directory whose file system is below the headroom, measured again when
    /// the interval has passed since the last measurement.
    pub fn low(&mut self) -> Option<&(PathBuf, LowSpace)> {
        if self.last.is_none_or(|t| t.elapsed() >= self.every) {
            self.last = Some(Instant::now());
            self.low = self
                .dirs
                .iter()
                .find_map(|d| self.headroom.check(d).err().map(|l| (d.clone(), l)));
        }
        self.low.as_ref()
    }

    /// The headroom watched.
    pub fn headroom(&self) -> Headroom {
        self.headroom
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_directory_below_its_headroom() {
        let d = tempfile::tempdir().unwrap();
        let mut fine = HeadroomWatch::new(Headroom::NONE, vec![d.path().into()], Duration::ZERO);
        assert!(fine.low().is_none());
        let all = Headroom {
            min_free_bytes: u64::MAX,
            min_free_percent: 0.0,
        };
        let mut low = HeadroomWatch::new(all, vec![d.path().into()], Duration::ZERO);
        assert_eq!(
            low.low().map(|(p, _)| p.clone()),
            Some(d.path().to_path_buf())
        );
    }
}
