//! The tailer killed with SIGKILL, again and again, while a crawler writes: after the
//! last restart every line is in the buck exactly once (no line lost, none stored twice,
//! no torn record).

use std::io::Write;

use chrono::Utc;
use contracts::keys::KeyPair;

use crate::util::{Agent, Dir, PATIENCE, appender, sql, start_buck, wait_for};

pub struct SingleBuck {
    pub agent: Agent,
    pub http: String,
}

/// One buck (id `b0`) plus a cluster file naming it, and a tailer config following
/// `<dir>/jobs/{crawl}/crawl.log`. Returns the buck and the tailer config path.
pub fn single_buck_setup(dir: &Dir, tailer_extra: &str) -> (SingleBuck, String) {
    single_buck_setup_with(dir, "", tailer_extra)
}

/// As [`single_buck_setup`], with more TOML for the buck's config.
pub fn single_buck_setup_with(
    dir: &Dir,
    buck_extra: &str,
    tailer_extra: &str,
) -> (SingleBuck, String) {
    let bk = KeyPair::generate();
    let tk = KeyPair::generate();
    bk.save(&dir.join("keys"), "b0").unwrap();
    tk.save(&dir.join("keys"), "t0").unwrap();
    let cluster = dir.join("cluster.toml");
    std::fs::write(&cluster, "[[buck]]\nid = \"b0\"\ningest = \"127.0.0.1:1\"\nhttp_url = \"http://127.0.0.1:1\"\nsince = \"2000-01-01\"\n").unwrap();
    let cfg = format!(
        "id = \"b0\"\ndata_dir = {:?}\ncluster_file = {:?}\nkey_file = {:?}\nallowed_tailers = [{:?}]\n{buck_extra}\n",
        dir.join("b0").display().to_string(),
        cluster.display().to_string(),
        dir.join("keys/b0.key").display().to_string(),
        tk.public_text()
    );
    std::fs::write(dir.join("b0.toml"), cfg).unwrap();
    let b = start_buck(dir, "b0", 0);
    let (agent, http) = (b.agent, b.http);
    let tmp = cluster.with_extension("tmp");
    std::fs::write(
        &tmp,
        format!(
            "[[buck]]\nid = \"b0\"\ningest = \"{}\"\nhttp_url = \"{http}\"\npublic_key = \"{}\"\nsince = \"2000-01-01\"\n",
            b.ingest,
            bk.public_text()
        ),
    )
    .unwrap();
    std::fs::rename(&tmp, &cluster).unwrap();
    let tcfg = format!(
        "spool_dir = {:?}\nstate_dir = {:?}\ncluster_file = {:?}\nkey_file = {:?}\nbucket_interval_secs = 1\nrepair_delay_max_secs = 1\npoll_interval_ms = 20\ndiscovery_interval_ms = 100\nnice = 0\n{tailer_extra}\n[[source]]\npath = {:?}\nformat = \"crawl_log\"\n",
        dir.join("spool").display().to_string(),
        dir.join("state").display().to_string(),
        cluster.display().to_string(),
        dir.join("keys/t0.key").display().to_string(),
        dir.join("jobs/{crawl}/crawl.log").display().to_string(),
    );
    let tpath = dir.join("t0.toml");
    std::fs::write(&tpath, tcfg).unwrap();
    (SingleBuck { agent, http }, tpath.display().to_string())
}

fn line(i: usize) -> String {
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    format!(
        "{now}   200 {:>10} http://www.example.com/page/{i} L http://www.example.com/ text/html #001 - sha1:X - -\n",
        1000 + i
    )
}

