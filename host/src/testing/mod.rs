//! Helpers for the library's own tests: a real `redis-server` per test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` started for one test on a free port, with no persistence; killed
/// when dropped.
#[derive(Debug)]
pub(crate) struct RedisServer {
    pub(crate) port: u16,
    /// The password it requires (`--requirepass`), if any.
    password: Option<String>,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Starts one and waits until it answers.
    pub(crate) fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts one that requires `password`.
    pub(crate) fn start_with_password(password: &str) -> Self {
        Self::start_with(Some(password.to_owned()))
    }

    fn start_with(password: Option<String>) -> Self {
        let mut server = Self {
            port: free_port(),
            password,
            child: None,
        };
        server.spawn();
        server
    }

    /// `redis://[:<password>@]127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        if let Some(pw) = &self.password {
            cmd.args(["--requirepass", pw]);
        }
        let child = cmd
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(client) = redis::Client::open(self.url())
                && let Ok(mut conn) = client.get_connection()
                && redis::cmd("PING").query::<String>(&mut conn).is_ok()
            {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A link to it, as the clustered backends use one.
    pub(crate) async fn link(&self) -> crate::cluster::RedisLink {
        crate::cluster::RedisLink::connect(
            &self.url(),
            Duration::from_secs(1),
            Duration::from_millis(100),
            Duration::ZERO,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
