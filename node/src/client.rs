//! The gateway connection: auth, heartbeats, dispatch, reconnects.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use alloy::signers::{Signer, local::PrivateKeySigner};
use futures::{SinkExt, StreamExt};
use lumen_protocol::{
    auth::challenge_message,
    ws::{self, CLOSE_AUTH_FAILED, Capabilities, NodeMessage, ServerMessage},
};
use rand::Rng;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Message, protocol::CloseFrame};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::{NodeConfig, Status, backoff_delay, render::TaskContext};

/// How a session ended.
enum SessionEnd {
    /// Shut down on request.
    Shutdown,
    /// The connection failed or was closed; `authenticated` tells whether it
    /// got past auth (which resets the backoff).
    Lost { authenticated: bool },
}

pub(crate) struct Client {
    config: NodeConfig,
    key: PrivateKeySigner,
    blender: Arc<lumen_blender::Blender>,
    blender_version: String,
    /// What Blender draws Eevee and Workbench with here (asked at start).
    opengl: Option<String>,
    status: Arc<Status>,
    http: reqwest::Client,
    cheat: Arc<crate::render::CheatMemory>,
}

impl Client {
    pub(crate) async fn new(
        config: NodeConfig,
        key: PrivateKeySigner,
        blender: lumen_blender::Blender,
        status: Arc<Status>,
    ) -> Self {
        let blender_version = blender.version().await.unwrap_or_else(|_| "unknown".into());
        let opengl = blender.opengl().await;
        Self {
            config,
            key,
            blender: Arc::new(blender),
            blender_version,
            opengl,
            status,
            http: reqwest::Client::new(),
            cheat: Arc::default(),
        }
    }

    fn http_base(&self) -> String {
        let url = self.config.gateway_url.replacen("ws", "http", 1);
        match url.find("/ws/") {
            Some(i) => url[..i].to_owned(),
            None => url.trim_end_matches('/').to_owned(),
        }
    }

    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let mut attempt = 0u32;
        info!(target: "node", node = %self.key.address(), gateway = %self.config.gateway_url, blender = %self.blender_version, opengl = self.opengl.as_deref().unwrap_or("none"), "node starting");
        loop {
            match self.session(&shutdown).await {
                SessionEnd::Shutdown => break,
                SessionEnd::Lost { authenticated } => {
                    if authenticated {
                        attempt = 0;
                    }
                }
            }
            let delay = backoff_delay(attempt, rand::rng().random_range(0.8..=1.2));
            attempt = attempt.saturating_add(1);
            warn!(target: "node", delay_secs = delay.as_secs_f64(), "Connection lost, reconnecting...");
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        info!(target: "node", "node stopped");
    }

