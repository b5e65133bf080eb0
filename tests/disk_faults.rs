//! Faults of the disk under a running agent, on real file systems: a small tmpfs, or an
//! ext4 image on a loop device, mounted in a private mount namespace (`unshare --mount`),
//! so the mount lives and dies with the agent and the test machine's own mounts are never
//! touched. The test reaches files inside it through `/proc/<pid>/root` and resizes it, or
//! makes the kernel remount it read-only, with `nsenter`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Agent, Dir, PATIENCE, sql_count, wait_for, write_log};

/// A `sluice up` whose `--dir` is a file system of its own.
struct UpOnTmpfs {
    agent: Agent,
    url: String,
    mount: PathBuf,
}

impl UpOnTmpfs {
    /// Mounts a tmpfs of `size_mb` at `<dir>/up` in a new mount namespace and runs
    /// `sluice up` there with `args`.
    fn start(dir: &Dir, size_mb: u32, args: &[&str]) -> UpOnTmpfs {
        let mount = r#"mount -t tmpfs -o size="$1"m sluice-test "$2""#;
        UpOnTmpfs::start_mounted(dir, mount, &size_mb.to_string(), args)
    }

    /// Mounts the ext4 image `image` (a loop device, `errors=remount-ro`) at `<dir>/up`
    /// in a new mount namespace and runs `sluice up` there with `args`.
    fn start_on_ext4(dir: &Dir, image: &Path, args: &[&str]) -> UpOnTmpfs {
        let mount = r#"mount -o loop,errors=remount-ro "$1" "$2""#;
        UpOnTmpfs::start_mounted(dir, mount, &image.display().to_string(), args)
    }

    /// Runs `mount` (a shell command over `$1` = `source` and `$2` = the mount point) in
    /// a new mount namespace, then `sluice up` on it.
    fn start_mounted(dir: &Dir, mount_cmd: &str, source: &str, args: &[&str]) -> UpOnTmpfs {
        UpOnTmpfs::start_mounted_then(dir, mount_cmd, source, args, |_, _| {})
    }

    /// [`start_mounted`](Self::start_mounted), calling `before_ready` with the agent and
    /// the mount point as the test sees it (through `/proc/<pid>/root`) before waiting
    /// for `sluice up` to be ready.
    fn start_mounted_then(
        dir: &Dir,
        mount_cmd: &str,
        source: &str,
        args: &[&str],
        before_ready: impl FnOnce(&mut Agent, &Path),
    ) -> UpOnTmpfs {
        let mount = dir.join("up");
        std::fs::create_dir_all(&mount).expect("mount point");
        let script = format!(r#"{mount_cmd} && shift 2 && exec "$@""#);
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .arg(source)
        .arg(&mount)
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .args(["up", "--dir"])
        .arg(&mount)
        .args(["--http", "127.0.0.1:0"])
        .args(args);
        let mut agent = Agent::spawn_command(dir, "up", cmd);
        let root = PathBuf::from(format!("/proc/{}/root", agent.pid()))
            .join(mount.strip_prefix("/").expect("temp dirs are absolute"));
        before_ready(&mut agent, &root);
        let inside = root.join("up.json");
        let url = wait_for("sluice up on tmpfs to write up.json", PATIENCE, || {
            agent.assert_running();
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&inside).ok()?).ok()?;
            Some(format!("http://{}", v["http"].as_str()?))
        });
        UpOnTmpfs { agent, url, mount }
    }

    /// Resizes the tmpfs, from inside the agent's mount namespace.
    fn resize(&self, size_mb: u32) {
        let status = Command::new("nsenter")
            .args([
                "--target",
                &self.agent.pid().to_string(),
                "--mount",
                "mount",
                "-o",
            ])
            .arg(format!("remount,size={size_mb}m"))
            .arg(&self.mount)
            .status()
            .expect("running nsenter");
        assert!(status.success(), "resizing the tmpfs failed: {status}");
    }

    /// Has the kernel treat the ext4 file system as failed: with `errors=remount-ro` it
    /// remounts it read-only at once, under every open file, as after an I/O error.
    fn fail_ext4(&self) {
        let pid = self.agent.pid().to_string();
        let source = Command::new("nsenter")
            .args(["--target", &pid, "--mount", "findmnt", "-n", "-o", "SOURCE"])
            .arg(&self.mount)
            .output()
            .expect("running findmnt");
        let source = String::from_utf8_lossy(&source.stdout).trim().to_owned();
        let device = source.rsplit('/').next().unwrap_or_default().to_owned();
        assert!(device.starts_with("loop"), "not a loop mount: {source:?}");
        let status = Command::new("nsenter")
            .args(["--target", &pid, "--mount", "sh", "-c"])
            .arg(format!(
                "echo sluice-test > /sys/fs/ext4/{device}/trigger_fs_error"
            ))
            .status()
            .expect("running nsenter");
        assert!(
            status.success(),
            "triggering an ext4 error failed: {status}"
        );
    }

    fn health(&self) -> String {
        reqwest::blocking::get(format!("{}/healthz", self.url))
            .and_then(|r| r.text())
            .unwrap_or_default()
    }

    fn metrics(&self) -> String {
        reqwest::blocking::get(format!("{}/metrics", self.url))
            .and_then(|r| r.text())
            .unwrap_or_default()
    }
}

