//! The test harness: an in-process server, a capturing receiver, and the real binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use switchboard_core::Secrets;
use switchboard_engine::EngineConfig;
use switchboard_expr::Limits;
use switchboard_server::ServerConfig;
use tokio::sync::oneshot;

/// A Switchboard server running in this process.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    _data: tempfile::TempDir,
    _project: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server for one integration file's text.
    pub async fn start(yaml: &str) -> Self {
        Self::start_with(yaml, Secrets::default()).await
    }

    /// Starts a server for one integration file's text, with secrets.
    pub async fn start_with(yaml: &str, secrets: Secrets) -> Self {
        Self::start_configured(yaml, secrets, |_| {}).await
    }

    /// Starts a server for one integration file's text, with secrets and engine settings
    /// changed by `configure`.
    pub async fn start_configured(
        yaml: &str,
        secrets: Secrets,
        configure: impl FnOnce(&mut EngineConfig),
    ) -> Self {
        let project_dir = tempfile::tempdir().unwrap();
        let file = project_dir.path().join("integration.yaml");
        std::fs::write(&file, yaml).unwrap();
        let project = switchboard_project::load(&[file])
            .unwrap_or_else(|problems| panic!("invalid test project:\n{problems}"));
        let data = tempfile::tempdir().unwrap();
        let mut config = ServerConfig {
            data_dir: data.path().to_owned(),
            store: None,
            project: Arc::new(project),
            secrets,
            engine: EngineConfig {
                workers: 4,
                poll_interval: Duration::from_millis(200),
                alert_interval: Duration::from_millis(100),
                shutdown_grace: Duration::from_secs(5),
                expression_limits: Limits {
                    timeout: Duration::from_millis(300),
                    ..Limits::default()
                },
                ..EngineConfig::default()
            },
            max_body: 64 * 1024,
            public_url: None,
            watch: None,
        };
        configure(&mut config.engine);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            switchboard_server::run(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            base,
            client: reqwest::Client::new(),
            _data: data,
            _project: project_dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs JSON to a hook and returns the status and body.
    pub async fn post_hook(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// GETs a path and returns the body as text.
    pub async fn get_text(&self, path: &str) -> String {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// POSTs JSON to a hook, expects `202`, and returns the execution once it ended.
    pub async fn run_hook(&self, path: &str, body: &Value) -> Value {
        let (status, accepted) = self.post_hook(path, body).await;
        assert_eq!(status, 202, "{accepted}");
        self.finished_execution(accepted["execution_id"].as_str().unwrap())
            .await
    }

    /// Waits for an execution to end and returns it.
    pub async fn finished_execution(&self, id: &str) -> Value {
        wait_for_execution(&self.client, &self.base, id).await
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Polls an execution until it ends: `succeeded`, `failed` or `cancelled` (30 s at most).
pub async fn wait_for_execution(client: &reqwest::Client, base: &str, id: &str) -> Value {
    wait_for_state(client, base, id, |execution| {
        matches!(
            execution["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        )
    })
    .await
}

/// Polls an execution until `until` holds for it (30 s at most).
pub async fn wait_for_state(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    until: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..3000 {
        let response = client
            .get(format!("{base}/api/v1/executions/{id}"))
            .send()
            .await;
        if let Ok(response) = response
            && response.status() == 200
        {
            let execution: Value = response.json().await.unwrap();
            if until(&execution) {
                return execution;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("execution {id} never reached the state waited for");
}

/// Every execution of `flow` (up to 500), each in full, as it is now.
pub async fn executions_of(client: &reqwest::Client, base: &str, flow: &str) -> Vec<Value> {
    let get = |url: String| async move {
        let response = client.get(url).send().await.unwrap();
        response.json::<Value>().await.unwrap()
    };
    let page = get(format!("{base}/api/v1/executions?flow={flow}&limit=500")).await;
    let mut executions = Vec::new();
    for item in page["items"].as_array().unwrap() {
        let id = item["id"].as_str().unwrap();
        executions.push(get(format!("{base}/api/v1/executions/{id}")).await);
    }
    executions
}

/// Fires the schedule `<integration>/<flow>` by hand; returns its execution once it
/// succeeded.
pub async fn run_schedule(client: &reqwest::Client, base: &str, schedule: &str) -> Value {
    let response = client
        .post(format!("{base}/api/v1/schedules/{schedule}/run"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let execution = wait_for_execution(client, base, body["execution_id"].as_str().unwrap()).await;
    assert_eq!(execution["status"], "succeeded", "{execution:#}");
    execution
}

/// Polls until `path` exists, for at most `patience`.
pub async fn wait_for_file(path: &Path, patience: Duration) {
    let deadline = std::time::Instant::now() + patience;
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The execution id of a hook's `202` answer.
pub async fn execution_id(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    body["execution_id"].as_str().unwrap().to_owned()
}

/// A request the receiver captured.
#[derive(Debug, Clone)]
pub struct Captured {
    pub path: String,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

/// A real HTTP server that records what it receives and answers with a set status and
/// headers, after a set delay.
pub struct Receiver {
    pub base: String,
    pub captured: Arc<Mutex<Vec<Captured>>>,
    pub status: Arc<Mutex<u16>>,
    pub delay: Arc<Mutex<Duration>>,
    pub headers: Arc<Mutex<Vec<(&'static str, String)>>>,
}

impl Receiver {
    pub async fn start() -> Self {
        use axum::extract::State;
        type Shared = (
            Arc<Mutex<Vec<Captured>>>,
            Arc<Mutex<u16>>,
            Arc<Mutex<Duration>>,
            Arc<Mutex<Vec<(&'static str, String)>>>,
        );
        async fn capture(
            State((captured, status, delay, headers_out)): State<Shared>,
            uri: axum::http::Uri,
            headers: axum::http::HeaderMap,
            body: axum::body::Bytes,
        ) -> axum::response::Response {
            let raw = body.to_vec();
            let body = serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
            captured.lock().unwrap().push(Captured {
                path: uri.path().to_owned(),
                headers,
                body,
                raw,
            });
            let delay = *delay.lock().unwrap();
            tokio::time::sleep(delay).await;
            let status = *status.lock().unwrap();
            let mut response = axum::response::IntoResponse::into_response((
                axum::http::StatusCode::from_u16(status).unwrap(),
                axum::Json(serde_json::json!({"received": true})),
            ));
            for (name, value) in headers_out.lock().unwrap().iter() {
                response.headers_mut().insert(*name, value.parse().unwrap());
            }
            response
        }
        let captured = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(Mutex::new(200));
        let delay = Arc::new(Mutex::new(Duration::ZERO));
        let headers = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new().fallback(capture).with_state((
            Arc::clone(&captured),
            Arc::clone(&status),
            Arc::clone(&delay),
            Arc::clone(&headers),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base,
            captured,
            status,
            delay,
            headers,
        }
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.captured.lock().unwrap().clone()
    }
}

/// The `switchboard` binary built with these tests.
pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
}

/// The repository's `examples` folder.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// A `switchboard serve` process.
pub struct ServeProcess {
    pub child: Child,
    pub base: String,
}

impl ServeProcess {
    /// Starts `switchboard serve` on a free port and waits until it listens.
    pub fn start(project: &Path, data: &Path, extra: &[&str]) -> Self {
        let mut command = binary();
        command.env("RUST_LOG", "warn").stderr(Stdio::null());
        Self::start_command(command, project, data, extra)
    }

    /// Starts `switchboard serve` from a prepared command (environment, stderr), and
    /// returns it with every line it prints to stdout after the first.
    pub fn start_command(
        mut command: Command,
        project: &Path,
        data: &Path,
        extra: &[&str],
    ) -> Self {
        command.arg("serve");
        if !extra.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = command
            .arg("--data")
            .arg(data)
            .args(extra)
            .arg(project)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = lines.next().expect("serve printed nothing").unwrap();
        let address: SocketAddr = line.rsplit("http://").next().unwrap().parse().unwrap();
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            base: format!("http://{address}"),
        }
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(mut self) -> i32 {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap().code().unwrap_or(-1)
    }

    /// Kills the process with SIGKILL.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServeProcess {
    /// A test that fails leaves no process behind (one that ended already is not
    /// killed again).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The path of an external tool the tests use. Missing, it skips the test with a printed
/// reason, except in CI (`CI` set), where `.ci/run` installs it and its absence fails.
pub fn require_tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "`{name}` is not installed; .ci/run installs it ({package})"
        );
        eprintln!("skipped: `{name}` is not installed ({package}); .ci/run installs it");
    }
    found
}

/// Whether the reference library accepts the request with `secret`; `None` when the
/// library is not installed (outside CI).
pub fn reference_accepts(secret: &str, request: &Captured) -> Option<bool> {
    let python = require_tool(
        "python",
        "the venv .ci/run makes, with PyPI standardwebhooks",
    )?;
    let header = |name: &str| {
        request.headers[name]
            .to_str()
            .unwrap_or_default()
            .to_owned()
    };
    let script = "import sys\n\
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError\n\
        headers = {'webhook-id': sys.argv[2], 'webhook-timestamp': sys.argv[3], 'webhook-signature': sys.argv[4]}\n\
        try:\n    Webhook(sys.argv[1]).verify(sys.stdin.read(), headers)\n    print('valid')\n\
        except WebhookVerificationError as error:\n    print('invalid', error)";
    let mut child = Command::new(python)
        .args([
            "-c",
            script,
            secret,
            &header("webhook-id"),
            &header("webhook-timestamp"),
            &header("webhook-signature"),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&request.raw).unwrap();
    let output = child.wait_with_output().unwrap();
    if !output.status.success() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the standardwebhooks library is missing: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!("skipped: PyPI standardwebhooks is not installed; .ci/run installs it");
        return None;
    }
    Some(String::from_utf8_lossy(&output.stdout).starts_with("valid"))
}

/// The JSON answer of a GET to `url`.
pub async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// The JSON answer of a POST of `body` to `url`.
pub async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> Value {
    client
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls `check` until it finds something (20 s at most).
pub async fn wait_until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The message's delivery status, read from a running process.
pub async fn delivery_status(
    client: &reqwest::Client,
    base: &str,
    message: &str,
) -> Option<String> {
    let response = client
        .get(format!("{base}/api/v1/messages/{message}"))
        .send()
        .await
        .ok()?;
    let message: Value = response.json().await.ok()?;
    message["deliveries"][0]["status"]
        .as_str()
        .map(str::to_owned)
}
