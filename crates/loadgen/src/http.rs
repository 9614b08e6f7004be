//! Plain HTTP/1.1 over a fresh TCP connection each time, written by hand so
//! that bodies can be sent and read at a chosen pace.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use eyre::{WrapErr, bail};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// `GET path`: the status and how long the whole exchange took.
pub async fn get(addr: SocketAddr, path: &str, timeout: Duration) -> eyre::Result<(u16, Duration)> {
    let started = Instant::now();
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        eyre::Ok(status_of(&response))
    };
    let status = tokio::time::timeout(timeout, exchange).await.wrap_err("timed out")??;
    Ok((status, started.elapsed()))
}

fn status_of(response: &[u8]) -> u16 {
    std::str::from_utf8(&response[..response.len().min(32)])
        .ok()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `method path` with a body of `size` bytes announced by Content-Length
/// and sent in 64 KiB pieces, at most `bytes_per_sec` (unlimited if 0).
/// Returns the response's status and body.
pub async fn upload(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    size: u64,
    bytes_per_sec: u64,
) -> eyre::Result<(u16, String)> {
    let stream = TcpStream::connect(addr).await?;
    let (read, mut write) = stream.into_split();
    let reader = tokio::spawn(async move {
        let mut response = Vec::new();
        let _ = BufReader::new(read).read_to_end(&mut response).await;
        response
    });
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {size}\r\n\r\n"
    );
    write.write_all(head.as_bytes()).await?;
    let piece: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 31 % 251) as u8).collect();
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < size {
        let n = piece.len().min((size - sent) as usize);
        if write.write_all(&piece[..n]).await.is_err() {
            break; // the gateway answered early and closed
        }
        sent += n as u64;
        if bytes_per_sec > 0 {
            let due = Duration::from_secs_f64(sent as f64 / bytes_per_sec as f64);
            tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
        }
    }
    let response = reader.await?;
    let text = String::from_utf8_lossy(&response);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status_of(&response), body))
}

/// `GET path`, reading the first `first` bytes of the body, then holding
/// the connection for `hold` without reading, then reading the rest.
/// Returns the status and the body's length.
pub async fn download(
    addr: SocketAddr,
    path: &str,
    token: &str,
    first: u64,
    hold: Duration,
) -> eyre::Result<(u16, u64)> {
    let mut stream = BufReader::new(TcpStream::connect(addr).await?);
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stream.get_mut().write_all(head.as_bytes()).await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status = status_of(line.as_bytes());
    let mut length = None;
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            bail!("the headers did not end");
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<u64>().ok();
        }
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    while got < first {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok((status, got));
        }
        got += n as u64;
    }
    tokio::time::sleep(hold).await;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    if length.is_some_and(|l| l != got) {
        bail!("announced {length:?} bytes, got {got}");
    }
    Ok((status, got))
}

/// Signs `key` in to the gateway (Sign-In with Ethereum, as an artist
/// would); the session's bearer token.
pub async fn sign_in(
    addr: SocketAddr,
    key: &alloy::signers::local::PrivateKeySigner,
) -> eyre::Result<String> {
    use alloy::signers::Signer as _;
    use lumen_protocol::api::{SessionView, SignIn, SiweChallenge};
    let http = reqwest::Client::new();
    let challenge: SiweChallenge =
        http.get(format!("http://{addr}/api/v1/auth/nonce")).send().await?.error_for_status()?.json().await?;
    let message = challenge.message(key.address());
    let signature = key.sign_message(message.as_bytes()).await?;
    let body = SignIn { message, signature: signature.as_bytes().to_vec().into() };
    let session: SessionView = http
        .post(format!("http://{addr}/api/v1/auth/siwe"))
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    session.token.ok_or_else(|| eyre::eyre!("the sign-in gave no token"))
}