/// The sum of every sample whose metric name ends with `suffix` (any agent, any labels).
fn metric_sum(text: &str, suffix: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            let name = name.split('{').next()?;
            name.ends_with(suffix)
                .then(|| value.trim().parse::<f64>().ok())?
        })
        .sum()
}

/// r16: a crawl log bigger than the data directory's file system. The agents pause
/// before the disk is full (the buck keeps 2 MB free, the tailer 4 MB), keep answering SQL
/// and health, and once the file system grows they resume by themselves: every line
/// stored exactly once.
#[test]
fn a_full_disk_pauses_sluice_up_and_it_resumes_by_itself_with_nothing_lost() {
    fills_pauses_and_resumes("full-disk", "2000000", true);
}

/// r16, without headroom: every write meets ENOSPC for real (spool appends, checkpoints,
/// records, SQLite's WAL), and none of it stops the process.
#[test]
fn a_disk_at_zero_bytes_free_pauses_sluice_up_without_an_exit_and_resumes() {
    // At exactly zero bytes free, a query may itself need space (SQLite grows a WAL's
    // shared-memory file as the WAL grows): that is what the headroom is for, so here
    // only the process, health and the resume are asserted, not every SQL answer.
    fills_pauses_and_resumes("zero-free", "0", false);
}

fn fills_pauses_and_resumes(name: &str, min_free_bytes: &str, sql_while_full: bool) {
    let dir = Dir::new(name);
    let log = dir.join("crawls/full/crawl.log");
    // About 17 MB of log (segments take 4 to 5 times that) into a 24 MB file system
    // holding spool, state, segments and archive.
    let lines = 60_000;
    write_log(&log, lines);
    let log_s = log.display().to_string();
    let mut up = UpOnTmpfs::start(
        &dir,
        24,
        &[
            "--crawl",
            "full",
            "--min-free-bytes",
            min_free_bytes,
            &log_s,
        ],
    );
    let count = "SELECT count(*) FROM crawled_url";

    let paused = wait_for("the agents to report a full disk", PATIENCE * 3, || {
        up.agent.assert_running();
        let m = up.metrics();
        (metric_sum(&m, "_disk_full_episodes_total") >= 1.0).then_some(m)
    });
    let stored_when_full = sql_count(&up.url, "full", count);
    // While full: alive, healthy but degraded, SQL answering, for a while.
    let until = Instant::now() + Duration::from_secs(3);
    let mut answers = 0;
    while Instant::now() < until {
        up.agent.assert_running();
        let health = reqwest::blocking::get(format!("{}/healthz", up.url)).expect("/healthz");
        assert!(
            health.status().is_success(),
            "/healthz failed on a full disk"
        );
        let n = sql_count(&up.url, "full", count);
        assert!(
            n.is_some() || !sql_while_full,
            "SQL stopped answering on a disk at its headroom"
        );
        answers += 1;
    }
    assert!(answers > 3);
    let health = reqwest::blocking::get(format!("{}/healthz", up.url))
        .and_then(|r| r.text())
        .unwrap_or_default();
    assert!(
        health.contains("degraded") && health.contains("disk"),
        "health should say why: {health}\nmetrics when paused:\n{paused}"
    );
    assert!(stored_when_full.unwrap_or(0) < lines as i64);

    up.resize(512);
    let stored = wait_for(
        "every line stored after the disk grew",
        PATIENCE * 3,
        || {
            up.agent.assert_running();
            let n = sql_count(&up.url, "full", count)?;
            (n >= lines as i64).then_some(n)
        },
    );
    assert_eq!(stored, lines as i64, "lines stored twice");
    let distinct = sql_count(
        &up.url,
        "full",
        "SELECT count(DISTINCT url) FROM crawled_url",
    );
    assert_eq!(distinct, Some(lines as i64), "a line lost or stored twice");
    wait_for("health to clear after the disk grew", PATIENCE, || {
        let h = reqwest::blocking::get(format!("{}/healthz", up.url))
            .and_then(|r| r.text())
            .ok()?;
        (!h.contains("degraded")).then_some(())
    });
    assert!(up.agent.terminate(Duration::from_secs(10)), "unclean stop");
}

