//! `sluice up`: the embedded default. One tailer, one buck and the web UI in one process,
//! on 127.0.0.1, with every file under one directory: keys, cluster file, spool,
//! tailer state and segments. The tailer talks to the buck over the real protocol on a
//! loopback port, so this is the production pipeline, only smaller.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use contracts::keys::KeyPair;
use tailer::config::{SourceConfig, SourceFormat, StartAt};
use tailer::{TailerConfig, TailerEvents};
use tokio_util::sync::CancellationToken;

use crate::serve::{self, HealthSource, MetricsSource};
use crate::space_wait::start_when_space;

/// What `sluice up` was asked to run.
#[derive(Debug, Clone)]
pub struct UpArgs {
    /// The directory holding everything.
    pub dir: PathBuf,
    /// Address of the HTTP port (web UI and APIs).
    pub http: String,
    /// The crawl id for paths without a `{crawl}` placeholder.
    pub crawl: Option<String>,
    /// Files or globs to follow; empty for the bundled sample crawl logs.
    pub paths: Vec<String>,
    /// Spool bucket interval, in seconds.
    pub bucket_interval_secs: u64,
    /// Grace after a day ends before its segment closes, in seconds.
    pub day_close_grace_secs: u64,
    /// How long the buck keeps an archived segment after its day ends, in seconds.
    pub retention_secs: u64,
    /// A TOML file of more `[[buck]]` tables (bucks running elsewhere) to add to the
    /// embedded cluster: with one, every crawl has two homes, this process's buck and it.
    pub cluster_extra: Option<PathBuf>,
    /// Where the porter archives closed segments: an `s3://`, `webhdfs://` or `file://`
    /// URL; `None` for `<dir>/archive`.
    pub archive: Option<String>,
    /// With an `s3://` archive: path-style addressing (`endpoint/bucket`).
    pub s3_path_style: bool,
    /// A closed segment is archived once its day ended this long ago, in seconds.
    pub archive_age_secs: u64,
    /// Seconds between the porter's archive runs.
    pub archive_interval_secs: u64,
    /// Path prefix every page and API is served under; empty for none.
    pub base_path: String,
    /// Bytes the buck keeps free on the directory's file system; the tailer, the porter
    /// and archie keep twice as much, so that they pause first and the buck can still
    /// store what is spooled.
    pub min_free_bytes: u64,
    /// Where the buck pushes per-crawl counters in Graphite's plaintext protocol.
    pub graphite: Option<buck::graphite::GraphiteConfig>,
}

/// What a running `sluice up` writes to `<dir>/up.json` once it is ready, so scripts and
/// `sluice sql` can find it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UpState {
    /// The HTTP address (web UI and APIs).
    pub http: SocketAddr,
    /// The buck's ingest address.
    pub ingest: SocketAddr,
    /// The process id.
    pub pid: u32,
    /// The path prefix pages and APIs are served under ("" for none).
    #[serde(default)]
    pub base_path: String,
}

const SAMPLE_CRAWL: &str = "sample";
const SAMPLE_LOGS: &[(&str, &str)] = &[
    (
        "crawl.log",
        include_str!("../../samples/heritrix/crawl.log"),
    ),
    (
        "crawl-h3.3.0.log",
        include_str!("../../samples/heritrix/crawl-h3.3.0.log"),
    ),
];

/// Reads `<dir>/up.json`.
pub fn read_state(dir: &Path) -> anyhow::Result<UpState> {
    let p = dir.join("up.json");
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "reading {}: is `sluice up --dir {}` running?",
            p.display(),
            dir.display()
        )
    })?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a sluice up state file", p.display()))
}

fn write_sample(dir: &Path) -> anyhow::Result<String> {
    let logs = dir
        .join("sample")
        .join("jobs")
        .join(SAMPLE_CRAWL)
        .join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    for (name, text) in SAMPLE_LOGS {
        let p = logs.join(name);
        if !p.exists() {
            std::fs::write(&p, text)
                .with_context(|| format!("writing sample log {}", p.display()))?;
        }
    }
    Ok(logs.join("*.log").display().to_string())
}

