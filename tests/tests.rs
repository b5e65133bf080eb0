//! Cross-process tests: the real binaries, real files, real TCP on loopback.
//!
//! - `up`: `sluice up` end to end: a line written to a file is answered by SQL.
//! - `a11y`: every page passes axe-core (WCAG 2 AA) without serious violations.
//! - `archive`: `sluice up` archives closed segments; `porter fetch` brings them back.
//! - `cluster`: 3 bucks and 2 tailers; homes only; a killed home catches up.
//! - `console`: the SQL console in Chromium: 100,000 rows, cancel, truncation, downloads.
//! - `crawls`: the crawls page in Chromium: a day's chart and table equal the log.
//! - `deploy`: the systemd units verify; the Ansible playbook installs a cluster that answers SQL.
//! - `edge`: SQL memory bombs and a flood of slow queries against `sluice up`.
//! - `feeds`: `GET /subscribe` to fast and stalled curl clients, Graphite, `sluice check`.
//! - `disk_faults`: a full or failing disk under running agents (tmpfs in a private mount namespace).
//! - `off_loopback`: `sluice up` off loopback (in a private network namespace) is closed without its tokens.
//! - `history`: archie through `sluice up`: search answers equal grep; the page in Chromium.
//! - `live`: the live stream through the pipeline to Node and Chromium clients.
//! - `resource_faults`: a descriptor limit far below the number of followed files.
//! - `tailer_faults`: SIGKILL the tailer mid-stream, again and again; nothing lost or doubled.
//! - `tailer_scale`: 20,000 files on polling, a long buck outage, the re-send after SIGKILL.

// A test crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

mod util;

mod a11y;
mod archive;
mod cluster;
mod console;
mod crawls;
mod deploy;
mod disk_faults;
mod edge;
mod feeds;
mod history;
mod live;
mod metrics;
mod off_loopback;
mod resource_faults;
mod tailer_faults;
mod tailer_scale;
mod up;
