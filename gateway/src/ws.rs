//! One node's WebSocket session: challenge, auth, heartbeats, results.

use std::time::Duration;

use alloy::primitives::{B256, Bytes, Signature};
use axum::{
    extract::{
        State, WebSocketUpgrade,
        ws::{CloseFrame, Message, WebSocket},
    },
    response::Response,
};

use lumen_chain::sign::{FrameResult, recover, result_digest};
use lumen_protocol::{
    Address, ContentHash, FrameIndex, JobId, TaskId, TaskState, Wei,
    auth::challenge_message,
    ws::{
        self, CLOSE_AUTH_FAILED, CLOSE_PROTOCOL_ERROR, CLOSE_RATE_LIMITED, Capabilities, MAX_MESSAGE_BYTES,
        NodeMessage, ServerMessage,
    },
};
use lumen_store::{Event, TaskEnd};
use rand::Rng;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::{AppState, nodes::Outgoing};

/// Close code: the gateway is going away (RFC 6455 §7.4.1); nodes reconnect
/// with backoff.
const CLOSE_GOING_AWAY: u16 = 1001;

/// Buffer sizes of one node connection. Messages are at most 64 KiB and
/// mostly under 1 KiB; tungstenite's defaults (128 KiB to read, 128 KiB to
/// write) cost 10,000 idle nodes over a gigabyte. The read buffer grows to
/// the message being read and is the only per-connection buffer that
/// stays; writes are flushed as they are made.
const READ_BUFFER_BYTES: usize = 4 * 1024;
const WRITE_BUFFER_BYTES: usize = 0;
/// Most bytes queued to a node that does not read (then sends fail and the
/// session ends): the largest message, twice.
const MAX_WRITE_BUFFER_BYTES: usize = 2 * MAX_MESSAGE_BYTES;

pub(crate) async fn upgrade(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    upgrade: WebSocketUpgrade,
) -> Response {
    let peer = extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().copied();
    // Before any authentication: each handshake costs a signature recovery
    // and a registry call, so they are limited per IP address.
    if let Some(axum::extract::ConnectInfo(peer)) = peer
        && !state.limits.handshakes.allow(&peer.ip())
    {
        tracing::debug!(target: "gateway::limits", %peer, "WebSocket handshake rate exceeded (429)");
        return crate::limits::too_many(format!(
            "more than {} node connections a second from {}; slow down",
            state.limits.config.ws_handshakes_per_sec,
            peer.ip()
        ));
    }
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            let tasks = state.tasks.clone();
            tasks.track_future(session(state, socket))
        })
}