/// An ext4 image of `size_mb` at `path`.
fn make_ext4(path: &Path, size_mb: u64) {
    let f = std::fs::File::create(path).expect("creating the image");
    f.set_len(size_mb << 20).expect("sizing the image");
    let status = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(path)
        .status()
        .expect("mkfs.ext4 (Debian's e2fsprogs) is needed for this test");
    assert!(status.success(), "mkfs.ext4 failed: {status}");
}

/// r16 item 3: the data directory's file system goes read-only under a running `sluice
/// up` (the kernel's answer to an I/O error, forced with ext4's `trigger_fs_error`). It
/// stays up, health says why, SQL keeps answering, and a SIGTERM still stops it cleanly
/// in under 10 s. After the operator's repair (fsck) a new start stores every line,
/// including those written while the disk was read-only, exactly once.
#[test]
fn a_file_system_gone_read_only_pauses_sluice_up_and_a_start_after_repair_loses_nothing() {
    let dir = Dir::new("read-only");
    let image = dir.join("data.img");
    make_ext4(&image, 128);
    let log = dir.join("crawls/ro/crawl.log");
    let (before, during) = (20_000, 5_000);
    write_log(&log, before);
    let log_s = log.display().to_string();
    let args = [
        "--crawl",
        "ro",
        "--min-free-bytes",
        "1000000",
        log_s.as_str(),
    ];
    let count = "SELECT count(*) FROM crawled_url";

    let mut up = UpOnTmpfs::start_on_ext4(&dir, &image, &args);
    wait_for("the first lines stored", PATIENCE * 3, || {
        up.agent.assert_running();
        (sql_count(&up.url, "ro", count)? == before as i64).then_some(())
    });
    up.fail_ext4();
    write_log(&log, during);
    let health = wait_for("health to say read-only", PATIENCE * 3, || {
        up.agent.assert_running();
        let h = up.health();
        h.contains("read-only").then_some(h)
    });
    assert!(health.starts_with("degraded"), "{health}");
    assert!(metric_sum(&up.metrics(), "_disk_full_episodes_total") >= 1.0);
    // While read-only: alive, and SQL answers what was stored before.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        up.agent.assert_running();
        assert_eq!(
            sql_count(&up.url, "ro", count),
            Some(before as i64),
            "SQL stopped answering on a read-only disk"
        );
    }
    let started = Instant::now();
    assert!(
        up.agent.terminate(Duration::from_secs(10)),
        "sluice up did not stop cleanly on a read-only disk:\n{}",
        up.agent.log()
    );
    eprintln!("stopped on a read-only disk in {:?}", started.elapsed());

    // The operator's repair: fsck, then mount read-write again (a new start mounts it).
    let fsck = Command::new("e2fsck")
        .arg("-fy")
        .arg(&image)
        .status()
        .expect("running e2fsck");
    assert!(
        matches!(fsck.code(), Some(0 | 1)),
        "e2fsck could not repair the image: {fsck}"
    );
    let up = UpOnTmpfs::start_on_ext4(&dir, &image, &args);
    let total = (before + during) as i64;
    let stored = wait_for("every line stored after the repair", PATIENCE * 3, || {
        let n = sql_count(&up.url, "ro", count)?;
        (n >= total).then_some(n)
    });
    assert_eq!(stored, total, "lines stored twice");
    assert_eq!(
        sql_count(&up.url, "ro", "SELECT count(DISTINCT url) FROM crawled_url"),
        Some(total),
        "a line lost or stored twice"
    );
}

