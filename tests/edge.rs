//! The HTTP edge of `sluice up` under abuse from a client on the same network: SQL that
//! would exhaust memory, and more queries at once than a buck should run.

use std::io::Write;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::util::{Dir, PATIENCE, Up, appender, run_browser_script, sql_count, wait_for};

/// Peak resident memory of a process, in bytes (`VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let kb = l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim();
            kb.parse::<u64>().ok()
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn post_sql(url: &str, crawl: &str, sql: &str) -> (u16, String) {
    try_post_sql(url, crawl, sql).expect("POST SQL")
}

/// The status and body of a SQL request, or the error of a connection the server closed
/// (past its connection caps).
fn try_post_sql(url: &str, crawl: &str, sql: &str) -> Result<(u16, String), String> {
    let r = reqwest::blocking::Client::new()
        .post(format!("{url}/"))
        .query(&[("segment", crawl)])
        .body(sql.to_owned())
        .send()
        .map_err(|e| e.to_string())?;
    Ok((r.status().as_u16(), r.text().unwrap_or_default()))
}

fn crawl_line(i: usize) -> String {
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    format!(
        "{now}   200 {:>10} http://www.example.com/edge/{i} L http://www.example.com/ text/html #001 - sha1:X - -\n",
        1000 + i
    )
}

/// r11.4: six 64 MiB blobs in one row, and 2,000 columns, each get a clear 4xx, and the
/// process never grows past 200 MiB doing so.
#[test]
fn sql_memory_bombs_get_a_clear_4xx_and_the_process_stays_small() {
    let dir = Dir::new("edge-bomb");
    let log = dir.join("crawl.log");
    appender(&log)
        .write_all(crawl_line(0).as_bytes())
        .expect("writing a log");
    let log_s = log.display().to_string();
    let mut up = Up::start(&dir, &["--crawl", "bomb", &log_s]);
    wait_for("the line stored", PATIENCE, || {
        up.agent.assert_running();
        sql_count(&up.url, "bomb", "SELECT count(*) FROM events").filter(|&n| n == 1)
    });
    let cols: Vec<String> = (0..6)
        .map(|i| format!("zeroblob(67108864) AS c{i}"))
        .collect();
    let (status, body) = post_sql(&up.url, "bomb", &format!("SELECT {}", cols.join(", ")));
    assert!((400..500).contains(&status), "{status}: {body}");
    assert!(body.contains("too big"), "{body}");
    let cols: Vec<String> = (0..2000).map(|i| format!("{i} AS c{i}")).collect();
    let (status, body) = post_sql(&up.url, "bomb", &format!("SELECT {}", cols.join(", ")));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("too many columns"), "{body}");
    // Within the value limit, a row bigger than the whole reply.
    let cols: Vec<String> = (0..30)
        .map(|i| format!("zeroblob(4000000) AS c{i}"))
        .collect();
    let (status, body) = post_sql(&up.url, "bomb", &format!("SELECT {}", cols.join(", ")));
    assert_eq!(status, 413, "{body}");
    up.agent.assert_running();
    let peak = peak_rss(up.agent.pid());
    assert!(peak < 200 << 20, "sluice up peaked at {} MiB", peak >> 20);
    eprintln!("sql bombs: peak RSS {} MiB", peak >> 20);
}