/// Close reasons must fit a control frame (125 bytes with the code).
fn close_reason(reason: &str) -> String {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame { code, reason: close_reason(reason).into() };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

async fn send(socket: &mut WebSocket, msg: &ServerMessage) -> bool {
    socket.send(Message::Text(ws::encode(msg).into())).await.is_ok()
}

/// Why an auth attempt failed (sent as the 4001 close reason).
async fn authenticate(
    state: &AppState,
    socket: &mut WebSocket,
    nonce: B256,
) -> Result<(Address, Address, Wei, Capabilities), String> {
    let timeout = Duration::from_secs(state.config.auth_timeout_secs);
    let text = match tokio::time::timeout(timeout, socket.recv()).await {
        Err(_) => return Err("no auth message before the timeout".into()),
        Ok(None | Some(Err(_))) => return Err("connection closed during auth".into()),
        Ok(Some(Ok(Message::Text(text)))) => text,
        Ok(Some(Ok(_))) => return Err("expected a text auth message".into()),
    };
    let msg: NodeMessage = ws::decode(&text).map_err(|e| e.to_string())?;
    let NodeMessage::Auth { node, signature, capabilities, client_version } = msg else {
        return Err("the first message must be auth".into());
    };
    if let Some(problem) = capabilities.problem() {
        return Err(format!("capabilities refused: {problem}"));
    }
    let text = challenge_message(&state.public_url, state.chain.chain_id, &nonce);
    let signature = Signature::try_from(signature.as_ref()).map_err(|_| "malformed signature".to_owned())?;
    let recovered = signature
        .recover_address_from_msg(text.as_bytes())
        .map_err(|_| "signature does not recover".to_owned())?;
    if recovered != node {
        return Err(format!("signature is from {recovered}, not {node}"));
    }
    let info = state.registry.nodeInfo(node).call().await.map_err(|e| {
        warn!(target: "gateway::ws", %node, %e, "registry lookup failed");
        "registry lookup failed".to_owned()
    })?;
    if !info.active {
        return Err(format!("node {node} is not registered (bound to an owner) in the NodeRegistry"));
    }
    match state.store.is_banned(node).await {
        Ok(false) => {}
        Ok(true) => return Err(format!("node {node} is banned: it was proven to cheat")),
        Err(err) => {
            warn!(target: "gateway::ws", %node, %err, "ban lookup failed");
            return Err("ban lookup failed".to_owned());
        }
    }
    info!(target: "gateway::ws", %node, owner = %info.owner, %client_version, blender = %capabilities.blender_version, opengl = capabilities.opengl.as_deref().unwrap_or("none"), "node authenticated");
    Ok((node, info.owner, Wei(info.stake), capabilities))
}

async fn session(state: AppState, mut socket: WebSocket) {
    let nonce = B256::from(rand::rng().random::<[u8; 32]>());
    let challenge = ServerMessage::Challenge {
        nonce,
        chain_id: state.chain.chain_id,
        gateway: state.public_url.to_string(),
    };
    if !send(&mut socket, &challenge).await {
        return;
    }
    let authenticated = tokio::select! {
        auth = authenticate(&state, &mut socket, nonce) => auth,
        () = state.shutdown.cancelled() => {
            close(&mut socket, CLOSE_GOING_AWAY, "gateway shutting down").await;
            return;
        }
    };
    let (node, owner, stake, capabilities) = match authenticated {
        Ok(ok) => ok,
        Err(reason) => {
            warn!(target: "gateway::ws", %reason, "node authentication failed (4001)");
            close(&mut socket, CLOSE_AUTH_FAILED, &reason).await;
            return;
        }
    };

    let session_token = alloy::hex::encode(rand::rng().random::<[u8; 32]>());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let conn_id = state.nodes.connect(node, owner, stake, capabilities, session_token.clone(), tx);
    if let Err(err) = state.store.note_first_seen(node, lumen_store::now_ms()).await {
        warn!(target: "gateway::ws", %node, %err, "cannot record when the node was first seen");
    }
    let welcome = ServerMessage::Welcome {
        node,
        owner,
        heartbeat_interval_secs: state.nodes.policy().heartbeat_interval.as_secs_f64(),
        session: session_token,
        chain_id: state.chain.chain_id,
        escrow: state.chain.escrow,
    };
    if send(&mut socket, &welcome).await {
        run(&state, &mut socket, &mut rx, node).await;
    }

    if state.nodes.disconnect(&node, conn_id) {
        info!(target: "gateway::ws", %node, "node disconnected");
        lose_running_tasks(&state, &node, "disconnected", "the node's connection closed").await;
    }
}

/// The connected phase: until the socket closes or the gateway closes it.
async fn run(
    state: &AppState,
    socket: &mut WebSocket,
    rx: &mut mpsc::UnboundedReceiver<Outgoing>,
    node: Address,
) {
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => {
                info!(target: "gateway::ws", %node, "gateway shutting down: closing the session (1001)");
                close(socket, CLOSE_GOING_AWAY, "gateway shutting down").await;
                return;
            }
            out = rx.recv() => match out {
                Some(Outgoing::Message(msg)) => {
                    if !send(socket, &msg).await {
                        return;
                    }
                }
                Some(Outgoing::Close(code, reason)) => {
                    close(socket, code, &reason).await;
                    return;
                }
                None => return,
            },
            incoming = socket.recv() => {
                let text = match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Binary(_))) => {
                        close(socket, CLOSE_PROTOCOL_ERROR, "binary messages are not part of the protocol").await;
                        return;
                    }
                };
                // Counted per node key before any work is done for it.
                if !state.limits.ws.allow(&node) {
                    warn!(target: "gateway::ws", %node, "message rate limit exceeded (4006)");
                    close(socket, CLOSE_RATE_LIMITED, "too many messages: slow down").await;
                    return;
                }
                let msg = match ws::decode::<NodeMessage>(&text) {
                    Ok(msg) => msg,
                    Err(err) => {
                        warn!(target: "gateway::ws", %node, %err, "protocol error (4003)");
                        close(socket, CLOSE_PROTOCOL_ERROR, &err.to_string()).await;
                        return;
                    }
                };
                if let Some(reply) = handle(state, node, msg).await
                    && !send(socket, &reply).await
                {
                    return;
                }
            }
        }
    }
}

