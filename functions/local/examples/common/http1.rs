//! Reading one HTTP/1.1 response off a keep-alive connection, shared by the load generator
//! and the soak driver: both share two cores with the gateway, so they parse only what they
//! need (the status and a `content-length`-framed body, as axum answers) instead of running
//! an HTTP client.

use std::io;
use std::ops::Range;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

pub fn broken(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Reads one response into `buf`; returns its status and where its body lies in `buf`.
pub async fn read_response(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> io::Result<(u16, Range<usize>)> {
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
    Ok((status, head_end..head_end + length))
}
