//! A cluster on loopback: 3 bucks and 2 tailers as separate processes. Each crawl's rows
//! land on its 2 home bucks and nowhere else; a home buck SIGKILLed while lines flow and
//! then restarted ends with every line exactly once, and both replicas answer the same.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use contracts::keys::KeyPair;
use contracts::{ClusterFile, CrawlId};
use serde_json::Value;

use crate::util::{Agent, BuckProc, Dir, PATIENCE, appender, sql, start_buck, wait_for};

fn write_cluster(path: &Path, bucks: &[BuckProc], keys: &BTreeMap<String, KeyPair>) {
    let mut t = String::from("replicas = 2\n");
    for b in bucks {
        t.push_str(&format!(
            "\n[[buck]]\nid = \"{}\"\ningest = \"{}\"\nhttp_url = \"{}\"\npublic_key = \"{}\"\nsince = \"2000-01-01\"\n",
            b.id,
            b.ingest,
            b.http,
            keys[&b.id].public_text()
        ));
    }
    // Written whole and renamed, so agents re-reading it never see half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, t).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn crawl_line(crawl: &str, tailer: usize, i: usize) -> String {
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let status = [200, 200, 404, 301, -5003][i % 5];
    format!(
        "{now} {status:>5} {:>10} http://host{}.example.com/{crawl}/t{tailer}/{i} L http://seed.example.com/ text/html #{:03} 20261121100000000+5 sha1:ABCDEF - -\n",
        100 + i,
        i % 7,
        i % 50
    )
}

fn count_on(http: &str, crawl: &str) -> Option<i64> {
    let rows = sql(
        http,
        crawl,
        "SELECT count(*) AS n, count(DISTINCT id) AS d FROM events",
    )
    .ok()?;
    let r = rows.first()?;
    let (n, d) = (r["n"].as_i64()?, r["d"].as_i64()?);
    assert_eq!(
        n, d,
        "{crawl} on {http}: {n} rows but {d} distinct ids: a duplicate was stored"
    );
    Some(n)
}

/// The porter token every buck of this test is configured with.
const PORTER_TOKEN: &str = "cluster-test-porter-token";

