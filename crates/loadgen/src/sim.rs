//! Simulated nodes: real keys, the real signed challenge, real heartbeats,
//! over WebSocket connections with small buffers (10,000 of them must fit
//! in the load generator too).

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use alloy::signers::{Signer, local::PrivateKeySigner};
use eyre::{WrapErr, bail, eyre};
use futures::{SinkExt, StreamExt};
use lumen_protocol::{
    auth::challenge_message,
    ws::{self, Capabilities, NodeMessage, ServerMessage},
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message, protocol::WebSocketConfig},
};

/// One node's connection.
pub type Socket = WebSocketStream<tokio::net::TcpStream>;

/// An authenticated simulated node.
#[derive(Debug)]
pub struct SimNode {
    /// Its connection.
    pub socket: Socket,
    /// How often the gateway wants heartbeats.
    pub heartbeat_interval: Duration,
}

/// What a simulated node announces.
pub fn capabilities() -> Capabilities {
    Capabilities {
        job_types: vec!["render".into()],
        blender_version: "4.2.0".into(),
        gpu: false,
        memory_mb: 2048,
        slots: 1,
        opengl: None,
    }
}

/// Connects from `source` (a loopback address: spreading nodes over
/// 127.0.0.x keeps clear of one address's ephemeral ports) to the gateway
/// at `gateway`, answers the challenge with `key` and waits for the welcome.
pub async fn connect(gateway: SocketAddr, source: IpAddr, key: &PrivateKeySigner) -> eyre::Result<SimNode> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0)).wrap_err_with(|| format!("binding {source}"))?;
    let stream = socket.connect(gateway).await.wrap_err("connecting")?;
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let url = format!("ws://{gateway}/ws/node");
    let (mut socket, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await.wrap_err("handshake")?;
    let ServerMessage::Challenge { nonce, chain_id, gateway: public_url } = recv(&mut socket).await? else {
        bail!("expected a challenge");
    };
    let text = challenge_message(&public_url, chain_id, &nonce);
    let signature = key.sign_message(text.as_bytes()).await?;
    let auth = NodeMessage::Auth {
        node: key.address(),
        signature: signature.as_bytes().to_vec().into(),
        capabilities: capabilities(),
        client_version: "lumen-gateway-load".into(),
    };
    send(&mut socket, &auth).await?;
    match recv(&mut socket).await? {
        ServerMessage::Welcome { heartbeat_interval_secs, .. } => {
            Ok(SimNode { socket, heartbeat_interval: Duration::from_secs_f64(heartbeat_interval_secs) })
        }
        other => bail!("expected a welcome, got {other:?}"),
    }
}

/// Sends one protocol message.
pub async fn send(socket: &mut Socket, msg: &NodeMessage) -> eyre::Result<()> {
    socket.send(Message::Text(ws::encode(msg).into())).await.wrap_err("send")
}

/// The next protocol message; a close is an error naming its code.
pub async fn recv(socket: &mut Socket) -> eyre::Result<ServerMessage> {
    loop {
        match socket.next().await {
            None => bail!("connection closed"),
            Some(Err(err)) => return Err(eyre!(err)),
            Some(Ok(Message::Text(text))) => return Ok(ws::decode(&text)?),
            Some(Ok(Message::Close(frame))) => {
                let code = frame.as_ref().map(|f| u16::from(f.code)).unwrap_or(0);
                return Err(Closed(code).into());
            }
            Some(Ok(_)) => {}
        }
    }
}

/// The gateway closed the connection with this code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed(pub u16);

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "closed with {}", self.0)
    }
}

impl std::error::Error for Closed {}

impl SimNode {
    /// Sends a heartbeat and waits for its ack: the round trip.
    pub async fn heartbeat(&mut self) -> eyre::Result<Duration> {
        let sent = Instant::now();
        send(&mut self.socket, &NodeMessage::Heartbeat { running: 0 }).await?;
        loop {
            if let ServerMessage::HeartbeatAck { .. } = recv(&mut self.socket).await? {
                return Ok(sent.elapsed());
            }
        }
    }
}
