//! A small WebHDFS server (namenode and datanode on two ports) that follows the WebHDFS
//! REST spec for the operations the porter uses: two-step CREATE (307 to a datanode URL,
//! then 201 Created), OPEN (307 to a datanode, then the bytes), GETFILESTATUS,
//! LISTSTATUS, RENAME, DELETE and MKDIRS, with the spec's JSON bodies and its
//! RemoteException errors and status codes. No real HDFS can run on this machine.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::json;

#[derive(Default)]
struct Fs {
    files: BTreeMap<String, Bytes>,
    dirs: BTreeSet<String>,
}

impl Fs {
    fn add_parents(&mut self, path: &str) {
        let mut p = path;
        while let Some((parent, _)) = p.rsplit_once('/') {
            self.dirs.insert(if parent.is_empty() {
                "/".into()
            } else {
                parent.to_string()
            });
            p = parent;
        }
    }
    fn is_dir(&self, path: &str) -> bool {
        path == "/" || self.dirs.contains(path)
    }
}

#[derive(Clone)]
struct Shared {
    fs: Arc<Mutex<Fs>>,
    datanode: String,
}

/// A running test WebHDFS server; stops when dropped.
pub struct WebHdfsServer {
    /// `host:port` of the namenode.
    pub authority: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for WebHdfsServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl WebHdfsServer {
    /// Starts a namenode and a datanode on port 0 of 127.0.0.1.
    pub async fn start() -> WebHdfsServer {
        let nn = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind namenode");
        let dn = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind datanode");
        let shared = Shared {
            fs: Arc::new(Mutex::new(Fs::default())),
            datanode: format!("http://{}", dn.local_addr().expect("addr")),
        };
        shared.fs.lock().expect("lock").dirs.insert("/".into());
        let namenode = Router::new()
            .route("/webhdfs/v1", any(namenode_root))
            .route("/webhdfs/v1/{*path}", any(namenode))
            .with_state(shared.clone());
        let datanode = Router::new()
            .route("/webhdfs/v1/{*path}", any(datanode))
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(shared);
        let authority = nn.local_addr().expect("addr").to_string();
        let tasks = vec![
            tokio::spawn(async move {
                let _ = axum::serve(nn, namenode).await;
            }),
            tokio::spawn(async move {
                let _ = axum::serve(dn, datanode).await;
            }),
        ];
        WebHdfsServer { authority, tasks }
    }
}

fn remote(status: StatusCode, exception: &str, java: &str, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"RemoteException": {"exception": exception, "javaClassName": java, "message": message}}).to_string(),
    )
        .into_response()
}

fn not_found(path: &str) -> Response {
    remote(
        StatusCode::NOT_FOUND,
        "FileNotFoundException",
        "java.io.FileNotFoundException",
        format!("File does not exist: {path}"),
    )
}