    async fn session(&self, shutdown: &CancellationToken) -> SessionEnd {
        let lost = SessionEnd::Lost { authenticated: false };
        let connect = tokio_tungstenite::connect_async(self.config.gateway_url.as_str());
        let (mut socket, _) = tokio::select! {
            () = shutdown.cancelled() => return SessionEnd::Shutdown,
            res = connect => match res {
                Ok(ok) => ok,
                Err(err) => {
                    warn!(target: "node", %err, "cannot reach the gateway");
                    return lost;
                }
            },
        };
        info!(target: "node", "Connected to relay server");

        // Challenge → auth → welcome.
        let Some(ServerMessage::Challenge { nonce, chain_id, gateway }) = next_message(&mut socket).await
        else {
            warn!(target: "node", "gateway did not send a challenge");
            return lost;
        };
        let text = challenge_message(&gateway, chain_id, &nonce);
        let signature = match self.key.sign_message(text.as_bytes()).await {
            Ok(sig) => sig,
            Err(err) => {
                error!(target: "node", %err, "cannot sign the challenge");
                return lost;
            }
        };
        let auth = NodeMessage::Auth {
            node: self.key.address(),
            signature: signature.as_bytes().to_vec().into(),
            capabilities: Capabilities {
                job_types: vec!["render".into()],
                blender_version: self.blender_version.clone(),
                gpu: false,
                memory_mb: self.config.memory_bytes >> 20,
                slots: self.config.announced_slots(),
                opengl: self.opengl.clone(),
            },
            client_version: env!("CARGO_PKG_VERSION").into(),
        };
        if socket.send(Message::Text(ws::encode(&auth).into())).await.is_err() {
            return lost;
        }
        let (session, heartbeat, result_chain, result_escrow) = match next_message(&mut socket).await {
            Some(ServerMessage::Welcome {
                owner,
                heartbeat_interval_secs,
                session,
                chain_id,
                escrow,
                ..
            }) => {
                info!(target: "node", %owner, "authenticated");
                (
                    session,
                    Duration::from_secs_f64(heartbeat_interval_secs.clamp(0.1, 300.0)),
                    chain_id,
                    escrow,
                )
            }
            _ => {
                error!(target: "node", code = CLOSE_AUTH_FAILED, "Authentication failed (4001): is the node key bound to an owner in the NodeRegistry?");
                return lost;
            }
        };
        self.status.relay_connected.store(true, Ordering::Relaxed);

        let context = Arc::new(TaskContext {
            blender: self.blender.clone(),
            key: self.key.clone(),
            http: self.http.clone(),
            http_base: self.http_base(),
            session,
            chain_id: result_chain,
            escrow: result_escrow,
            config: self.config.clone(),
            cheat: self.cheat.clone(),
        });
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<NodeMessage>();
        let tasks: Arc<Mutex<HashMap<lumen_protocol::TaskId, tokio::task::AbortHandle>>> = Arc::default();
        let mut ticker = tokio::time::interval(heartbeat);
        let end = loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 1000.into(), reason: "node shutting down".into() }))).await;
                    break SessionEnd::Shutdown;
                }
                _ = ticker.tick() => {
                    let running = self.status.running.load(Ordering::Relaxed);
                    if socket.send(Message::Text(ws::encode(&NodeMessage::Heartbeat { running }).into())).await.is_err() {
                        break SessionEnd::Lost { authenticated: true };
                    }
                }
                Some(msg) = out_rx.recv() => {
                    if socket.send(Message::Text(ws::encode(&msg).into())).await.is_err() {
                        break SessionEnd::Lost { authenticated: true };
                    }
                }
                incoming = socket.next() => {
                    let text = match incoming {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(frame))) => {
                            let (code, reason) = frame.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new()));
                            warn!(target: "node", code, %reason, "gateway closed the connection");
                            break SessionEnd::Lost { authenticated: true };
                        }
                        Some(Ok(_)) => continue,
                        None | Some(Err(_)) => break SessionEnd::Lost { authenticated: true },
                    };
                    match ws::decode::<ServerMessage>(&text) {
                        Ok(ServerMessage::HeartbeatAck { state }) => debug!(target: "node", %state, "Heartbeat acknowledged"),
                        Ok(ServerMessage::JobDispatch(dispatch)) => {
                            info!(target: "node", task_id = %dispatch.task_id, job_id = %dispatch.job_id, frame = dispatch.frame, "Received job_dispatch");
                            let task_id = dispatch.task_id;
                            let context = context.clone();
                            let out = out_tx.clone();
                            let status = self.status.clone();
                            let registry = tasks.clone();
                            status.running.fetch_add(1, Ordering::Relaxed);
                            let handle = tokio::spawn(async move {
                                // Progress every few seconds while the task is worked on,
                                // so the gateway can tell a slow render from a silent node.
                                let work = context.execute(dispatch);
                                tokio::pin!(work);
                                let mut tick = tokio::time::interval(PROGRESS_EVERY);
                                let silent = context.config.fault == Some(crate::Fault::Silent);
                                let msg = loop {
                                    tokio::select! {
                                        msg = &mut work => break msg,
                                        _ = tick.tick() => if !silent {
                                            let _ = out.send(NodeMessage::TaskProgress { task_id });
                                        },
                                    }
                                };
                                // Whoever removes the task from the registry accounts for it.
                                if registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&task_id).is_some() {
                                    status.running.fetch_sub(1, Ordering::Relaxed);
                                }
                                let _ = out.send(msg);
                            });
                            tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(task_id, handle.abort_handle());
                        }
                        Ok(ServerMessage::CancelTask { task_id, reason }) => {
                            if let Some(handle) = tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&task_id) {
                                handle.abort();
                                self.status.running.fetch_sub(1, Ordering::Relaxed);
                                info!(target: "node", %task_id, %reason, "task cancelled by the gateway");
                            }
                        }
                        Ok(ServerMessage::ResultAck { task_id, accepted, reason }) => {
                            if accepted {
                                info!(target: "node", %task_id, "Job completed");
                            } else {
                                warn!(target: "node", %task_id, reason = reason.as_deref().unwrap_or(""), "result refused by the gateway");
                            }
                        }
                        Ok(other) => debug!(target: "node", ?other, "ignored message"),
                        Err(err) => warn!(target: "node", %err, "undecodable message from the gateway"),
                    }
                }
            }
        };
        self.status.relay_connected.store(false, Ordering::Relaxed);
        // The gateway requeues the frames of a dropped connection: stop rendering them.
        for (_, handle) in tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain() {
            handle.abort();
            self.status.running.fetch_sub(1, Ordering::Relaxed);
        }
        end
    }
}

/// How often a node reports progress on each task it works on.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_message(socket: &mut Socket) -> Option<ServerMessage> {
    let timeout = Duration::from_secs(15);
    loop {
        match tokio::time::timeout(timeout, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return ws::decode(&text).ok(),
            Ok(Some(Ok(Message::Close(frame)))) => {
                if let Some(f) = frame {
                    warn!(target: "node", code = u16::from(f.code), reason = %f.reason, "gateway closed the connection");
                }
                return None;
            }
            Ok(Some(Ok(_))) => {}
            _ => return None,
        }
    }
}
