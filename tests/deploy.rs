//! Issue 15 item 4: what a sysadmin installs. The systemd units in `deploy/systemd` pass
//! `systemd-analyze verify` and rate "OK" in `systemd-analyze security`; the Ansible
//! playbook in `deploy/ansible` installs a two-buck cluster and a crawler host, and the
//! agents started exactly as the units start them answer SQL for every line.
//!
//! There is no systemd running here (no PID 1 to talk to), so the test starts each unit's
//! `ExecStart` itself, after systemd's own steps: `Environment=`, then `EnvironmentFile=`
//! in order (a leading `-` means optional), then `${VAR}` expansion. The playbook runs with
//! `ansible_connection=local` into one scratch root per host (`sluice_prefix`); the units'
//! absolute paths are mapped into that root the same way.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{Agent, Dir, PATIENCE, wait_for, write_log};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn units() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/systemd"))
        .expect("deploy/systemd")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .collect();
    v.sort();
    v
}

/// The directory holding this build's binaries (what `cargo build` left, as
/// `target/release` is for a real install).
fn binaries() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_sluice"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn the_systemd_units_verify_and_rate_ok_for_exposure() {
    let dir = Dir::new("units");
    let units = units();
    assert_eq!(units.len(), 4, "one unit per agent: {units:?}");
    for unit in units {
        let name = unit.file_name().unwrap().to_string_lossy().into_owned();
        // verify checks that ExecStart names an executable: point it at this build's.
        let text = std::fs::read_to_string(&unit)
            .unwrap()
            .replace("/usr/local/bin", &binaries().display().to_string());
        let copy = dir.join(&name);
        std::fs::write(&copy, text).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .expect("systemd-analyze (scripts/install-test-deps installs systemd)");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: verify failed: {said}");
        assert!(
            !said.contains(&name),
            "{name}: systemd-analyze verify warns: {said}"
        );
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(&copy)
            .output()
            .expect("systemd-analyze security");
        let report = String::from_utf8_lossy(&out.stdout);
        let level = report
            .lines()
            .find_map(|l| l.split_once(&format!("exposure level for {name}: ")))
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name}: no exposure level in {report}"));
        assert!(
            level <= 2.0,
            "{name}: exposure {level} above 2.0 (\"OK\" is below 4): {report}"
        );
    }
}

/// `ansible-playbook` from the virtualenv that scripts/install-test-deps makes.
fn ansible_playbook() -> PathBuf {
    let p = repo().join("target/test-deps/ansible/bin/ansible-playbook");
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-test-deps",
        p.display()
    );
    p
}

/// A port nobody listens on now. The cluster file must name each buck's ports before it
/// starts, so they cannot be chosen by binding port 0 in the buck itself; the kernel
/// picks them here instead of the test hard-coding any.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One installed host: its scratch root stands for `/`.
struct Host {
    root: PathBuf,
}

impl Host {
    /// A path of the unit (`/etc/sluice/buck.toml`) on this host.
    fn map(&self, path: &str) -> String {
        match path.strip_prefix('/') {
            Some(rel) if path.starts_with("/etc/sluice") || path.starts_with("/usr/local/bin") => {
                self.root.join(rel).display().to_string()
            }
            _ => path.to_owned(),
        }
    }

    /// The command systemd would run for `unit` on this host.
    fn exec_start(&self, unit: &str) -> Command {
        let text = std::fs::read_to_string(repo().join("deploy/systemd").join(unit)).unwrap();
        let mut env = BTreeMap::new();
        let mut exec = None;
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("Environment=") {
                for kv in v.split_whitespace() {
                    let (k, v) = kv.split_once('=').unwrap();
                    env.insert(k.to_owned(), v.to_owned());
                }
            } else if let Some(f) = line.strip_prefix("EnvironmentFile=") {
                let (optional, f) = match f.strip_prefix('-') {
                    Some(f) => (true, f),
                    None => (false, f),
                };
                match std::fs::read_to_string(self.map(f)) {
                    Ok(body) => {
                        for l in body.lines().map(str::trim) {
                            if let Some((k, v)) = l.split_once('=')
                                && !l.starts_with('#')
                            {
                                env.insert(k.to_owned(), v.to_owned());
                            }
                        }
                    }
                    Err(e) => assert!(optional, "{unit}: {f}: {e}"),
                }
            } else if let Some(cmd) = line.strip_prefix("ExecStart=") {
                exec = Some(cmd.to_owned());
            }
        }
        let exec = exec.unwrap_or_else(|| panic!("{unit} has no ExecStart"));
        let words: Vec<String> = exec
            .split_whitespace()
            .map(
                |w| match w.strip_prefix("${").and_then(|w| w.strip_suffix('}')) {
                    Some(var) => env
                        .get(var)
                        .unwrap_or_else(|| panic!("{unit}: ${{{var}}} is not set"))
                        .clone(),
                    None => self.map(w),
                },
            )
            .collect();
        let mut cmd = Command::new(&words[0]);
        cmd.args(&words[1..]);
        cmd
    }
}

fn sql_count_with(url: &str, token: &str, crawl: &str) -> Option<i64> {
    let r = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{url}/"))
        .query(&[("segment", crawl)])
        .bearer_auth(token)
        .body("SELECT count(DISTINCT url) AS n FROM crawled_url")
        .send()
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let v: serde_json::Value = r.json().ok()?;
    v[0]["n"].as_i64()
}