#[test]
fn sigkill_mid_stream_loses_nothing_and_stores_nothing_twice() {
    let dir = Dir::new("tailer-sigkill");
    let (buck, tcfg) = single_buck_setup(&dir, "");
    let log = dir.join("jobs/k1/crawl.log");
    let mut written = 0usize;
    let mut tailer = Agent::spawn(&dir, "tailer-0", "tailer", &["--config", &tcfg]);
    for round in 0..6 {
        let mut f = appender(&log);
        // A burst large enough that the kill lands mid-read and mid-spool-write.
        for _ in 0..3000 {
            f.write_all(line(written).as_bytes()).unwrap();
            written += 1;
        }
        drop(f);
        // Wait until the tailer has made some progress on this burst, then kill it.
        let before = written - 3000;
        wait_for("the tailer to ship part of the burst", PATIENCE, || {
            tailer.assert_running();
            let n = sql(&buck.http, "k1", "SELECT count(*) AS n FROM events")
                .ok()?
                .first()?["n"]
                .as_i64()?;
            (n as usize > before).then_some(())
        });
        tailer.kill();
        tailer = Agent::spawn(
            &dir,
            &format!("tailer-{}", round + 1),
            "tailer",
            &["--config", &tcfg],
        );
    }
    let mut buck = buck;
    let rows = wait_for("every line in the buck", PATIENCE * 2, || {
        tailer.assert_running();
        buck.agent.assert_running();
        let r = sql(
            &buck.http,
            "k1",
            "SELECT count(*) AS n, count(DISTINCT id) AS d, count(DISTINCT line) AS l FROM events",
        )
        .ok()?;
        let r = r.first()?.clone();
        (r["l"].as_i64()? as usize >= written).then_some(r)
    });
    assert_eq!(
        rows["l"].as_i64().unwrap() as usize,
        written,
        "every distinct line, none extra"
    );
    assert_eq!(rows["n"], rows["d"], "no event stored twice");
    assert_eq!(
        rows["n"].as_i64().unwrap() as usize,
        written,
        "one event per line: no torn or split records"
    );
}

