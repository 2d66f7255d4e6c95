//! Plain HTTP/1.1 over one keep-alive connection, as in examples/loadgen.rs: the driver
//! shares two cores with the gateway, so it spends as little as it can per request.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request taking longer than this is counted as a connection error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Conn {
    port: u16,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

/// A response: status and body.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

fn broken(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl Conn {
    pub fn new(port: u16) -> Conn {
        Conn {
            port,
            stream: None,
            buf: Vec::with_capacity(8192),
        }
    }

    /// Sends one framed request and reads its answer; on any error the connection is dropped
    /// (the next request opens a new one). A request framed with `connection: close` drops it
    /// after the answer too.
    pub async fn send(&mut self, request: &[u8], close: bool) -> io::Result<Answer> {
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(request)).await;
        let answer = answer.unwrap_or_else(|_| Err(broken("no answer within 30 s")));
        if answer.is_err() || close {
            self.stream = None;
        }
        answer
    }

    async fn exchange(&mut self, request: &[u8]) -> io::Result<Answer> {
        if self.stream.is_none() {
            let s = TcpStream::connect(("127.0.0.1", self.port)).await?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
        }
        let stream = self.stream.as_mut().expect("connected");
        stream.write_all(request).await?;
        read_answer(stream, &mut self.buf).await
    }
}

/// Reads one response (`content-length` framed, as axum answers).
async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Answer> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(broken("connection closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| broken("head not UTF-8"))?;
    let status: u16 = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| broken("no status"))?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .ok_or_else(|| broken("no content-length"))?;
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(broken("connection closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(Answer {
        status,
        body: buf[head_end..head_end + length].to_vec(),
    })
}
