//! The S3 server for tests: the one `scripts/test` started (SLUICE_TEST_S3_ENDPOINT), or
//! else one started here through `scripts/s3-test-server` under a machine-wide lock and
//! shared by every test process (SeaweedFS's fixed internal ports allow only one).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Endpoint, access key, secret key.
pub struct S3Endpoint {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
}

const SHARED_DIR: &str = "/tmp/sluice-s3-test-server";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/s3-test-server")
}

/// The S3 server to test against, started if needed.
pub fn s3_endpoint() -> &'static S3Endpoint {
    static ENDPOINT: OnceLock<S3Endpoint> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        if let Ok(endpoint) = std::env::var("SLUICE_TEST_S3_ENDPOINT") {
            return S3Endpoint {
                endpoint,
                access_key: var("SLUICE_TEST_S3_ACCESS_KEY", "testkey"),
                secret_key: var("SLUICE_TEST_S3_SECRET_KEY", "testsecret"),
            };
        }
        // The script serializes starts with a lock in SHARED_DIR; `start` on a running
        // server only prints its endpoint again.
        let out = Command::new(script())
            .arg("start")
            .arg(SHARED_DIR)
            .output()
            .expect("run scripts/s3-test-server (needs python3 and flock)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "scripts/s3-test-server start failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let get = |k: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")).map(str::to_string))
                .unwrap_or_else(|| panic!("scripts/s3-test-server printed no {k}:\n{stdout}"))
        };
        S3Endpoint {
            endpoint: get("SLUICE_TEST_S3_ENDPOINT"),
            access_key: get("SLUICE_TEST_S3_ACCESS_KEY"),
            secret_key: get("SLUICE_TEST_S3_SECRET_KEY"),
        }
    })
}

/// S3 settings for the test server.
pub fn s3_settings() -> crate::S3Settings {
    let e = s3_endpoint();
    crate::S3Settings {
        endpoint: Some(e.endpoint.clone()),
        region: "us-east-1".into(),
        path_style: true,
        access_key_id: Some(e.access_key.clone()),
        secret_access_key: Some(e.secret_key.clone()),
    }
}

/// A fresh bucket name for one test.
pub fn fresh_bucket() -> String {
    format!("porter-test-{:016x}", rand::random::<u64>())
}

/// An S3 store on a fresh bucket (created).
pub async fn fresh_s3_store(multipart_threshold_bytes: u64) -> crate::S3Store {
    let settings = tokio::task::spawn_blocking(s3_settings)
        .await
        .expect("s3 settings");
    let store = crate::S3Store::new(
        &fresh_bucket(),
        "archive",
        &settings,
        multipart_threshold_bytes,
        5 * 1024 * 1024,
    )
    .expect("s3 store");
    store.ensure_bucket().await.expect("create bucket");
    store
}
