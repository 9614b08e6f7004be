//! Bounded resources: uploads stream to disk under a cap and a pace,
//! downloads stream from disk, and request and message rates are limited.

use std::{path::PathBuf, sync::Arc, time::Duration};

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use lumen_gateway::{GatewayConfig, GatewayDeps, GatewayHandle, LimitsConfig, NodeDirectory};
use lumen_protocol::{
    ContentHash, Deployment,
    api::ApiErrorBody,
    content_hash,
    node::HealthPolicy,
    ws::{self, NodeMessage, ServerMessage},
};
use lumen_store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ws::{bind_node, close_code, connect, send, server_message, setup_with};

/// A gateway on a free port over a fresh store, with no chain behind it
/// (none of these routes dials one).
struct Offline {
    gateway: GatewayHandle,
    store: Store,
    dir: tempfile::TempDir,
}

impl Offline {
    async fn start(config: GatewayConfig) -> Self {
        Self::start_with_rpc(config, "http://127.0.0.1:9").await
    }

    async fn start_with_rpc(config: GatewayConfig, rpc_url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let chain = Deployment {
            chain_id: 31337,
            escrow: Address::repeat_byte(1),
            registry: Address::repeat_byte(2),
            deploy_block: 1,
            settler: Address::repeat_byte(3),
            treasury: Address::repeat_byte(4),
            rpc_url: Some(rpc_url.into()),
            explorer_url: None,
        };
        let deps = GatewayDeps {
            chain,
            store: store.clone(),
            bus: lumen_store::Bus::new(),
            nodes: Arc::new(NodeDirectory::new(HealthPolicy::default())),
        };
        let gateway = lumen_gateway::spawn(config, deps).await.unwrap();
        Self { gateway, store, dir }
    }

    /// Signs a fresh artist in; the `Authorization` header line.
    async fn artist(&self) -> (PrivateKeySigner, String) {
        let key = PrivateKeySigner::random();
        let token = crate::access::sign_in_at(&self.gateway.url, &key).await;
        (key, format!("Authorization: Bearer {token}"))
    }

    /// The blob store's folder of uploads in progress.
    fn incoming(&self) -> PathBuf {
        self.dir.path().join("blobs/.incoming")
    }

    /// Files left among the uploads in progress, once the gateway has had
    /// a moment to drop what it refused.
    async fn leftovers(&self) -> usize {
        for _ in 0..50 {
            let left = std::fs::read_dir(self.incoming()).map_or(0, Iterator::count);
            if left == 0 {
                return 0;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        std::fs::read_dir(self.incoming()).map_or(0, Iterator::count)
    }
}

/// What a hand-written HTTP/1.1 request got back.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn code(&self) -> String {
        serde_json::from_str::<ApiErrorBody>(&self.body).map(|e| e.code).unwrap_or_default()
    }
}

/// Sends `head` (request line and headers, without the blank line), then,
/// when `pieces` is given, a chunked body of those pieces with `gap`
/// between them. The response is read as it comes, so an answer the server
/// gives before the body is complete is seen.
async fn raw(gateway: &GatewayHandle, head: &str, pieces: Option<Vec<Vec<u8>>>, gap: Duration) -> Answer {
    let socket = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let (mut read, mut write) = socket.into_split();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), read.read_to_end(&mut got)).await;
        got
    });
    let chunked = if pieces.is_some() { "Transfer-Encoding: chunked\r\n" } else { "" };
    let head = format!("{head}\r\nHost: {}\r\nConnection: close\r\n{chunked}\r\n", gateway.addr);
    let _ = write.write_all(head.as_bytes()).await;
    for piece in pieces.unwrap_or_default() {
        let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
        chunk.extend_from_slice(&piece);
        chunk.extend_from_slice(b"\r\n");
        if write.write_all(&chunk).await.is_err() {
            break;
        }
        tokio::time::sleep(gap).await;
    }
    let _ = write.write_all(b"0\r\n\r\n").await;
    let got = reader.await.unwrap();
    let text = String::from_utf8_lossy(&got);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Answer { status, body }
}

