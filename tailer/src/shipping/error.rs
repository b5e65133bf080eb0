//! `ShippingError`: why the shipping side cannot run at all. Per-connection failures are
//! not errors of this kind: they are logged, counted and retried with backoff.

use std::path::PathBuf;

/// Why the shipper stopped (or could not start).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShippingError {
    /// No `cluster_file` in the config.
    #[error(
        "no cluster_file in the tailer config: set it to the cluster file that lists the bucks"
    )]
    NoClusterFile,
    /// The cluster file cannot be used at start-up.
    #[error("{0}")]
    Cluster(#[from] contracts::cluster::ClusterError),
    /// Encryption is on but a buck has no public key.
    #[error(
        "cluster file {path}: buck {buck:?} has no public_key; add the key printed by its `sluice keygen`, or set encryption = false in the tailer config (only for trusted networks)"
    )]
    MissingBuckKey {
        /// The cluster file.
        path: PathBuf,
        /// The buck.
        buck: String,
    },
    /// The tailer's key file cannot be read or created.
    #[error("{0}; check the key_file setting, or run `sluice keygen`")]
    Key(#[from] contracts::keys::KeyError),
    /// The tailer id cannot be read or created.
    #[error("{0}")]
    TailerId(#[from] crate::tailer_id::TailerIdError),
    /// A file or directory of the spool cannot be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}
