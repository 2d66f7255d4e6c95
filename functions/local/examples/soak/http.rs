//! Plain HTTP/1.1 over one keep-alive connection, as in examples/loadgen.rs: the driver
//! shares two cores with the gateway, so it spends as little as it can per request.

use std::io;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::http1::{broken, read_response};

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
        let (status, body) = read_response(stream, &mut self.buf).await?;
        Ok(Answer {
            status,
            body: self.buf[body].to_vec(),
        })
    }
}
