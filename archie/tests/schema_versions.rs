//! Archie indexes what older porters archived: the committed version-1 object
//! (`fixtures/segments/v1/archive`) is fetched through `PorterSource`, indexed, and
//! answers term searches with exactly the lines a scan of that segment finds.

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use porter::PorterConfig;
use porter::test_support::test_buck::{TestBuck, write_cluster_file};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_archived_object_is_indexed_and_searched() {
    let d = tempfile::tempdir().unwrap();
    let v1 = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/segments/v1");
    let archive = d.path().join("archive/fixture");
    std::fs::create_dir_all(&archive).unwrap();
    for f in ["2018-11-26.sqlite.z", "2018-11-26.sqlite.z.json"] {
        std::fs::copy(v1.join("archive/fixture").join(f), archive.join(f)).unwrap();
    }
    // A buck that holds nothing: the archive alone answers.
    let buck = TestBuck::start("buck-a").await;
    write_cluster_file(&d.path().join("cluster.toml"), &[&buck]);
    let pc = PorterConfig::new(
        format!("file://{}/archive", d.path().display()),
        d.path().join("cluster.toml"),
        d.path().join("porter-work"),
    );
    let work = d.path().join("work");
    let srv = Server::start_with(config(&work), Arc::new(archie::PorterSource::new(pc))).await;
    let r = srv
        .request("fixture", "2018-11-26T00:00:00Z", "2018-11-27T00:00:00Z")
        .await;
    let id = r["id"].as_str().unwrap().to_owned();
    let done = srv.wait_done(&id, Duration::from_secs(60)).await;
    assert_eq!(done["state"], "ready", "{done}");
    assert_eq!(done["events_indexed"], 132);

    let conn = rusqlite::Connection::open(v1.join("2018-11-26.sqlite")).unwrap();
    let lines: Vec<String> = conn
        .prepare("SELECT line FROM events")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for term in ["robots.txt", "404", "www.netarkivet.dk"] {
        let want = lines
            .iter()
            .filter(|l| contracts::tokenizer::has_token(l, term))
            .count();
        let got = srv
            .search_all(&id, &format!("q={}&mode=term", enc(term)), 1000)
            .await;
        assert_eq!(got.len(), want, "{term}");
        assert!(want > 0, "{term}");
    }
    srv.stop().await;
}
