//! Shared by the process tests: an in-process server with the broker, and Node
//! processes (the official npm socket.io-client, playwright-core) that report JSON lines.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// `web/`, where the Node scripts and their node_modules live.
pub fn web_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web")
}

/// Fails the test, naming the fix, when the npm packages are not installed.
pub fn require_node_modules() {
    let m = web_dir().join("node_modules/socket.io-client");
    assert!(
        m.is_dir(),
        "{} is missing: run scripts/install-web-deps (npm ci in web/, Debian chromium) before these tests",
        m.display()
    );
}

/// Fails the test, naming the fix, when Debian's chromium is not installed.
pub fn require_chromium() {
    require_node_modules();
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run scripts/install-web-deps (it installs Debian's chromium)"
    );
}

/// Serves `app` on 127.0.0.1, port 0, in the background.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A Node process whose stdout is JSON, one object a line.
pub struct Node {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    /// Every line seen so far, for failure messages.
    pub seen: Vec<Value>,
}

impl Node {
    pub fn spawn(name: &str, script: &str, args: &[&str]) -> Node {
        require_node_modules();
        let mut cmd = Command::new("node");
        cmd.arg(web_dir().join(script))
            .args(args)
            .current_dir(web_dir());
        Node::spawn_cmd(name, cmd)
    }

    /// Any process that reports JSON lines on stdout (the live-demo buck, too).
    pub fn spawn_cmd(name: &str, mut cmd: Command) -> Node {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {cmd:?} ({e}): for node, install Node.js 20 and run scripts/install-web-deps")
            });
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        let tag = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("[{tag}] {}", line.chars().take(300).collect::<String>()),
                }
            }
        });
        Node {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line for which `pred` holds, waiting at most `within`.
    pub fn wait_for(
        &mut self,
        within: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "{}: no {what} within {within:?}; it said: {}",
                    self.name,
                    self.seen
                        .iter()
                        .map(abbreviate)
                        .collect::<Vec<_>>()
                        .join("\n  ")
                ),
            }
        }
    }

    pub fn send(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
            let _ = s.flush();
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for the process to exit and returns its status code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{}: did not exit within {within:?}", self.name)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn abbreviate(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 300 {
        format!("{}...", &s[..300])
    } else {
        s
    }
}

/// The ids of a JSON array of strings.
pub fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
