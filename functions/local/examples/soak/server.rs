//! The gateway under test as a child process: a clean environment (so only the development
//! credentials apply, whatever the shell exports), a fresh SQLite file, the notifier pointed
//! at the soak's receiver, logs to a file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Args;

pub struct Gateway {
    child: Child,
    port: u16,
    db: PathBuf,
    log: PathBuf,
}

impl Gateway {
    /// Starts `args.server` with an environment of only what the soak sets: the listen
    /// address, the SQLite file, the notification target and WARN logs.
    pub fn start(args: &Args, notify_url: &str, notify_secret: &str) -> anyhow::Result<Gateway> {
        let db = args.out.join("soak.db");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        let log = args.out.join("server.log");
        let log_file = File::create(&log)?;
        let child = Command::new(&args.server)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LISTEN_ADDR", format!("127.0.0.1:{}", args.port))
            .env("SQLITE_PATH", &db)
            .env("NOTIFY_URL", notify_url)
            .env("NOTIFY_SECRET", notify_secret)
            .env("NOTIFY_TIMEOUT_MS", args.notify_timeout_ms.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", args.server.display()))?;
        Ok(Gateway {
            child,
            port: args.port,
            db,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn db_path(&self) -> &Path {
        &self.db
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Waits until the port accepts connections (or the child exits, or `limit` passes).
    pub async fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "webhooks-local exited at start ({status}); see {}",
                    self.log.display()
                );
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("webhooks-local did not listen within {limit:?}")
    }

    /// SIGTERM (the graceful shutdown: the notifier worker finishes its batch, the WAL is
    /// checkpointed), then SIGKILL after `limit`. Returns how it ended, for the summary.
    pub async fn stop(&mut self, limit: Duration) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return format!(
                    "exited on SIGTERM after {:.1} s ({status})",
                    started.elapsed().as_secs_f64()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        format!("did not exit within {limit:?} of SIGTERM: killed")
    }
}
