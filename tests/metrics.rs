//! r12.3: every binary serves `/metrics` in one well-formed exposition (one renderer,
//! `metric_text`): the `tailer` and `porter` daemons on their own `--metrics` listener,
//! the `buck` binary and `sluice up` beside their APIs, with latency histograms.

use std::collections::HashMap;

use serde_json::Value;

use crate::util::{Agent, Dir, PATIENCE, Up, sql_count, start_buck, wait_for, write_log};

/// Parses a Prometheus text exposition, failing on anything malformed: every sample
/// belongs to a family whose `# TYPE` came before it, no family is typed twice, every
/// value is a number, and a histogram's buckets are cumulative and end in `+Inf` =
/// `_count`. Returns the samples by their full name with labels.
fn parse_exposition(text: &str) -> HashMap<String, f64> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("a TYPE line names a kind");
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "{name} typed twice"
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let name = series.split('{').next().expect("a name");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "{line}: no # TYPE for {family} before it"
        );
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "{series} twice"
        );
    }
    for (family, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        let mut buckets: Vec<(f64, f64)> = samples
            .iter()
            .filter_map(|(k, v)| {
                let le = k.strip_prefix(&format!("{family}_bucket{{le=\""))?;
                let le = le.strip_suffix("\"}")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, *v))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{family} not cumulative"
        );
        let last = buckets.last().expect("a histogram has buckets");
        assert!(last.0.is_infinite());
        assert_eq!(
            Some(&last.1),
            samples.get(&format!("{family}_count")),
            "{family}"
        );
    }
    samples
}

fn scrape(base: &str) -> HashMap<String, f64> {
    let text = reqwest::blocking::get(format!("{base}/metrics"))
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.text())
        .expect("scraping /metrics");
    parse_exposition(&text)
}

fn health(base: &str) -> String {
    reqwest::blocking::get(format!("{base}/healthz"))
        .and_then(|r| r.text())
        .unwrap_or_default()
}

/// The address a `--ready-file` names under `key`.
fn ready_addr(agent: &mut Agent, ready: &std::path::Path, key: &str) -> String {
    wait_for("the metrics listener", PATIENCE, || {
        agent.assert_running();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(ready).ok()?).ok()?;
        Some(format!("http://{}", v[key].as_str()?))
    })
}

/// A cluster file with one buck nobody listens on: the agents start and count, and
/// deliver nothing.
fn lonely_cluster(dir: &Dir) -> std::path::PathBuf {
    let path = dir.join("cluster.toml");
    let key = contracts::keys::KeyPair::generate();
    std::fs::write(
        &path,
        format!(
            "replicas = 1\n[[buck]]\nid = \"b\"\ningest = \"127.0.0.1:9\"\nhttp_url = \"http://127.0.0.1:9\"\npublic_key = \"{}\"\nsince = \"1970-01-01\"\n",
            key.public_text()
        ),
    )
    .expect("writing the cluster file");
    path
}

#[test]
fn the_tailer_binary_serves_metrics_that_count_what_it_read() {
    let dir = Dir::new("metrics-tailer");
    let log = dir.join("crawl.log");
    write_log(&log, 300);
    let cluster = lonely_cluster(&dir);
    let config = dir.join("tailer.toml");
    std::fs::write(
        &config,
        format!(
            "spool_dir = {:?}\nstate_dir = {:?}\ncluster_file = {:?}\nnice = 0\n\n[[source]]\npath = {:?}\ncrawl = \"m\"\n",
            dir.join("spool").display().to_string(),
            dir.join("state").display().to_string(),
            cluster.display().to_string(),
            log.display().to_string(),
        ),
    )
    .expect("writing the tailer config");
    let ready = dir.join("tailer.ready");
    let (config_s, ready_s) = (config.display().to_string(), ready.display().to_string());
    let mut agent = Agent::spawn(
        &dir,
        "tailer",
        "tailer",
        &[
            "--config",
            &config_s,
            "--metrics",
            "127.0.0.1:0",
            "--ready-file",
            &ready_s,
        ],
    );
    let base = ready_addr(&mut agent, &ready, "metrics");
    wait_for("the tailer to count 300 lines", PATIENCE, || {
        agent.assert_running();
        let m = scrape(&base);
        (m.get("sluice_tailer_lines_read_total") == Some(&300.0)).then_some(())
    });
    let m = scrape(&base);
    assert!(m.contains_key("sluice_tailer_disk_full"));
    assert!(m.contains_key("sluice_http_connection_errors_total"));
    assert_eq!(health(&base), "ok\n");
    assert!(
        agent.terminate(std::time::Duration::from_secs(10)),
        "unclean stop"
    );
}

