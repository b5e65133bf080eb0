//! The edge of Sluice: what the `sluice`, `tailer` and `buck` binaries share. Command
//! implementations over the agent libraries, the HTTP serving that adds `/healthz` and
//! `/metrics` once per process, and logging set-up. Errors here are `anyhow`: this is
//! where they are shown to a person.
//!
//! # Layout
//!
//! - [`agents`]: one agent from its config file (`sluice tail`, `sluice buck`).
//! - [`up`]: `sluice up`, every agent in one process on loopback.
//! - [`serve`]: one HTTP listener with an agent's router, `/healthz` and `/metrics`.
//! - [`check`]: `sluice check`, a Nagios/Icinga plugin.
//! - [`sql_client`]: `sluice sql`, a table printer over the read API.
//! - [`space_wait`]: starting on a full disk waits for space.
//! - [`logging`]: tracing set-up; [`runtime`]: the one async runtime of every binary.
#![deny(missing_docs)]

pub mod agents;
pub mod check;
pub mod logging;
pub mod serve;
pub mod space_wait;
pub mod sql_client;
pub mod up;

/// The async runtime every binary runs its agents on (multi-threaded, I/O and timers).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