fn with_limits(limits: LimitsConfig) -> GatewayConfig {
    GatewayConfig { limits, ..GatewayConfig::test() }
}

#[tokio::test]
async fn an_oversized_upload_is_refused_while_streaming_and_leaves_no_file() {
    let g = Offline::start(GatewayConfig { max_blend_bytes: 1 << 20, ..GatewayConfig::test() }).await;
    // Without a session: refused before a byte of the body is read.
    let answer =
        raw(&g.gateway, "POST /api/v1/blends HTTP/1.1\r\nContent-Length: 1048576", None, Duration::ZERO)
            .await;
    assert_eq!((answer.status, answer.code().as_str()), (401, "unauthorized"), "{answer:?}");
    let (_, auth) = g.artist().await;
    let post = format!("POST /api/v1/blends HTTP/1.1\r\n{auth}");
    // Announced too large: refused before a byte of the body is read.
    let answer = raw(&g.gateway, &format!("{post}\r\nContent-Length: 1048577"), None, Duration::ZERO).await;
    assert_eq!((answer.status, answer.code().as_str()), (413, "too_large"), "{answer:?}");
    // Not announced (chunked): refused once the cap is crossed, mid-stream.
    let pieces = vec![vec![7u8; 64 * 1024]; 40];
    let answer = raw(&g.gateway, &post, Some(pieces), Duration::ZERO).await;
    assert_eq!((answer.status, answer.code().as_str()), (413, "too_large"), "{answer:?}");
    assert_eq!(g.leftovers().await, 0, "the partial upload's temporary file is removed");
    // An empty upload is still refused as such.
    let answer = raw(&g.gateway, &post, Some(vec![]), Duration::ZERO).await;
    assert_eq!((answer.status, answer.code().as_str()), (400, "empty"), "{answer:?}");
}

#[tokio::test]
async fn a_slow_or_stalled_sender_is_cut_off_and_leaves_no_file() {
    let limits =
        LimitsConfig { upload_idle_secs: 1, upload_min_bytes_per_sec: 1000, ..LimitsConfig::default() };
    let g = Offline::start(with_limits(limits)).await;
    let (_, auth) = g.artist().await;
    let post = format!("POST /api/v1/blends HTTP/1.1\r\n{auth}");
    // A byte every 200 ms: never idle for a second, far under 1000 bytes a second.
    let started = std::time::Instant::now();
    let drip = vec![vec![b'x']; 50];
    let answer = raw(&g.gateway, &post, Some(drip), Duration::from_millis(200)).await;
    assert_eq!((answer.status, answer.code().as_str()), (408, "upload_too_slow"), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "cut off early, not after the whole drip");
    // One piece, then silence.
    let stall = vec![vec![b'x'; 10], vec![b'y'; 10]];
    let answer = raw(&g.gateway, &post, Some(stall), Duration::from_secs(3)).await;
    assert_eq!((answer.status, answer.code().as_str()), (408, "upload_timeout"), "{answer:?}");
    assert_eq!(g.leftovers().await, 0);
}

#[tokio::test]
async fn frame_uploads_are_authenticated_before_the_body_is_read() {
    let g = Offline::start(GatewayConfig::test()).await;
    // 100 GiB announced, nothing sent: the session is checked first.
    let head =
        "PUT /api/v1/tasks/1/output HTTP/1.1\r\nAuthorization: Bearer forged\r\nContent-Length: 107374182400";
    let answer = raw(&g.gateway, head, None, Duration::ZERO).await;
    assert_eq!((answer.status, answer.code().as_str()), (401, "unauthorized"), "{answer:?}");
    assert_eq!(g.leftovers().await, 0);
}