fn healthy(url: &str) -> bool {
    reqwest::blocking::get(format!("{url}/healthz")).is_ok_and(|r| r.status().is_success())
}

#[test]
fn the_playbook_installs_a_two_buck_cluster_whose_units_answer_sql_for_every_line() {
    let playbook = ansible_playbook();
    let dir = Dir::new("deploy");
    let host = |name: &str| Host {
        root: dir.join(name),
    };
    let (a_ingest, a_http, b_ingest, b_http) = (free_port(), free_port(), free_port(), free_port());
    let (porter_metrics, archie_http) = (free_port(), free_port());
    let inventory = dir.join("inventory.ini");
    std::fs::write(
        &inventory,
        format!(
            "[bucks]\n\
             buck-a sluice_prefix={a} sluice_address=127.0.0.1 sluice_listen=127.0.0.1 sluice_ingest_port={a_ingest} sluice_http_port={a_http}\n\
             buck-b sluice_prefix={b} sluice_address=127.0.0.1 sluice_listen=127.0.0.1 sluice_ingest_port={b_ingest} sluice_http_port={b_http}\n\
             [porters]\nbuck-a\n[archie]\nbuck-a\n\
             [tailers]\ncrawler-1 sluice_prefix={c}\n",
            a = host("buck-a").root.display(),
            b = host("buck-b").root.display(),
            c = host("crawler-1").root.display(),
        ),
    )
    .unwrap();
    let crawls = host("crawler-1").root.join("heritrix/jobs");
    let vars = serde_json::json!({
        "ansible_connection": "local",
        "ansible_python_interpreter": playbook.with_file_name("python"),
        "sluice_systemd": false,
        "sluice_binaries": binaries(),
        "sluice_credentials_dir": dir.join("credentials"),
        "sluice_archive": format!("file://{}", dir.join("archive").display()),
        "sluice_porter_metrics": format!("127.0.0.1:{porter_metrics}"),
        "sluice_archie_listen": format!("127.0.0.1:{archie_http}"),
        "sluice_sources": [{"path": format!("{}/{{crawl}}/logs/crawl.log", crawls.display()), "format": "crawl_log"}],
    });
    let vars_file = dir.join("vars.json");
    std::fs::write(&vars_file, vars.to_string()).unwrap();
    let run_playbook = || {
        let out = Command::new(&playbook)
            .arg("-i")
            .arg(&inventory)
            .arg("-e")
            .arg(format!("@{}", vars_file.display()))
            .arg(repo().join("deploy/ansible/site.yml"))
            .env("ANSIBLE_NOCOLOR", "1")
            .output()
            .expect("ansible-playbook");
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "the playbook failed: {said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        said
    };
    run_playbook();
    // A second run finds everything in place: no key remade, no config rewritten.
    let again = run_playbook();
    let recap: Vec<&str> = again
        .lines()
        .skip_while(|l| !l.starts_with("PLAY RECAP"))
        .filter(|l| l.contains("ok="))
        .collect();
    assert_eq!(recap.len(), 3, "{again}");
    assert!(
        recap.iter().all(|l| l.contains(" changed=0 ")),
        "a second run changed something: {again}"
    );

    let n = 3_000;
    write_log(&crawls.join("deploy-1/logs/crawl.log"), n);
    let token = std::fs::read_to_string(dir.join("credentials/api_token"))
        .unwrap()
        .trim()
        .to_owned();
    let mut agents = [
        Agent::spawn_command(
            &dir,
            "buck-a",
            host("buck-a").exec_start("sluice-buck.service"),
        ),
        Agent::spawn_command(
            &dir,
            "buck-b",
            host("buck-b").exec_start("sluice-buck.service"),
        ),
        Agent::spawn_command(
            &dir,
            "tailer",
            host("crawler-1").exec_start("sluice-tailer.service"),
        ),
        Agent::spawn_command(
            &dir,
            "porter",
            host("buck-a").exec_start("sluice-porter.service"),
        ),
        Agent::spawn_command(
            &dir,
            "archie",
            host("buck-a").exec_start("sluice-archie.service"),
        ),
    ];
    // Both bucks are the crawl's homes (two bucks, two replicas): each holds every line.
    for http in [a_http, b_http] {
        let url = format!("http://127.0.0.1:{http}");
        let got = wait_for(&format!("every line on {url}"), PATIENCE, || {
            for a in agents.iter_mut() {
                a.assert_running();
            }
            sql_count_with(&url, &token, "deploy-1").filter(|&c| c >= n as i64)
        });
        assert_eq!(got, n as i64, "{url}: lines lost or stored twice");
    }
    // Without the playbook's token the bucks answer nothing.
    assert_eq!(
        sql_count_with(&format!("http://127.0.0.1:{a_http}"), "wrong", "deploy-1"),
        None
    );
    for url in [
        format!("http://127.0.0.1:{porter_metrics}"),
        format!("http://127.0.0.1:{archie_http}"),
    ] {
        wait_for(&format!("{url}/healthz"), PATIENCE, || {
            for a in agents.iter_mut() {
                a.assert_running();
            }
            healthy(&url).then_some(())
        });
    }
}