fn sources(args: &UpArgs) -> anyhow::Result<Vec<SourceConfig>> {
    let mut out = Vec::new();
    let mut paths = args.paths.clone();
    let mut crawl = args.crawl.clone();
    if paths.is_empty() {
        paths.push(write_sample(&args.dir)?);
        crawl.get_or_insert_with(|| SAMPLE_CRAWL.to_owned());
    }
    for p in paths {
        let abs = if Path::new(&p).is_absolute() {
            p.clone()
        } else {
            std::env::current_dir()
                .context("reading the current directory")?
                .join(&p)
                .display()
                .to_string()
        };
        let has_pattern = abs.contains("{crawl}");
        if !has_pattern && crawl.is_none() {
            bail!(
                "{p}: give the crawl with --crawl NAME, or put {{crawl}} in the path where the crawl id is (e.g. /heritrix/jobs/{{crawl}}/**/crawl.log)"
            );
        }
        out.push(SourceConfig {
            path: abs,
            format: SourceFormat::Auto,
            crawl: if has_pattern { None } else { crawl.clone() },
            app: None,
            exclude: Vec::new(),
            multiline: true,
            start_at: StartAt::Beginning,
        });
    }
    Ok(out)
}

/// What `sluice up` writes before any agent starts: the data directory, keys, tokens and
/// the cluster file.
///
/// Key files live in `dir/keys`: `tailer.key`, `buck.key`, `porter.token`, `api.token`.
struct Prepared {
    dir: PathBuf,
    tailer_key: KeyPair,
    porter_token: String,
    cluster_path: PathBuf,
    api_token: Option<String>,
}

fn prepare(
    args: &UpArgs,
    ingest_addr: SocketAddr,
    http_addr: SocketAddr,
) -> anyhow::Result<Prepared> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let keys = dir.join("keys");
    let tailer_key = KeyPair::load_or_create(&keys.join("tailer.key")).context("tailer key")?;
    // The porter's credential for the buck's segment API, made once and kept.
    let porter_token =
        edge::secret::load_or_create(&keys.join("porter.token")).context("porter token")?;
    let buck_key_path = keys.join("buck.key");
    let buck_key = KeyPair::load_or_create(&buck_key_path).context("buck key")?;

    // The cluster file is rewritten at each start: the ingest port is new each time, and
    // routing depends only on the buck's id, which stays "local".
    let cluster_path = dir.join("cluster.toml");
    let extra = match &args.cluster_extra {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading --cluster-extra {}", p.display()))?;
            toml::from_str::<contracts::ClusterFile>(&text)
                .with_context(|| format!("--cluster-extra {}", p.display()))?
                .bucks
        }
        None => Vec::new(),
    };
    let local = contracts::BuckEntry {
        id: "local".into(),
        ingest: ingest_addr.to_string(),
        http_url: format!("http://{http_addr}{}", args.base_path),
        public_key: Some(buck_key.public_text()),
        since: chrono::NaiveDate::from_ymd_opt(1970, 1, 1).context("the epoch")?,
    };
    let cluster = contracts::ClusterFile {
        replicas: if extra.is_empty() { 1 } else { 2 },
        bucks: std::iter::once(local).chain(extra).collect(),
    };
    let text = format!(
        "# written by `sluice up` at each start\n{}",
        cluster.to_toml()?
    );
    contracts::ClusterFile::parse(&text, &cluster_path)
        .context("the embedded cluster file (with --cluster-extra)")?;
    durable_file::replace(
        &cluster_path,
        text.as_bytes(),
        durable_file::Durability::Synced,
    )
    .with_context(|| format!("writing {}", cluster_path.display()))?;

    // Closed by default: off loopback, every read of data needs the API token, which is
    // made once, kept under DIR/keys and printed at each start.
    let api_token = if http_addr.ip().is_loopback() {
        None
    } else {
        let path = keys.join("api.token");
        let token = edge::secret::load_or_create(&path).context("API token")?;
        eprintln!(
            "sluice up: listening on {http_addr}, off loopback: the SQL API, live view and history need the token in {} (enter it in the token field of the SQL console or the live view, or send `Authorization: Bearer <token>`)",
            path.display()
        );
        Some(token)
    };
    Ok(Prepared {
        dir,
        tailer_key,
        porter_token,
        cluster_path,
        api_token,
    })
}