/// The value of one sample (name and labels as written) on an agent's `/metrics`.
fn metric(http: &str, sample: &str) -> Option<f64> {
    let text = reqwest::blocking::get(format!("{http}/metrics"))
        .ok()?
        .text()
        .ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix(sample)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn stored(http: &str, crawl: &str) -> Option<(i64, i64)> {
    let r = sql(
        http,
        crawl,
        "SELECT count(*) AS n, count(DISTINCT line) AS l FROM events",
    )
    .ok()?;
    let r = r.first()?;
    Some((r["n"].as_i64()?, r["l"].as_i64()?))
}

/// Real processes on both sides of a protocol upgrade: a new tailer to a buck that speaks
/// only version 1 (as an old buck), a tailer offering only version 1 (as an old tailer)
/// to a new buck, then that tailer upgraded in place. Every line arrives once, and the
/// buck's `sessions_total` says which cipher each session used.
#[test]
fn old_and_new_sides_of_a_protocol_upgrade_deliver_every_line_once() {
    const SALSA: &str = "sluice_buck_sessions_total{cipher=\"xsalsa20poly1305\"}";
    const CHACHA: &str = "sluice_buck_sessions_total{cipher=\"xchacha20poly1305\"}";
    let write = |dir: &Dir, from: usize, to: usize| {
        let mut f = appender(&dir.join("jobs/k1/crawl.log"));
        for i in from..to {
            f.write_all(line(i).as_bytes()).unwrap();
        }
    };
    let wait_stored = |http: &str, agent: &mut Agent, n: i64| {
        wait_for(&format!("{n} lines stored"), PATIENCE, || {
            agent.assert_running();
            (stored(http, "k1")? == (n, n)).then_some(())
        })
    };

    // A new tailer, an old buck.
    let dir = Dir::new("protocol-old-buck");
    let (buck, tcfg) = single_buck_setup_with(&dir, "max_protocol_version = 1", "");
    write(&dir, 0, 500);
    let mut tailer = Agent::spawn(&dir, "tailer", "tailer", &["--config", &tcfg]);
    wait_stored(&buck.http, &mut tailer, 500);
    assert!(metric(&buck.http, SALSA).unwrap() >= 1.0);
    assert_eq!(metric(&buck.http, CHACHA), Some(0.0));
    assert!(
        tailer.terminate(std::time::Duration::from_secs(20)),
        "clean stop"
    );

    // A buck of protocol version 2 (ChaChaBox, version-1 events only): the tailer's frame
    // streams are rewritten as version-1 frames for it.
    let dir = Dir::new("protocol-v2-buck");
    let (buck, tcfg) = single_buck_setup_with(&dir, "max_protocol_version = 2", "");
    write(&dir, 0, 500);
    let mut tailer = Agent::spawn(&dir, "tailer", "tailer", &["--config", &tcfg]);
    wait_stored(&buck.http, &mut tailer, 500);
    assert!(metric(&buck.http, CHACHA).unwrap() >= 1.0);
    assert!(
        tailer.terminate(std::time::Duration::from_secs(20)),
        "clean stop"
    );

    // An old tailer, a new buck; then the tailer upgraded.
    let dir = Dir::new("protocol-old-tailer");
    let (buck, tcfg) = single_buck_setup_with(&dir, "", "max_protocol_version = 1");
    write(&dir, 0, 500);
    let mut tailer = Agent::spawn(&dir, "tailer-old", "tailer", &["--config", &tcfg]);
    wait_stored(&buck.http, &mut tailer, 500);
    assert!(metric(&buck.http, SALSA).unwrap() >= 1.0);
    assert_eq!(metric(&buck.http, CHACHA), Some(0.0));
    assert!(
        tailer.terminate(std::time::Duration::from_secs(20)),
        "clean stop"
    );
    let upgraded = std::fs::read_to_string(&tcfg)
        .unwrap()
        .replace("max_protocol_version = 1", "");
    std::fs::write(&tcfg, upgraded).unwrap();
    write(&dir, 500, 1000);
    let mut tailer = Agent::spawn(&dir, "tailer-new", "tailer", &["--config", &tcfg]);
    wait_stored(&buck.http, &mut tailer, 1000);
    assert!(metric(&buck.http, CHACHA).unwrap() >= 1.0);
    assert!(
        tailer.terminate(std::time::Duration::from_secs(20)),
        "clean stop"
    );
}

/// A spool left by the tailer before frame streams (`fixtures/spool/v1`: version-1 events,
/// never sent) is delivered whole by today's tailer: every line once, with the ids the old
/// tailer gave them.
#[test]
fn a_spool_left_by_the_previous_version_is_delivered_after_an_upgrade() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/spool/v1");
    let dir = Dir::new("old-spool");
    let (buck, tcfg) = single_buck_setup(&dir, "");
    copy_tree(&fixture.join("spool"), &dir.join("spool"));
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::copy(fixture.join("state/tailer.id"), dir.join("state/tailer.id")).unwrap();
    let tailer_hex = std::fs::read_to_string(fixture.join("state/tailer.id")).unwrap();
    let tailer_hex = tailer_hex.trim();

    let mut tailer = Agent::spawn(&dir, "tailer", "tailer", &["--config", &tcfg]);
    let rows = wait_for("the old spool's 101 lines", PATIENCE, || {
        tailer.assert_running();
        let rows = sql(
            &buck.http,
            "fixture-crawl",
            "SELECT id, line, original_len FROM events",
        )
        .ok()?;
        (rows.len() >= 101).then_some(rows)
    });
    assert!(
        tailer.terminate(std::time::Duration::from_secs(20)),
        "clean stop"
    );

    // Where each line of the source starts: the ids' offsets.
    let source = std::fs::read(fixture.join("crawl.log")).unwrap();
    let mut lines = std::collections::BTreeMap::new();
    let mut at = 0usize;
    for l in source.split_inclusive(|&b| b == b'\n') {
        let text = &l[..l.len() - 1];
        lines.insert(at as u64, text.to_vec());
        at += l.len();
    }
    assert_eq!(lines.len(), 101);
    assert_eq!(rows.len(), 101, "every line once");
    let mut seen = std::collections::BTreeSet::new();
    for r in &rows {
        let id = r["id"].as_str().unwrap();
        let offset: u64 = id
            .strip_prefix(&format!("{tailer_hex}-0-"))
            .unwrap_or_else(|| panic!("{id} is not an id of the fixture's tailer and file"))
            .parse()
            .unwrap();
        assert!(seen.insert(offset), "{id} stored twice");
        let want = &lines[&offset];
        let line = r["line"].as_str().unwrap();
        if want.len() > 65_000 {
            assert_eq!(
                r["original_len"].as_i64(),
                Some(want.len() as i64),
                "{id}: cut, length kept"
            );
            assert!(
                want.starts_with(line.as_bytes()),
                "{id}: the cut line is the start of the line"
            );
        } else if let Ok(want) = std::str::from_utf8(want) {
            assert_eq!(line, want, "{id}");
        } else {
            assert_eq!(line, String::from_utf8_lossy(want), "{id}");
        }
    }
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