/// r16: `sluice up` started on a file system that is already full waits for space
/// (logging why once) instead of exiting, and starts by itself when space returns: every
/// line stored once.
#[test]
fn sluice_up_started_on_a_full_disk_waits_and_starts_when_space_returns() {
    let dir = Dir::new("full-at-start");
    let log = dir.join("crawls/late/crawl.log");
    let lines = 2_000;
    write_log(&log, lines);
    let log_s = log.display().to_string();
    // The filler takes every byte (dd stops at ENOSPC) before sluice up starts.
    let mount = r#"mount -t tmpfs -o size="$1"m sluice-test "$2" && { dd if=/dev/zero of="$2/filler" bs=64k 2>/dev/null; true; }"#;
    let up = UpOnTmpfs::start_mounted_then(
        &dir,
        mount,
        "16",
        &["--crawl", "late", "--min-free-bytes", "1000000", &log_s],
        |agent, root| {
            wait_for("sluice up to say it waits for space", PATIENCE, || {
                agent.assert_running();
                agent
                    .log()
                    .contains("cannot start: disk full")
                    .then_some(())
            });
            assert!(
                !root.join("up.json").exists(),
                "it claimed to be up on a full disk"
            );
            std::fs::remove_file(root.join("filler")).expect("removing the filler");
        },
    );
    let count = "SELECT count(*) FROM crawled_url";
    let stored = wait_for(
        "every line stored once space returned",
        PATIENCE * 3,
        || {
            let n = sql_count(&up.url, "late", count)?;
            (n >= lines as i64).then_some(n)
        },
    );
    assert_eq!(stored, lines as i64, "lines stored twice");
    assert_eq!(
        sql_count(
            &up.url,
            "late",
            "SELECT count(DISTINCT url) FROM crawled_url"
        ),
        Some(lines as i64)
    );
    assert_eq!(
        up.agent.log().matches("cannot start").count(),
        1,
        "the wait is logged once"
    );
}

/// Issue 16, porter: its work directory on a file system too small for the segment's
/// copies (a 256 KiB tmpfs in a private mount namespace, no headroom), so the download
/// meets ENOSPC for real. The run defers (no segment failed, nothing uploaded, no
/// temporary file left on the tmpfs); after the tmpfs grows, the next run archives.
#[test]
fn a_full_porter_work_disk_defers_the_run_and_it_archives_once_the_disk_grows() {
    use crate::archive::{ClosedDay, files_under};
    let dir = Dir::new("porter-enospc");
    let n = 6_000;
    let fx = ClosedDay::start(&dir, "pe", n);
    let (cfg, archive, work) = (
        dir.join("porter.toml"),
        dir.join("porter-archive"),
        dir.join("porter-work"),
    );
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(&cfg, fx.porter_config(&dir, &archive, &work, "0")).unwrap();
    let segment = dir.join(&format!("up/buck/segments/pe/{}.sqlite", fx.day));
    // The pages the buck's copy will hold, not the file's length: a closed segment's
    // last pages can still sit in its WAL while a reader holds the checkpoint back.
    let size: i64 =
        rusqlite::Connection::open_with_flags(&segment, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| {
                c.query_row(
                    "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                    [],
                    |r| r.get(0),
                )
            })
            .expect("the segment's size in pages");
    assert!(
        size > 512 << 10,
        "the segment ({size} bytes) must not fit the tmpfs"
    );
    // One namespace for both runs: mount, run, list what is left, grow, run again.
    let script = r#"mount -t tmpfs -o size=256k porter-test "$2" || exit 90
"$1" --config "$3" archive --once; echo "first=$?" >&2
echo "left: $(find "$2" -type f | wc -l)" >&2
mount -o remount,size=64m "$2" || exit 91
"$1" --config "$3" archive --once; echo "second=$?" >&2
echo "left: $(find "$2" -type f | wc -l)" >&2"#;
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(env!("CARGO_BIN_EXE_porter"))
        .arg(&work)
        .arg(&cfg)
        .output()
        .expect("unshare");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the namespace script: {err}");
    let (first, second) = err.split_once("first=").expect("first run");
    assert!(
        first.contains("deferred 1 segment(s) for disk space (none failed"),
        "{err}"
    );
    assert!(first.contains("disk full at"), "the run says why: {err}");
    assert!(!first.contains("porter: failed"), "{err}");
    assert!(
        second.starts_with('1'),
        "a deferred run exits non-zero: {err}"
    );
    let (between, after) = second.split_once("second=").expect("second run");
    assert!(
        between.contains("left: 0"),
        "temporary files left on the full disk: {err}"
    );
    assert!(after.starts_with('0'), "the second run archives: {err}");
    assert!(after.contains("left: 0"), "{err}");
    let m: Value = serde_json::from_str(
        &std::fs::read_to_string(archive.join(format!("pe/{}.sqlite.z.json", fx.day)))
            .expect("the manifest"),
    )
    .unwrap();
    assert_eq!(m["events"].as_i64(), Some(n), "{m}");
    // Outside the namespace the work directory was never written.
    assert_eq!(files_under(&work), Vec::<String>::new());
}