fn ok_json(v: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn status_json(suffix: &str, kind: &str, length: usize) -> serde_json::Value {
    json!({
        "accessTime": 0, "blockSize": 134217728, "group": "supergroup", "length": length,
        "modificationTime": 0, "owner": "sluice", "pathSuffix": suffix, "permission": "644",
        "replication": if kind == "FILE" { 3 } else { 0 }, "type": kind
    })
}

fn normalize(path: &str) -> String {
    let p = format!("/{}", path.trim_matches('/'));
    if p == "/" {
        p
    } else {
        p.trim_end_matches('/').to_string()
    }
}

async fn namenode_root(
    state: State<Shared>,
    method: Method,
    q: Query<HashMap<String, String>>,
) -> Response {
    handle_namenode(state, method, "/".into(), q).await
}

async fn namenode(
    state: State<Shared>,
    method: Method,
    Path(path): Path<String>,
    q: Query<HashMap<String, String>>,
) -> Response {
    handle_namenode(state, method, normalize(&path), q).await
}

async fn handle_namenode(
    State(s): State<Shared>,
    method: Method,
    path: String,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let op = q
        .get("op")
        .map(|o| o.to_ascii_uppercase())
        .unwrap_or_default();
    let query: String = q.iter().map(|(k, v)| format!("&{k}={v}")).collect();
    let redirect = |p: &str| {
        (
            StatusCode::TEMPORARY_REDIRECT,
            [
                (
                    header::LOCATION,
                    format!(
                        "{}/webhdfs/v1{p}?{}",
                        s.datanode,
                        query.trim_start_matches('&')
                    ),
                ),
                (header::CONTENT_LENGTH, "0".to_string()),
            ],
        )
            .into_response()
    };
    let mut fs = s.fs.lock().expect("lock");
    match (method, op.as_str()) {
        (Method::PUT, "CREATE") => {
            if fs.is_dir(&path) {
                return remote(
                    StatusCode::FORBIDDEN,
                    "FileAlreadyExistsException",
                    "org.apache.hadoop.fs.FileAlreadyExistsException",
                    format!("{path} already exists as a directory"),
                );
            }
            redirect(&path)
        }
        (Method::GET, "OPEN") => {
            if !fs.files.contains_key(&path) {
                return not_found(&path);
            }
            redirect(&path)
        }
        (Method::GET, "GETFILESTATUS") => match fs.files.get(&path) {
            Some(d) => ok_json(json!({"FileStatus": status_json("", "FILE", d.len())})),
            None if fs.is_dir(&path) => {
                ok_json(json!({"FileStatus": status_json("", "DIRECTORY", 0)}))
            }
            None => not_found(&path),
        },
        (Method::GET, "LISTSTATUS") => {
            if let Some(d) = fs.files.get(&path) {
                return ok_json(
                    json!({"FileStatuses": {"FileStatus": [status_json("", "FILE", d.len())]}}),
                );
            }
            if !fs.is_dir(&path) {
                return not_found(&path);
            }
            let prefix = if path == "/" {
                "/".to_string()
            } else {
                format!("{path}/")
            };
            let direct = |p: &String| {
                p.starts_with(&prefix) && !p[prefix.len()..].contains('/') && p.len() > prefix.len()
            };
            let mut entries: Vec<(String, serde_json::Value)> = fs
                .dirs
                .iter()
                .filter(|p| direct(p))
                .map(|p| {
                    (
                        p[prefix.len()..].to_string(),
                        status_json(&p[prefix.len()..], "DIRECTORY", 0),
                    )
                })
                .collect();
            entries.extend(fs.files.iter().filter(|(p, _)| direct(p)).map(|(p, d)| {
                (
                    p[prefix.len()..].to_string(),
                    status_json(&p[prefix.len()..], "FILE", d.len()),
                )
            }));
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let list: Vec<serde_json::Value> = entries.into_iter().map(|(_, v)| v).collect();
            ok_json(json!({"FileStatuses": {"FileStatus": list}}))
        }
        (Method::PUT, "MKDIRS") => {
            fs.add_parents(&format!("{path}/x"));
            ok_json(json!({"boolean": true}))
        }
        (Method::PUT, "RENAME") => {
            let Some(dest) = q.get("destination").map(|d| normalize(d)) else {
                return remote(
                    StatusCode::BAD_REQUEST,
                    "IllegalArgumentException",
                    "java.lang.IllegalArgumentException",
                    "destination is required".into(),
                );
            };
            let Some(data) = fs.files.get(&path).cloned() else {
                return ok_json(json!({"boolean": false}));
            };
            // HDFS renames into an existing directory, and never over an existing file.
            let dest = if fs.is_dir(&dest) {
                format!(
                    "{}/{}",
                    dest.trim_end_matches('/'),
                    path.rsplit('/').next().unwrap_or("")
                )
            } else {
                dest
            };
            let parent = dest
                .rsplit_once('/')
                .map(|(p, _)| if p.is_empty() { "/" } else { p })
                .unwrap_or("/")
                .to_string();
            if fs.files.contains_key(&dest) || fs.is_dir(&dest) || !fs.is_dir(&parent) {
                return ok_json(json!({"boolean": false}));
            }
            fs.files.remove(&path);
            fs.files.insert(dest, data);
            ok_json(json!({"boolean": true}))
        }
        (Method::DELETE, "DELETE") => {
            if fs.files.remove(&path).is_some() {
                return ok_json(json!({"boolean": true}));
            }
            if fs.is_dir(&path) && path != "/" {
                let prefix = format!("{path}/");
                let empty = !fs.files.keys().any(|k| k.starts_with(&prefix))
                    && !fs.dirs.iter().any(|k| k.starts_with(&prefix));
                if !empty && q.get("recursive").map(String::as_str) != Some("true") {
                    return remote(
                        StatusCode::FORBIDDEN,
                        "PathIsNotEmptyDirectoryException",
                        "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException",
                        format!("`{path} is non empty': Directory is not empty"),
                    );
                }
                fs.files.retain(|k, _| !k.starts_with(&prefix));
                fs.dirs.retain(|k| !k.starts_with(&prefix) && *k != path);
                return ok_json(json!({"boolean": true}));
            }
            ok_json(json!({"boolean": false}))
        }
        _ => remote(
            StatusCode::BAD_REQUEST,
            "IllegalArgumentException",
            "java.lang.IllegalArgumentException",
            format!("Invalid value for webhdfs parameter \"op\": {op}"),
        ),
    }
}

async fn datanode(
    State(s): State<Shared>,
    method: Method,
    Path(path): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    _headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = normalize(&path);
    let op = q
        .get("op")
        .map(|o| o.to_ascii_uppercase())
        .unwrap_or_default();
    let mut fs = s.fs.lock().expect("lock");
    match (method, op.as_str()) {
        (Method::PUT, "CREATE") => {
            let overwrite = q.get("overwrite").map(String::as_str) == Some("true");
            if fs.files.contains_key(&path) && !overwrite {
                return remote(
                    StatusCode::FORBIDDEN,
                    "FileAlreadyExistsException",
                    "org.apache.hadoop.fs.FileAlreadyExistsException",
                    format!("{path} for client 127.0.0.1 already exists"),
                );
            }
            fs.add_parents(&path);
            fs.files.insert(path.clone(), body);
            (
                StatusCode::CREATED,
                [(header::LOCATION, format!("hdfs://127.0.0.1{path}"))],
            )
                .into_response()
        }
        (Method::GET, "OPEN") => match fs.files.get(&path) {
            Some(d) => {
                let offset = q
                    .get("offset")
                    .and_then(|o| o.parse::<usize>().ok())
                    .unwrap_or(0)
                    .min(d.len());
                let end = q
                    .get("length")
                    .and_then(|l| l.parse::<usize>().ok())
                    .map(|l| (offset + l).min(d.len()))
                    .unwrap_or(d.len());
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/octet-stream")],
                    d.slice(offset..end),
                )
                    .into_response()
            }
            None => not_found(&path),
        },
        _ => remote(
            StatusCode::BAD_REQUEST,
            "IllegalArgumentException",
            "java.lang.IllegalArgumentException",
            format!("Invalid value for webhdfs parameter \"op\": {op}"),
        ),
    }
}