#[tokio::test]
async fn a_large_blob_streams_out_intact_and_a_corrupt_one_is_never_delivered_whole() {
    let g = Offline::start(GatewayConfig::test()).await;
    let content: Vec<u8> = (0..48u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let hash = g.store.put_blob(&content).await.unwrap();
    // Served to the artist who uploaded it.
    let (artist, auth) = g.artist().await;
    g.store.add_blend_owner(hash, artist.address()).await.unwrap();
    let token = auth.trim_start_matches("Authorization: Bearer ").to_owned();
    let get = |url: String| reqwest::Client::new().get(url).bearer_auth(&token).send();
    let url = format!("{}/api/v1/blobs/{hash}", g.gateway.url);
    let response = get(url.clone()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(content.len() as u64));
    let got = response.bytes().await.unwrap();
    assert_eq!(content_hash(&got), hash);
    let missing: ContentHash = content_hash(b"never stored");
    let response = get(format!("{}/api/v1/blobs/{missing}", g.gateway.url)).await.unwrap();
    assert_eq!(response.status(), 403, "what is not yours does not exist, to you");

    // Same size, one bit flipped on disk: the response breaks off short.
    let mut tampered = content.clone();
    tampered[40 << 20] ^= 1;
    std::fs::write(g.store.blobs().path(&hash), &tampered).unwrap();
    let response = get(url).await.unwrap();
    assert_eq!(response.status(), 200, "the status goes out before the bytes are read");
    assert!(response.bytes().await.is_err(), "a corrupt blob is not delivered as complete");
}

#[tokio::test]
async fn http_requests_over_a_connections_rate_get_429_and_other_connections_are_unaffected() {
    let limits = LimitsConfig { http_requests_per_sec: 1, http_burst: 5, ..LimitsConfig::default() };
    let g = Offline::start(with_limits(limits)).await;
    let url = format!("{}/api/v1/info", g.gateway.url);
    // One client keeps one connection alive.
    let greedy = reqwest::Client::new();
    for _ in 0..5 {
        assert_eq!(greedy.get(&url).send().await.unwrap().status(), 200);
    }
    let refused = greedy.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(refused.json::<ApiErrorBody>().await.unwrap().code, "rate_limited");
    // Another connection has its own allowance.
    assert_eq!(reqwest::Client::new().get(&url).send().await.unwrap().status(), 200);
    // And the greedy one gets requests again at the sustained rate.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(greedy.get(&url).send().await.unwrap().status(), 200);
}

/// A chain RPC that accepts connections, reads what comes and never
/// answers (a stalled or overloaded node), counting the requests it holds.
struct StalledRpc {
    url: String,
    /// Connections open now.
    open: Arc<std::sync::atomic::AtomicUsize>,
}

async fn stalled_rpc() -> StalledRpc {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let open = Arc::new(AtomicUsize::new(0));
    let o = open.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            o.fetch_add(1, SeqCst);
            let o = o.clone();
            tokio::spawn(async move {
                // Until the caller gives up and closes the connection.
                let mut buf = [0u8; 4096];
                while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                o.fetch_sub(1, SeqCst);
            });
        }
    });
    StalledRpc { url, open }
}

#[tokio::test]
async fn public_chain_reads_are_bounded_in_number_and_time_and_the_rest_of_the_api_is_unaffected() {
    use std::sync::atomic::Ordering::SeqCst;
    let limits =
        LimitsConfig { max_concurrent_chain_views: 2, chain_view_timeout_secs: 2, ..LimitsConfig::default() };
    let rpc = stalled_rpc().await;
    let g = Offline::start_with_rpc(with_limits(limits), &rpc.url).await;
    let base = g.gateway.url.clone();
    let get = |path: String| {
        let url = format!("{base}{path}");
        async move {
            let started = std::time::Instant::now();
            let response = reqwest::get(url).await.unwrap();
            let status = response.status().as_u16();
            let code = response.json::<ApiErrorBody>().await.map(|e| e.code).unwrap_or_default();
            (status, code, started.elapsed())
        }
    };
    let owner = |n: u8| format!("/api/v1/operators/{}", Address::repeat_byte(n));
    let tx = format!("/api/v1/explorer/tx/{}", alloy::primitives::B256::repeat_byte(7));

    // Eight requests of either kind at once against an RPC that never
    // answers: two wait on it, the others wait their turn.
    let asked: Vec<_> =
        (0..8u8).map(|n| tokio::spawn(get(if n % 2 == 0 { owner(n + 1) } else { tx.clone() }))).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rpc.open.load(SeqCst), 2, "the RPC holds two requests, not eight");
    // Pages from the mirror alone answer meanwhile, at once.
    let (status, _, took) = get(format!("/api/v1/explorer/address/{}", Address::repeat_byte(1))).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(get("/api/v1/leaderboard".into()).await.0, 200);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(rpc.open.load(SeqCst), 2, "still two, however long the others wait");

    // Each gives up within its time, in words: the RPC did not answer
    // (504), or no turn came (503).
    let mut timeouts = 0;
    for asked in asked {
        let (status, code, took) = asked.await.unwrap();
        assert!(matches!((status, code.as_str()), (504, "chain_timeout") | (503, "busy")), "{status} {code}");
        timeouts += usize::from(status == 504);
        assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(10), "{took:?}");
    }
    assert!(timeouts >= 2, "the first two waited on the RPC");
    // The places are free again.
    let (status, code, _) = get(owner(9)).await;
    assert_eq!((status, code.as_str()), (504, "chain_timeout"), "the places were freed");
}