/// r11.5: 200 queries at once that would each run until the time limit: the buck runs
/// `sql_max_concurrent` of them and refuses the rest at once (503 with Retry-After, or the
/// connection closed past `max_connections_per_address`), while
/// `/healthz` answers within 100 ms and new lines keep being stored.
#[test]
fn two_hundred_slow_queries_leave_health_fast_and_ingest_going() {
    let dir = Dir::new("edge-flood");
    let log = dir.join("crawl.log");
    let mut out = appender(&log);
    out.write_all(crawl_line(0).as_bytes())
        .expect("writing a log");
    let log_s = log.display().to_string();
    let mut up = Up::start(&dir, &["--crawl", "flood", &log_s]);
    wait_for("the first line stored", PATIENCE, || {
        up.agent.assert_running();
        sql_count(&up.url, "flood", "SELECT count(*) FROM events").filter(|&n| n == 1)
    });
    let slow =
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r";
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    for _ in 0..200 {
        let (url, tx) = (up.url.clone(), done_tx.clone());
        std::thread::spawn(move || {
            // 0: the connection was closed at once (max_connections_per_address).
            let _ = tx.send(try_post_sql(&url, "flood", slow).map_or(0, |r| r.0));
        });
    }
    drop(done_tx);
    // The excess is refused at once: every answer but the running ones comes back now.
    let mut statuses = Vec::new();
    while statuses.len() < 190 {
        let s = done_rx
            .recv_timeout(PATIENCE)
            .expect("the excess queries were not refused quickly");
        statuses.push(s);
    }
    // While the admitted ones run (until sql_timeout_ms): health stays quick and new
    // lines arrive.
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    let mut checks = 0;
    let mut written = 1;
    while started.elapsed() < Duration::from_secs(2) {
        let t = Instant::now();
        let r = reqwest::blocking::get(format!("{}/healthz", up.url)).expect("/healthz");
        assert!(r.status().is_success());
        worst = worst.max(t.elapsed());
        checks += 1;
        out.write_all(crawl_line(written).as_bytes())
            .expect("writing a log");
        written += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let inserted = || -> f64 {
        let page = reqwest::blocking::get(format!("{}/metrics", up.url))
            .and_then(|r| r.text())
            .unwrap_or_default();
        page.lines()
            .find_map(|l| l.strip_prefix("sluice_buck_inserted_total ")?.parse().ok())
            .unwrap_or(0.0)
    };
    wait_for("the lines written meanwhile stored", PATIENCE, || {
        (inserted() >= written as f64).then_some(())
    });
    statuses.extend(done_rx.iter());
    let refused = statuses.iter().filter(|&&s| s == 503 || s == 0).count();
    eprintln!(
        "200 slow queries: {refused} refused (503 or closed at the per-address cap), healthz worst {worst:?} over {checks} checks, {written} lines stored meanwhile"
    );
    assert!(checks > 10);
    assert!(
        worst < Duration::from_millis(100),
        "/healthz took {worst:?} with slow queries running"
    );
    assert!(
        refused >= 190,
        "only {refused} of 200 refused: {statuses:?}"
    );
    up.agent.assert_running();
}

fn status_of(req: reqwest::blocking::RequestBuilder) -> u16 {
    req.send().map(|r| r.status().as_u16()).unwrap_or(0)
}

/// r11.10: a page elsewhere cannot use `sluice up`: a rebinding `Host` is refused on every
/// route (SQL, segments, socket.io, pages), so is a foreign `Origin` (a cross-site fetch
/// or socket.io handshake); pages carry a Content-Security-Policy, nosniff and no
/// framing; and the SQL console opened from a link with SQL in it runs nothing until Run
/// is clicked (in Chromium).
#[test]
fn foreign_pages_and_rebinding_hosts_are_refused_and_the_console_waits_for_a_click() {
    let dir = Dir::new("edge-browser");
    let log = dir.join("crawl.log");
    appender(&log)
        .write_all(crawl_line(0).as_bytes())
        .expect("writing a log");
    let log_s = log.display().to_string();
    let mut up = Up::start(&dir, &["--crawl", "web", &log_s]);
    wait_for("the line stored", PATIENCE, || {
        up.agent.assert_running();
        sql_count(&up.url, "web", "SELECT count(*) FROM events").filter(|&n| n == 1)
    });
    let port = up.url.rsplit(':').next().expect("port").to_owned();
    let http = reqwest::blocking::Client::new();
    let evil_host = format!("evil.example:{port}");
    for (method, path) in [
        ("POST", "/?segment=web"),
        ("POST", "/sql?crawl=web"),
        ("GET", "/segments"),
        ("GET", "/socket.io/?EIO=4&transport=polling"),
        ("GET", "/ui/live"),
        ("GET", "/api/bucks"),
    ] {
        let url = format!("{}{path}", up.url);
        let req = if method == "POST" {
            http.post(&url).body("SELECT 1")
        } else {
            http.get(&url)
        };
        assert_eq!(
            status_of(req.header("host", &evil_host)),
            403,
            "{method} {path} with a rebinding Host"
        );
    }
    let foreign = "http://evil.example";
    assert_eq!(
        status_of(
            http.post(format!("{}/?segment=web", up.url))
                .header("origin", foreign)
                .body("SELECT 1")
        ),
        403
    );
    assert_eq!(
        status_of(
            http.get(format!("{}/socket.io/?EIO=4&transport=polling", up.url))
                .header("origin", foreign)
        ),
        403
    );
    // Its own origin is fine, and gets no CORS grant it does not need.
    let own = http
        .post(format!("{}/?segment=web", up.url))
        .header("origin", &up.url)
        .body("SELECT 1 AS one")
        .send()
        .expect("same-origin query");
    assert_eq!(own.status(), 200);
    for page in ["/ui/live", "/ui/sql", "/ui/history"] {
        let r = http.get(format!("{}{page}", up.url)).send().expect("page");
        let h = r.headers();
        let csp = h
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{page}: {csp:?}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
    }
    assert!(
        crate::util::metrics_line(&up.url, "sluice_http_browser_refused_total 8"),
        "refusals not counted"
    );

    let last = run_browser_script("console_page.mjs", &[&up.url, "web"]).last;
    assert_eq!(last["filled"], "SELECT count(*) AS n FROM events");
    assert_eq!(
        last["afterLoad"], last["before"],
        "the console ran SQL from its URL: {last}"
    );
    assert_eq!(
        last["after"].as_f64(),
        last["before"].as_f64().map(|b| b + 1.0),
        "{last}"
    );
    assert_eq!(last["violations"], serde_json::json!([]), "{last}");
    up.agent.assert_running();
}

/// r11.10: closed by default. A buck asked to listen off loopback without an API token
/// refuses to start (before it opens the port) and says how to make one.
#[test]
fn a_buck_off_loopback_without_a_token_refuses_to_start() {
    let dir = Dir::new("edge-open");
    let cfg = dir.join("b.toml");
    std::fs::write(
        &cfg,
        format!(
            "id = \"b\"\ndata_dir = {:?}\n",
            dir.join("b").display().to_string()
        ),
    )
    .expect("writing a config");
    assert_refuses_without_a_token(
        std::process::Command::new(env!("CARGO_BIN_EXE_buck"))
            .args(["--config", &cfg.display().to_string()])
            .args(["--ingest", "127.0.0.1:0", "--http", "0.0.0.0:0"]),
    );
}

/// Runs an agent asked to listen off loopback without `api_token`: it must exit with an
/// error that names `api_token` and how to make one.
fn assert_refuses_without_a_token(agent: &mut std::process::Command) {
    let out = agent.output().expect("running the agent");
    assert!(!out.status.success(), "it started without a token");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("api_token") && err.contains("sluice keygen --token"),
        "{err}"
    );
}