fn segments_of(http: &str) -> BTreeSet<String> {
    let v: Value = reqwest::blocking::Client::new()
        .get(format!("{http}/segments"))
        .bearer_auth(PORTER_TOKEN)
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["crawl"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn each_crawl_lives_on_its_two_homes_and_survives_a_killed_home() {
    let dir = Dir::new("cluster");
    let cluster_path = dir.join("cluster.toml");
    let ids = ["b0", "b1", "b2"];
    let mut keys = BTreeMap::new();
    for id in ids {
        keys.insert(id.to_owned(), KeyPair::generate());
        keys[id].save(&dir.join("keys"), id).unwrap();
    }
    let tailer_keys: Vec<KeyPair> = (0..2).map(|_| KeyPair::generate()).collect();
    for (i, k) in tailer_keys.iter().enumerate() {
        k.save(&dir.join("keys"), &format!("t{i}")).unwrap();
    }
    let allowed: Vec<String> = tailer_keys
        .iter()
        .map(|k| format!("{:?}", k.public_text()))
        .collect();
    // A placeholder cluster file; rewritten with the real ports once the bucks listen.
    std::fs::write(&cluster_path, "[[buck]]\nid = \"b0\"\ningest = \"127.0.0.1:1\"\nhttp_url = \"http://127.0.0.1:1\"\nsince = \"2000-01-01\"\n").unwrap();
    for id in ids {
        let cfg = format!(
            "id = \"{id}\"\ndata_dir = {:?}\ncluster_file = {:?}\nkey_file = {:?}\nallowed_tailers = [{}]\nporter_token = \"{PORTER_TOKEN}\"\n",
            dir.join(id).display().to_string(),
            cluster_path.display().to_string(),
            dir.join(&format!("keys/{id}.key")).display().to_string(),
            allowed.join(", ")
        );
        std::fs::write(dir.join(&format!("{id}.toml")), cfg).unwrap();
    }
    let mut bucks: Vec<BuckProc> = ids.iter().map(|id| start_buck(&dir, id, 0)).collect();
    write_cluster(&cluster_path, &bucks, &keys);

    let crawls: Vec<Vec<&str>> = vec![vec!["c0", "c1", "c2", "c3"], vec!["c2", "c3", "c4", "c5"]];
    let mut tailers = Vec::new();
    for t in 0..2 {
        let cfg = format!(
            "spool_dir = {:?}\nstate_dir = {:?}\ncluster_file = {:?}\nkey_file = {:?}\nbucket_interval_secs = 1\nrepair_delay_max_secs = 1\npoll_interval_ms = 20\ndiscovery_interval_ms = 100\nnice = 0\n\n[[source]]\npath = {:?}\nformat = \"crawl_log\"\n",
            dir.join(&format!("t{t}/spool")).display().to_string(),
            dir.join(&format!("t{t}/state")).display().to_string(),
            cluster_path.display().to_string(),
            dir.join(&format!("keys/t{t}.key")).display().to_string(),
            dir.join(&format!("t{t}/jobs/{{crawl}}/crawl.log"))
                .display()
                .to_string(),
        );
        let cfg_path = dir.join(&format!("t{t}.toml"));
        std::fs::write(&cfg_path, cfg).unwrap();
        let cfg_s = cfg_path.display().to_string();
        tailers.push(Agent::spawn(
            &dir,
            &format!("tailer{t}"),
            "tailer",
            &["--config", &cfg_s],
        ));
    }

    let cluster = ClusterFile::load(&cluster_path).unwrap();
    let today = Utc::now().date_naive();
    let homes = |crawl: &str| {
        cluster
            .home_bucks(&CrawlId::parse(crawl).unwrap(), today)
            .homes()
            .to_vec()
    };
    let victim = homes("c0")[0].clone();
    let victim_idx = ids.iter().position(|i| *i == victim).unwrap();

    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    let batches = 12;
    for batch in 0..batches {
        for (t, cs) in crawls.iter().enumerate() {
            for c in cs {
                let mut f = appender(&dir.join(&format!("t{t}/jobs/{c}/crawl.log")));
                for k in 0..20 {
                    f.write_all(crawl_line(c, t, batch * 20 + k).as_bytes())
                        .unwrap();
                }
                *expected.entry((*c).to_owned()).or_default() += 20;
            }
        }
        if batch == 3 {
            bucks[victim_idx].agent.kill();
        }
        if batch == 7 {
            bucks[victim_idx] = start_buck(&dir, &victim, 1);
            write_cluster(&cluster_path, &bucks, &keys);
        }
        // Crawlers write over time; this paces the writer, it does not wait for anything.
        std::thread::sleep(Duration::from_millis(150));
    }

    for (crawl, n) in &expected {
        for home in homes(crawl) {
            let b = bucks.iter().find(|b| b.id == home).unwrap();
            wait_for(
                &format!("{crawl} complete on its home {home}"),
                PATIENCE * 2,
                || {
                    for t in tailers.iter_mut() {
                        t.assert_running();
                    }
                    count_on(&b.http, crawl).filter(|got| got == n)
                },
            );
        }
    }
    for b in &bucks {
        let held = segments_of(&b.http);
        for crawl in expected.keys() {
            let is_home = homes(crawl).contains(&b.id);
            assert_eq!(
                held.contains(crawl),
                is_home,
                "{crawl} on {}: held={} but home={is_home}",
                b.id,
                held.contains(crawl)
            );
        }
    }
    let q = "SELECT status_code, count(*) AS n FROM crawled_url GROUP BY status_code ORDER BY status_code";
    for crawl in expected.keys() {
        let answers: Vec<_> = homes(crawl)
            .iter()
            .map(|h| sql(&bucks.iter().find(|b| &b.id == h).unwrap().http, crawl, q).unwrap())
            .collect();
        assert_eq!(
            answers[0], answers[1],
            "{crawl}: the two replicas answer differently"
        );
    }
}