async fn handle(state: &AppState, node: Address, msg: NodeMessage) -> Option<ServerMessage> {
    match msg {
        NodeMessage::Auth { .. } => None,
        NodeMessage::Heartbeat { running } => {
            let (before, state_now) = state.nodes.heartbeat(&node)?;
            debug!(target: "gateway::ws", %node, running, state = %state_now, "heartbeat");
            // Only a change of state can change what the pipeline may do:
            // a steady heartbeat wakes nobody (10,000 idle nodes must not
            // keep the matchmaker, the verifier and the indexer busy).
            if before != state_now {
                state.bus.publish(Event::NodeCapacity);
            }
            Some(ServerMessage::HeartbeatAck { state: state_now })
        }
        NodeMessage::TaskProgress { task_id } => {
            match state.store.record_progress(task_id, node).await {
                Ok(true) => {}
                Ok(false) => {
                    debug!(target: "gateway::ws", %node, %task_id, "progress on a task that is not the node's or not running")
                }
                Err(err) => warn!(target: "gateway::ws", %node, %err, "cannot record progress"),
            }
            None
        }
        NodeMessage::TaskFailed { task_id, code, message, deterministic } => {
            match state.store.task(task_id).await {
                Ok(Some(task)) if task.node == node => {
                    let end =
                        TaskEnd { state: TaskState::Failed, code: code.clone(), message, deterministic };
                    if state.store.end_task(task_id, &end).await.unwrap_or(false) {
                        warn!(target: "gateway::ws", %node, %task_id, %code, deterministic, "node reported a failed frame");
                        state.nodes.failure(&node);
                        state.bus.publish(Event::TaskEnded { task_id, node: task.node });
                    }
                }
                _ => {
                    debug!(target: "gateway::ws", %node, %task_id, "failure report for a task that is not the node's")
                }
            }
            None
        }
        NodeMessage::TaskResult { task_id, job_id, frame_index, output_hash, signature, render_secs } => {
            let verdict =
                take_result(state, node, task_id, job_id, frame_index, output_hash, &signature, render_secs)
                    .await;
            let (accepted, reason) = match verdict {
                Ok(()) => (true, None),
                Err(reason) => {
                    warn!(target: "gateway::ws", %node, %task_id, %reason, "result rejected");
                    (false, Some(reason))
                }
            };
            Some(ServerMessage::ResultAck { task_id, accepted, reason })
        }
    }
}

/// Checks a result against the task it names: assigned to this node, still
/// running, same job and frame, the uploaded bytes hash to `output_hash`,
/// and the node key signed (job, frame, output hash).
#[allow(clippy::too_many_arguments)]
async fn take_result(
    state: &AppState,
    node: Address,
    task_id: TaskId,
    job_id: JobId,
    frame_index: FrameIndex,
    output_hash: ContentHash,
    signature: &Bytes,
    render_secs: f64,
) -> Result<(), String> {
    let task = match state.store.task(task_id).await {
        Ok(Some(task)) => task,
        Ok(None) => return Err("unknown task".into()),
        Err(err) => {
            tracing::error!(target: "gateway::ws", %err, "store failed");
            return Err("internal error".into());
        }
    };
    if task.node != node {
        return Err("the task is not assigned to this node".into());
    }
    if task.state != TaskState::Running {
        return Err(format!("the task is no longer running ({:?})", task.state));
    }
    if task.job_id != job_id || task.frame_index != frame_index {
        return Err("job or frame does not match the task".into());
    }
    let invalid = |code: &str, message: String| TaskEnd {
        state: TaskState::Failed,
        code: code.into(),
        message,
        deterministic: false,
    };
    let problem = if task.upload_hash != Some(output_hash) {
        Some(invalid("hash_mismatch", "the output hash does not match the uploaded bytes".into()))
    } else {
        let result = FrameResult {
            jobId: job_id.to_u256(),
            frameIndex: frame_index.get(),
            outputHash: output_hash.to_b256(),
        };
        let digest = result_digest(&result, state.chain.chain_id, state.chain.escrow);
        match recover(digest, signature) {
            Ok(signer) if signer == node => None,
            Ok(signer) => {
                Some(invalid("bad_signature", format!("result signed by {signer}, not by the node")))
            }
            Err(err) => Some(invalid("bad_signature", err.to_string())),
        }
    };
    if let Some(end) = problem {
        let reason = end.message.clone();
        if state.store.end_task(task_id, &end).await.unwrap_or(false) {
            state.nodes.failure(&node);
            state.bus.publish(Event::TaskEnded { task_id, node: task.node });
        }
        return Err(reason);
    }
    match state.store.record_result(task_id, output_hash, signature, render_secs).await {
        Ok(true) => {
            state.bus.publish(Event::ResultUploaded { task_id });
            Ok(())
        }
        Ok(false) => Err("the task is no longer running".into()),
        Err(err) => {
            tracing::error!(target: "gateway::ws", %err, "store failed");
            Err("internal error".into())
        }
    }
}

/// The node is gone: its running tasks are lost and their frames go back
/// to the queue.
async fn lose_running_tasks(state: &AppState, node: &Address, code: &str, message: &str) {
    let Ok(tasks) = state.store.node_tasks(*node, TaskState::Running).await else { return };
    for task in tasks {
        let end = TaskEnd {
            state: TaskState::Lost,
            code: code.into(),
            message: message.into(),
            deterministic: false,
        };
        if state.store.end_task(task.task_id, &end).await.unwrap_or(false) {
            warn!(target: "gateway::ws", %node, task_id = %task.task_id, "task lost: frame requeued");
            state.bus.publish(Event::TaskEnded { task_id: task.task_id, node: *node });
        }
    }
    state.bus.publish(Event::WorkAvailable);
}

#[cfg(test)]
mod tests {
    #[test]
    fn close_reasons_fit_a_control_frame() {
        assert_eq!(super::close_reason("short"), "short");
        let long = "é".repeat(100);
        let cut = super::close_reason(&long);
        assert!(cut.len() <= 120 && long.starts_with(&cut));
    }
}