/// r11.11: archie off loopback without `api_token` refuses to start, saying what to set.
#[test]
fn archie_off_loopback_without_a_token_refuses_to_start() {
    let dir = Dir::new("edge-archie-open");
    let cfg = dir.join("archie.toml");
    std::fs::write(
        &cfg,
        format!("work_dir = {:?}\n", dir.join("a").display().to_string()),
    )
    .expect("writing a config");
    let porter = dir.join("porter.toml");
    std::fs::write(
        &porter,
        format!(
            "archive = \"file://{}\"\ncluster_file = {:?}\nwork_dir = {:?}\n",
            dir.join("archive").display(),
            dir.join("cluster.toml").display().to_string(),
            dir.join("p").display().to_string()
        ),
    )
    .expect("writing a porter config");
    assert_refuses_without_a_token(
        std::process::Command::new(env!("CARGO_BIN_EXE_archie"))
            .args(["--config", &cfg.display().to_string()])
            .args(["--porter-config", &porter.display().to_string()])
            .args(["--http", "0.0.0.0:0"]),
    );
}

/// r11.8: a slowloris against the HTTP port (from 127.0.0.2, a byte of request head at a
/// time on 80 sockets) holds at most `max_connections_per_address` (64) of them, each for
/// at most `header_read_timeout_ms` (10 s), while `/healthz` answers and lines keep
/// being stored for everyone else.
#[test]
fn an_http_slowloris_holds_few_sockets_for_a_bounded_time() {
    use std::io::Read;
    let dir = Dir::new("edge-loris");
    let log = dir.join("crawl.log");
    let mut out = appender(&log);
    out.write_all(crawl_line(0).as_bytes())
        .expect("writing a log");
    let log_s = log.display().to_string();
    let mut up = Up::start(&dir, &["--crawl", "loris", &log_s]);
    let addr: std::net::SocketAddr = up.url.trim_start_matches("http://").parse().expect("addr");
    let started = Instant::now();
    let socks: Vec<_> = (0..80)
        .map(|_| {
            let s = socket2_connect_from("127.0.0.2", addr);
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            s
        })
        .collect();
    let handles: Vec<_> = socks
        .into_iter()
        .map(|mut s| {
            std::thread::spawn(move || {
                let head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
                let mut i = 0;
                let mut buf = [0u8; 256];
                loop {
                    let b = head.get(i).copied().unwrap_or(b'a');
                    i += 1;
                    if s.write_all(&[b]).is_err() {
                        return started.elapsed();
                    }
                    match s.read(&mut buf) {
                        Ok(0) => return started.elapsed(),
                        Ok(_) => {}
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => return started.elapsed(),
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        })
        .collect();
    // Meanwhile, from 127.0.0.1: health answers and new lines are stored.
    for i in 1..=5 {
        let r = reqwest::blocking::get(format!("{}/healthz", up.url)).expect("/healthz");
        assert!(r.status().is_success());
        out.write_all(crawl_line(i).as_bytes())
            .expect("writing a log");
    }
    wait_for("lines stored during the slowloris", PATIENCE, || {
        up.agent.assert_running();
        sql_count(&up.url, "loris", "SELECT count(*) FROM events").filter(|&n| n == 6)
    });
    let mut closed: Vec<Duration> = handles
        .into_iter()
        .map(|h| h.join().expect("socket thread"))
        .collect();
    closed.sort();
    eprintln!(
        "http slowloris: first closed {:?}, 16th {:?}, last {:?}",
        closed[0], closed[15], closed[79]
    );
    assert!(
        closed[15] < Duration::from_secs(3),
        "per-address cap not applied: {closed:?}"
    );
    assert!(
        closed[79] < Duration::from_secs(20),
        "a socket held for {:?}",
        closed[79]
    );
}

/// A TCP connection to `to` from the local address `from` (a second loopback address).
#[allow(unsafe_code)]
fn socket2_connect_from(from: &str, to: std::net::SocketAddr) -> std::net::TcpStream {
    // std cannot bind before connect: a raw socket through libc.
    // SAFETY: plain socket calls on a descriptor this function owns; the address structs
    // live across the calls.
    unsafe {
        use std::os::fd::FromRawFd;
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket");
        let mut local: libc::sockaddr_in = std::mem::zeroed();
        local.sin_family = libc::AF_INET as libc::sa_family_t;
        local.sin_addr.s_addr =
            u32::from_ne_bytes(from.parse::<std::net::Ipv4Addr>().unwrap().octets());
        assert_eq!(
            libc::bind(
                fd,
                &local as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32
            ),
            0,
            "bind {from}"
        );
        let std::net::SocketAddr::V4(v4) = to else {
            panic!("IPv4 only")
        };
        let mut remote: libc::sockaddr_in = std::mem::zeroed();
        remote.sin_family = libc::AF_INET as libc::sa_family_t;
        remote.sin_port = v4.port().to_be();
        remote.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
        assert_eq!(
            libc::connect(
                fd,
                &remote as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32
            ),
            0,
            "connect"
        );
        std::net::TcpStream::from_raw_fd(fd)
    }
}