#[test]
fn the_porter_binary_serves_metrics_that_count_its_runs() {
    let dir = Dir::new("metrics-porter");
    let cluster = lonely_cluster(&dir);
    let config = dir.join("porter.toml");
    std::fs::create_dir_all(dir.join("archive")).expect("archive dir");
    std::fs::write(
        &config,
        format!(
            "archive = \"file://{}\"\ncluster_file = {:?}\nwork_dir = {:?}\ninterval_secs = 1\nbuck_timeout_secs = 1\n",
            dir.join("archive").display(),
            cluster.display().to_string(),
            dir.join("work").display().to_string(),
        ),
    )
    .expect("writing the porter config");
    let ready = dir.join("porter.ready");
    let (config_s, ready_s) = (config.display().to_string(), ready.display().to_string());
    let mut agent = Agent::spawn(
        &dir,
        "porter",
        "porter",
        &[
            "--config",
            &config_s,
            "run",
            "--metrics",
            "127.0.0.1:0",
            "--ready-file",
            &ready_s,
        ],
    );
    let base = ready_addr(&mut agent, &ready, "metrics");
    wait_for("porter to finish two runs", PATIENCE, || {
        agent.assert_running();
        let runs = scrape(&base).get("sluice_porter_runs_total").copied()?;
        (runs >= 2.0).then_some(())
    });
    assert_eq!(scrape(&base).get("sluice_porter_disk_full"), Some(&0.0));
    assert_eq!(health(&base), "ok\n");
    assert!(
        agent.terminate(std::time::Duration::from_secs(10)),
        "unclean stop"
    );
}

#[test]
fn the_buck_binary_serves_one_well_formed_exposition() {
    let dir = Dir::new("metrics-buck");
    std::fs::write(
        dir.join("b.toml"),
        format!(
            "id = \"b\"\ndata_dir = {:?}\n",
            dir.join("b").display().to_string()
        ),
    )
    .expect("writing the buck config");
    let buck = start_buck(&dir, "b", 0);
    let m = scrape(&buck.http);
    for family in [
        "sluice_buck_connections_total",
        "sluice_buck_commit_seconds_count",
        "sluice_buck_sql_query_seconds_count",
        "sluice_live_clients",
        "sluice_http_browser_refused_total",
    ] {
        assert!(m.contains_key(family), "no {family}");
    }
}

/// `sluice up`: the commit and SQL latency histograms count what happened.
#[test]
fn sluice_up_histograms_count_commits_and_queries() {
    let dir = Dir::new("metrics-up");
    let log = dir.join("crawl.log");
    write_log(&log, 200);
    let log_s = log.display().to_string();
    let up = Up::start(&dir, &["--crawl", "hist", &log_s]);
    wait_for("200 lines stored", PATIENCE, || {
        (sql_count(&up.url, "hist", "SELECT count(*) FROM crawled_url")? == 200).then_some(())
    });
    let before = scrape(&up.url)["sluice_buck_sql_query_seconds_count"];
    for _ in 0..3 {
        assert_eq!(
            sql_count(&up.url, "hist", "SELECT count(*) FROM crawled_url"),
            Some(200)
        );
    }
    let m = scrape(&up.url);
    assert_eq!(m["sluice_buck_sql_query_seconds_count"], before + 3.0);
    assert!(m["sluice_buck_commit_seconds_count"] >= 1.0);
    assert_eq!(
        m["sluice_buck_commit_seconds_count"], m["sluice_buck_commits_total"],
        "every commit is in the histogram"
    );
    assert!(m.contains_key("sluice_archie_requests_total"));
    assert!(m.contains_key("sluice_porter_runs_total"));
}