/// Runs the embedded pipeline until `shutdown` is cancelled. On a full or read-only disk
/// it waits for space before it starts.
pub async fn run(args: UpArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    buck::check_base_path(&args.base_path).map_err(|e| anyhow::anyhow!("--base-path {e}"))?;
    let ingest = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the buck's ingest port on 127.0.0.1")?;
    let ingest_addr = ingest.local_addr()?;
    let http = tokio::net::TcpListener::bind(&args.http)
        .await
        .with_context(|| {
            format!(
                "binding the web port {}: is another sluice up running? pick another with --http",
                args.http
            )
        })?;
    let http_addr = http.local_addr()?;
    let Some(Prepared {
        dir,
        tailer_key,
        porter_token,
        cluster_path,
        api_token,
    }) = start_when_space("sluice up", &args.dir, &shutdown, || async {
        prepare(&args, ingest_addr, http_addr)
    })
    .await?
    else {
        return Ok(());
    };

    let keys = dir.join("keys");
    let mut buck_config = buck::BuckConfig::new("local", dir.join("buck"));
    buck_config.cluster_file = Some(cluster_path.clone());
    buck_config.key_file = Some(keys.join("buck.key"));
    buck_config.allowed_tailers = vec![tailer_key.public_text()];
    buck_config.day_close_grace_secs = args.day_close_grace_secs;
    buck_config.retention_secs = args.retention_secs;
    // A short retention (a demo, a test) is checked often; a real one once a minute.
    buck_config.prune_check_interval_ms = if args.retention_secs < 600 {
        500
    } else {
        60_000
    };
    buck_config.min_free_bytes = args.min_free_bytes;
    buck_config.porter_token = Some(porter_token.clone());
    buck_config.api_token = api_token.clone();
    buck_config.graphite = args.graphite.clone();
    buck_config
        .validate(&dir.join("buck.toml"))
        .context("buck config")?;
    let buck = buck::start(buck_config, ingest, shutdown.clone())
        .await
        .context("starting the buck")?;

    let tailer_config = TailerConfig {
        spool_dir: dir.join("spool"),
        state_dir: dir.join("tailer"),
        bucket_interval_secs: args.bucket_interval_secs,
        cluster_file: Some(cluster_path.clone()),
        key_file: Some(keys.join("tailer.key")),
        nice: 0,
        min_free_bytes: args.min_free_bytes.saturating_mul(2),
        ..TailerConfig::new(sources(&args)?)
    };
    tailer_config
        .validate(&dir.join("tailer.toml"))
        .context("tailer config")?;
    let tailer_events = Arc::new(TailerEvents::default());
    let tailer_task = tokio::spawn(tailer::run(
        tailer_config,
        shutdown.clone(),
        tailer_events.clone(),
    ));

    let archive = match &args.archive {
        Some(a) => a.clone(),
        None => {
            let d = dir.join("archive");
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            format!("file://{}", d.display())
        }
    };
    let mut porter_config =
        porter::PorterConfig::new(archive, cluster_path.clone(), dir.join("porter"));
    porter_config.archive_age_secs = args.archive_age_secs;
    porter_config.s3.path_style = args.s3_path_style;
    porter_config.buck_token = Some(porter_token);
    porter_config.interval_secs = args.archive_interval_secs;
    // Archiving and history can wait; the buck's commits cannot: both keep the tailer's
    // headroom (twice the buck's), so they stop taking space before the buck must.
    porter_config.min_free_bytes = args.min_free_bytes.saturating_mul(2);
    let porter_events = Arc::new(porter::PorterEvents::default());
    // Archie reads history through the porter: the archive first, the buck for days not
    // yet archived.
    let archie = archie::start(
        archie::ArchieConfig {
            api_token: api_token.clone(),
            min_free_bytes: args.min_free_bytes.saturating_mul(2),
            ..archie::ArchieConfig::new(dir.join("archie"))
        },
        Arc::new(archie::PorterSource::new(porter_config.clone())),
        shutdown.clone(),
    )
    .await
    .context("starting archie")?;
    let archie_events = archie.events();
    let porter_task = tokio::spawn(porter::run(
        porter_config,
        shutdown.clone(),
        porter_events.clone(),
    ));

    let buck_events = buck.events();
    let live_events = buck.live().events();
    let health: Vec<HealthSource> = {
        let (tailer, buck) = (tailer_events.clone(), buck_events.clone());
        let (porter, archie) = (porter_events.clone(), archie_events.clone());
        vec![
            Arc::new(move || tailer.disk.reason().map(|r| format!("tailer: {r}"))),
            Arc::new(move || buck.disk.reason().map(|r| format!("buck: {r}"))),
            Arc::new(move || porter.disk.reason().map(|r| format!("porter: {r}"))),
            Arc::new(move || archie.disk.reason().map(|r| format!("archie: {r}"))),
        ]
    };
    let guard = buck.browser_guard();
    let http_events = Arc::new(edge::EdgeEvents::default());
    let http_counted = http_events.clone();
    let metrics: Vec<MetricsSource> = vec![
        Arc::new(move |out: &mut String| http_counted.render_prometheus(out)),
        Arc::new(move |out: &mut String| guard.render_prometheus("sluice_http", out)),
        Arc::new(move |out: &mut String| tailer_events.render_prometheus(out)),
        Arc::new(move |out: &mut String| buck_events.render_prometheus(out)),
        Arc::new(move |out: &mut String| live_events.render_prometheus(out)),
        Arc::new(move |out: &mut String| porter_events.render_prometheus(out)),
        Arc::new(move |out: &mut String| out.push_str(&archie_events.render_prometheus())),
    ];
    let router = serve::buck_site(&buck, archie.router(), metrics, health, &args.base_path);

    let state = UpState {
        http: http_addr,
        ingest: ingest_addr,
        pid: std::process::id(),
        base_path: args.base_path.clone(),
    };
    let state_path = dir.join("up.json");
    std::fs::write(&state_path, serde_json::to_string_pretty(&state)?)
        .with_context(|| format!("writing {}", state_path.display()))?;
    eprintln!(
        "sluice up: web UI and APIs at http://{http_addr}{}/ (data in {})",
        args.base_path,
        dir.display()
    );
    let base = format!("http://{http_addr}{}", args.base_path);
    if web::live_view_built() {
        eprintln!(
            "sluice up: pages: {base}/ui/live (live view), {base}/ui/sql (SQL console), {base}/ui/history, {base}/ui/crawls"
        );
    } else {
        tracing::warn!(
            "the live view is not built into this binary (no npm when it was compiled): {base}/ui/live says how to build it; \
             the SQL console, history and crawls pages work. Run scripts/install-web-deps and rebuild."
        );
    }
    eprintln!(
        "sluice up: try  sluice sql --dir {} {} 'SELECT status_code, count(*) FROM crawled_url GROUP BY status_code'",
        dir.display(),
        args.crawl.as_deref().unwrap_or(SAMPLE_CRAWL)
    );

    let served = serve::serve(
        http,
        router,
        &edge::EdgeConfig::default(),
        http_events,
        shutdown.clone(),
    )
    .await;
    shutdown.cancel();
    let tailer_result = tailer_task.await;
    let porter_result = porter_task.await;
    let buck_result = buck.join().await;
    archie.join().await;
    let _ = std::fs::remove_file(&state_path);
    served?;
    match tailer_result {
        Ok(r) => r.context("tailer")?,
        Err(e) => bail!("tailer task failed: {e}"),
    }
    buck_result.context("buck")?;
    match porter_result {
        Ok(r) => r.context("porter")?,
        Err(e) => bail!("porter task failed: {e}"),
    }
    Ok(())
}
