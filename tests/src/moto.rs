//! `moto_server`: finding the one the test run provides, or starting one.
//!
//! `bash .ci/test.sh` starts moto_server on a loopback port and exports `MOTO_ENDPOINT`
//! (and `MOTO_SERVER_BIN`). Without `MOTO_ENDPOINT` a test process starts its own, from
//! `MOTO_SERVER_BIN` or `<workspace>/.venv/bin/moto_server`; with neither, the tests fail
//! with a message saying how to get one (they never skip silently).
//!
//! A started server runs under a small `sh` watchdog that stops it when its stdin closes,
//! so it never outlives the test process, even one that is killed.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a starting moto_server may take to accept connections.
const STARTUP_LIMIT: Duration = Duration::from_secs(60);

/// The workspace root (the parent of this package).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The moto_server executable: `MOTO_SERVER_BIN`, else `.venv/bin/moto_server`.
pub fn server_bin() -> PathBuf {
    let candidate = std::env::var_os("MOTO_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/moto_server"));
    assert!(
        candidate.is_file(),
        "moto_server not found at {} (MOTO_SERVER_BIN / .venv): run `bash .ci/test.sh`, which \
         installs the pinned moto[server] into .venv and starts it",
        candidate.display()
    );
    candidate
}

/// The endpoint every test of this process shares: `MOTO_ENDPOINT`, else one started here.
pub fn endpoint() -> String {
    static SHARED: OnceLock<(String, Option<MotoServer>)> = OnceLock::new();
    SHARED
        .get_or_init(|| match std::env::var("MOTO_ENDPOINT") {
            Ok(url) if !url.trim().is_empty() => {
                (url.trim().trim_end_matches('/').to_string(), None)
            }
            _ => {
                let server = MotoServer::start(&[]);
                (server.endpoint(), Some(server))
            }
        })
        .0
        .clone()
}

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a loopback port")
}

/// A private moto_server process (faults tests stop and restart it).
pub struct MotoServer {
    port: u16,
    envs: Vec<(String, String)>,
    child: Option<(Child, ChildStdin)>,
}

impl MotoServer {
    /// Starts moto_server on a free loopback port with extra environment variables.
    pub fn start(envs: &[(&str, &str)]) -> Self {
        let mut server = MotoServer {
            port: free_port(),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
        };
        server.restart();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server and waits until it has exited (its port refuses connections).
    pub fn stop(&mut self) {
        if let Some((mut child, stdin)) = self.child.take() {
            drop(stdin); // the watchdog reads EOF, stops moto_server and waits for it
            let _ = child.wait();
        }
    }

    /// (Re)starts the server on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let bin = server_bin();
        // $0 = moto_server; on EOF on stdin (this process gone, or `stop`) it is sent
        // SIGTERM, then SIGKILL if it has not exited within 5 s.
        let watchdog = r#""$0" "$@" & m=$!; read _; kill "$m"; i=0
while kill -0 "$m" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i+1)); done
kill -9 "$m" 2>/dev/null; wait "$m""#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(watchdog)
            .arg(&bin)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let stdin = child.stdin.take().expect("piped stdin");
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "moto_server exited at start ({status}); is port {} free?",
                    self.port
                );
            }
            assert!(
                started.elapsed() < STARTUP_LIMIT,
                "moto_server did not accept connections on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some((child, stdin));
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.stop();
    }
}