#[tokio::test]
async fn a_node_flooding_its_websocket_is_closed_with_4006_and_a_steady_node_is_not() {
    let limits = LimitsConfig { ws_messages_per_sec: 2, ws_burst: 5, ..LimitsConfig::default() };
    let setup = setup_with(with_limits(limits)).await;
    let (flooder, steady) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    bind_node(&setup, &flooder).await;
    bind_node(&setup, &steady).await;

    let mut socket = connect(&setup, &flooder, flooder.address()).await;
    assert!(matches!(server_message(&mut socket).await, ServerMessage::Welcome { .. }));
    for _ in 0..20 {
        send(&mut socket, &NodeMessage::Heartbeat { running: 0 }).await;
    }
    let (code, reason) = close_code(&mut socket).await;
    assert_eq!(code, ws::CLOSE_RATE_LIMITED, "{reason}");

    let mut socket = connect(&setup, &steady, steady.address()).await;
    assert!(matches!(server_message(&mut socket).await, ServerMessage::Welcome { .. }));
    for _ in 0..8 {
        send(&mut socket, &NodeMessage::Heartbeat { running: 0 }).await;
        assert!(matches!(server_message(&mut socket).await, ServerMessage::HeartbeatAck { .. }));
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
}

#[tokio::test]
async fn a_credential_is_held_to_its_rate_over_all_its_connections() {
    let limits = LimitsConfig { http_key_requests_per_sec: 1, http_key_burst: 5, ..LimitsConfig::default() };
    let g = Offline::start(with_limits(limits)).await;
    let (_, greedy) = g.artist().await;
    let (_, calm) = g.artist().await;
    let token = |auth: &str| auth.trim_start_matches("Authorization: Bearer ").to_owned();
    let url = format!("{}/api/v1/auth/session", g.gateway.url);
    // Every request on a fresh connection: the per-connection limit never bites.
    let fresh = || reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    for _ in 0..5 {
        assert_eq!(fresh().get(&url).bearer_auth(token(&greedy)).send().await.unwrap().status(), 200);
    }
    let refused = fresh().get(&url).bearer_auth(token(&greedy)).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.json::<ApiErrorBody>().await.unwrap().code, "rate_limited");
    // The same through the session cookie.
    let cookie = format!("lumen_session={}", token(&greedy));
    let refused = fresh().get(&url).header("cookie", cookie).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    // Another artist is not affected.
    assert_eq!(fresh().get(&url).bearer_auth(token(&calm)).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn node_handshakes_from_one_address_are_limited_before_authentication() {
    let limits = LimitsConfig { ws_handshakes_per_sec: 1, ws_handshake_burst: 3, ..LimitsConfig::default() };
    let g = Offline::start(with_limits(limits)).await;
    let url = g.gateway.ws_url();
    let mut open = Vec::new();
    for _ in 0..3 {
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
        open.push(socket);
    }
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("expected 429, got {:?}", other.map(|(_, r)| r.status())),
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(tokio_tungstenite::connect_async(url.as_str()).await.is_ok(), "again at the sustained rate");
}
