//! HTTP handlers.

use std::collections::HashMap;

use axum::{
    Json,
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::Response,
};
use lumen_chain::sign::{recover, spec_hash};
use lumen_protocol::{
    ContentHash, Deployment, FrameIndex, FrameState, JobId, TaskId, TaskState,
    api::{
        FrameView, JobView, NetworkStats, NodeView, RegisterJob, RenderView, SceneSummary, TrustView, TxView,
        UploadedBlend,
    },
};
use lumen_store::{Event, JobRow, NewJob, TaskRow};
use serde::Deserialize;
use tracing::{info, warn};

use crate::{
    AppState,
    error::ApiError,
    session::{Artist, Caller, forbidden},
};

pub(crate) type ApiResult<T> = Result<T, ApiError>;

pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /api/v1/info`: the deployment this gateway settles on (its
/// `rpc_url` may be loopback: clients may need their own).
pub(crate) async fn info(State(state): State<AppState>) -> Json<Deployment> {
    Json((*state.chain).clone())
}

/// `GET /api/v1/market`: the jobs this gateway accepts (tokens, lowest
/// prices, most frames), so an artist can check before locking money.
pub(crate) async fn market(State(state): State<AppState>) -> Json<lumen_protocol::api::Market> {
    Json(state.config.market.clone())
}

pub(crate) fn parse_hash(hash: &str) -> ApiResult<ContentHash> {
    hash.parse().map_err(|_| ApiError::bad_request("bad_hash", format!("{hash:?} is not a 32-byte hex hash")))
}

/// `GET /api/v1/blobs/{hash}`: a `.blend`, to a node running a task that
/// renders it or to an artist who uploaded it. Frames are not served here:
/// they go to their artist through the job, once paid.
pub(crate) async fn get_blob(
    State(state): State<AppState>,
    caller: Caller,
    Path(hash): Path<String>,
) -> ApiResult<Response> {
    let hash = parse_hash(&hash)?;
    let allowed = match caller.required()? {
        Caller::Node(node) => state.store.node_renders_blend(node, hash).await?,
        Caller::Artist(artist) => state.store.owns_blend(hash, artist).await?,
        Caller::Anonymous => false,
    };
    if !allowed {
        return Err(forbidden(format!("blob {hash} is not yours to read")));
    }
    match state.store.blobs().reader(&hash).await.map_err(ApiError::internal)? {
        Some(blob) => Ok(private_stream(blob, "application/octet-stream")),
        None => Err(ApiError::not_found(format!("no blob {hash}"))),
    }
}

/// A private blob streamed from disk, kept out of shared caches.
fn private_stream(blob: lumen_store::BlobReader, content_type: &'static str) -> Response {
    let mut response = crate::body::stream_blob(blob, content_type);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, header::HeaderValue::from_static("private, no-store"));
    response
}

/// `POST /api/v1/blends`: stream to a temporary file, inspect it there,
/// then move it into the store. Bad files get a 422 naming the problem;
/// nothing about a job exists yet, so nothing is lost.
pub(crate) async fn upload_blend(
    State(state): State<AppState>,
    artist: Artist,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<UploadedBlend>)> {
    let _slot = state.limits.upload_slot()?;
    let max = state.config.max_blend_bytes as u64;
    let blob = crate::body::spool(state.store.blobs(), &headers, body, max, &state.config.limits).await?;
    let scene = crate::inspect::check_blend(&state, blob.path()).await?;
    let size = blob.size();
    let hash = state.store.commit_blob(blob).await.map_err(ApiError::internal)?;
    state.store.record_scene(hash, &scene).await?;
    state.store.add_blend_owner(hash, artist.address).await?;
    info!(target: "gateway::api", %hash, artist = %artist.address, size, frames = ?(scene.frame_start, scene.frame_end), "blend uploaded");
    Ok((StatusCode::CREATED, Json(UploadedBlend { hash, size, scene })))
}

/// `POST /api/v1/jobs`: a job the artist opened on-chain. The spec is
/// checked for sense and for the artist's signature here; the indexer
/// checks it against the chain's `JobOpened` before anything is dispatched.
pub(crate) async fn register_job(
    State(state): State<AppState>,
    caller: Artist,
    Json(req): Json<RegisterJob>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let spec = &req.spec;
    let frame_count = spec
        .frame_count()
        .filter(|n| (1..=1_048_576).contains(n))
        .ok_or_else(|| ApiError::bad_request("bad_frames", "the spec's frame range is empty or too long"))?;
    if spec.width == 0 || spec.height == 0 || spec.width > 16_384 || spec.height > 16_384 {
        return Err(ApiError::bad_request("bad_resolution", "the spec's resolution is out of range"));
    }
    if spec.pricePerFrame == 0 {
        return Err(ApiError::bad_request("bad_price", "the price per frame must be positive"));
    }
    if let Some((code, message)) =
        state.config.market.problem(spec.token, spec.pricePerFrame.into(), frame_count)
    {
        return Err(ApiError::client(StatusCode::UNPROCESSABLE_ENTITY, code, message));
    }
    let job_id = req.job_id;
    let blend_hash = ContentHash::from(spec.blendHash);
    let scene = scene_of(&state, blend_hash).await?;
    let problems = scene.spec_mismatches(spec);
    if !problems.is_empty() {
        return Err(ApiError::client(
            StatusCode::UNPROCESSABLE_ENTITY,
            "spec_mismatch",
            format!("the spec does not match the .blend: {}", problems.join("; ")),
        ));
    }
    let hash = spec_hash(spec, state.chain.chain_id, state.chain.escrow);
    let artist = recover(hash, &req.signature)
        .map_err(|e| ApiError::bad_request("bad_signature", format!("spec signature: {e}")))?;
    if artist != caller.address {
        return Err(forbidden(format!(
            "the spec is signed by {artist}, and you are signed in as {}",
            caller.address
        )));
    }
    if !state.store.owns_blend(blend_hash, artist).await? {
        return Err(forbidden(format!("you did not upload the .blend {blend_hash}: upload it first")));
    }
    // The job must exist on-chain with this spec, opened by the signer: otherwise
    // anyone could squat another artist's job id with a spec of their own.
    // The escrow keeps a hash of the job's terms: they come from its JobOpened
    // event, checked against that hash (a job that does not exist has none).
    let onchain = lumen_chain::job::find_terms(
        state.escrow.provider(),
        state.chain.escrow,
        state.chain.deploy_block,
        job_id,
    )
    .await
    .map_err(|e| ApiError::internal(format!("escrow job terms: {e}")))?
    .map(|(terms, _)| terms);
    let Some(onchain) = onchain.filter(|t| t.specHash == hash && t.artist == artist) else {
        return Err(ApiError::client(
            StatusCode::CONFLICT,
            "chain_mismatch",
            format!("job {job_id} on-chain was not opened by the spec's signer with this spec hash"),
        ));
    };
    // Time to render and settle before the artist can refund.
    use alloy::providers::Provider as _;
    let now = state
        .escrow
        .provider()
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .map_err(|e| ApiError::internal(format!("latest block: {e}")))?
        .map_or(0, |b| b.header.timestamp);
    let min = state.config.market.min_deadline_secs;
    let deadline = onchain.deadline;
    if deadline < now.saturating_add(min) {
        return Err(ApiError::client(
            StatusCode::UNPROCESSABLE_ENTITY,
            "deadline_too_close",
            format!(
                "job {job_id}'s deadline is {}s away; this gateway needs at least {min}s to render and settle \
                 (cancel it with `lumen job cancel {job_id}`)",
                deadline.saturating_sub(now)
            ),
        ));
    }
    let frame_numbers = (0..frame_count).map(|i| spec.frame_number(i)).collect();
    let job = NewJob {
        job_id,
        artist,
        spec_json: serde_json::to_string(spec).map_err(ApiError::internal)?,
        spec_hash: hash,
        signature: req.signature.clone(),
        blend_hash,
        width: spec.width,
        height: spec.height,
        engine: spec.engine.clone(),
        token: spec.token,
        price_per_frame: spec.pricePerFrame.into(),
        frame_numbers,
    };
    state.store.insert_job(&job).await?;
    info!(target: "gateway::api", %job_id, %artist, frames = frame_count, "job registered");
    state.bus.publish(Event::JobRegistered { job_id });
    Ok((StatusCode::CREATED, Json(job_view(&state, job_id).await?)))
}

/// What inspection read from an uploaded `.blend`; a file stored before
/// scenes were recorded is inspected again.
async fn scene_of(state: &AppState, blend_hash: ContentHash) -> ApiResult<SceneSummary> {
    if let Some(scene) = state.store.scene(blend_hash).await? {
        return Ok(scene);
    }
    if !state.store.blobs().contains(&blend_hash).await {
        return Err(ApiError::bad_request("unknown_blend", format!("no uploaded .blend {blend_hash}")));
    }
    let scene = crate::inspect::check_blend(state, &state.store.blobs().path(&blend_hash)).await?;
    state.store.record_scene(blend_hash, &scene).await?;
    Ok(scene)
}

pub(crate) async fn job_status(
    State(state): State<AppState>,
    artist: Artist,
    Path(id): Path<JobId>,
) -> ApiResult<Json<JobView>> {
    own_job(&state, artist, id).await?;
    Ok(Json(job_view(&state, id).await?))
}

/// 404 for a job nobody registered, 403 for another artist's.
pub(crate) async fn own_job(state: &AppState, artist: Artist, job_id: JobId) -> ApiResult<()> {
    match state.store.job_artist(job_id).await? {
        None => Err(ApiError::not_found(format!("no job {job_id}"))),
        Some(owner) if owner == artist.address => Ok(()),
        Some(_) => Err(forbidden(format!("job {job_id} is another artist's"))),
    }
}

/// `GET /api/v1/stats`: what anyone may see of the network's work.
pub(crate) async fn stats(State(state): State<AppState>) -> ApiResult<Json<NetworkStats>> {
    // Counted again only when the network's stamps (a query of indexed
    // maxima, far cheaper than the counts) moved: every page showing them is
    // told at once and reloads at once, and they share one count. Stamped
    // per request, not from the change feed's last stamps, so a reader sees
    // its own writes.
    let key = state.store.network_stamps().await?;
    let aggregates = state.aggregates.get(key, state.store.aggregates()).await?;
    Ok(Json(NetworkStats {
        jobs: aggregates.jobs_by_state.into_iter().collect(),
        artists: aggregates.artists,
        frames_verified: aggregates.frames_verified,
        frames_paid: aggregates.frames_paid,
        nodes_connected: state.nodes.views(false).len() as u64,
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<i64>,
}

/// `GET /api/v1/jobs`: the signed-in artist's jobs, newest first.
pub(crate) async fn list_jobs(
    State(state): State<AppState>,
    artist: Artist,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<JobView>>> {
    let mut out = Vec::new();
    for job in state.store.jobs_of(artist.address, q.limit.unwrap_or(50).clamp(1, 500)).await? {
        out.push(build_view(&state, job).await?);
    }
    Ok(Json(out))
}

pub(crate) async fn job_view(state: &AppState, job_id: JobId) -> ApiResult<JobView> {
    let job =
        state.store.job(job_id).await?.ok_or_else(|| ApiError::not_found(format!("no job {job_id}")))?;
    build_view(state, job).await
}

fn render_view(task: &TaskRow) -> RenderView {
    RenderView {
        task_id: task.task_id,
        role: task.role,
        state: task.state,
        node: task.node,
        output_hash: task.output_hash,
        failure: task.failure_code.clone(),
        dispatched_at_ms: task.created_at,
        finished_at_ms: task.finished_at,
    }
}

async fn build_view(state: &AppState, job: JobRow) -> ApiResult<JobView> {
    let payouts: HashMap<FrameIndex, lumen_store::PayoutRow> =
        state.store.payouts(job.job_id).await?.into_iter().map(|p| (p.frame_index, p)).collect();
    let checks: HashMap<FrameIndex, lumen_store::PayoutRow> =
        state.store.verification_payouts(job.job_id).await?.into_iter().map(|p| (p.frame_index, p)).collect();
    let previewed: std::collections::HashSet<ContentHash> =
        state.store.previewed(job.job_id).await?.into_iter().collect();
    let mut renders: HashMap<FrameIndex, Vec<TaskRow>> = HashMap::new();
    for task in state.store.job_tasks(job.job_id).await? {
        renders.entry(task.frame_index).or_default().push(task);
    }
    let frames = state
        .store
        .frames(job.job_id)
        .await?
        .into_iter()
        .map(|f| {
            let payout = payouts.get(&f.frame_index);
            let tasks = renders.remove(&f.frame_index).unwrap_or_default();
            let verdict = tasks.iter().rev().find_map(TaskRow::verdict).map(|v| v.to_string());
            FrameView {
                frame: f.frame_number,
                index: f.frame_index,
                state: f.state,
                node: f.node,
                output_hash: f.output_hash,
                verdict,
                failure: f.failure,
                attempts: f.attempts,
                payout_tx: payout.map(|p| p.tx_hash),
                payout_owner: payout.map(|p| p.owner),
                payout_amount: payout.map(|p| p.amount),
                payout_fee: payout.map(|p| p.fee),
                verification_payout: checks.get(&f.frame_index).map(|p| lumen_protocol::api::PayoutView {
                    node: p.node,
                    owner: p.owner,
                    amount: p.amount,
                    fee: p.fee,
                    tx: p.tx_hash,
                }),
                renders: tasks.iter().map(render_view).collect(),
                preview: f.state == FrameState::Verified
                    && f.output_hash.is_some_and(|h| previewed.contains(&h)),
            }
        })
        .collect();
    let events = state.store.chain_events(Some(job.job_id)).await?;
    let onchain = lumen_protocol::api::OnchainJobView::from_events(events.iter().map(|e| &e.event));
    let transactions = events
        .into_iter()
        .map(|e| TxView {
            event: e.event.kind(),
            tx_hash: e.tx_hash,
            block_number: e.block_number,
            amount: e.event.amount(),
        })
        .collect();
    Ok(JobView {
        job_id: job.job_id,
        state: job.state,
        failure: job.failure,
        artist: job.artist,
        frame_count: job.frame_count,
        price_per_frame: job.price_per_frame,
        token: job.token,
        spec_hash: job.spec_hash,
        blend_hash: job.blend_hash,
        width: job.width,
        height: job.height,
        frames,
        transactions,
        settlement_parked: state.store.settlement_park(job.job_id).await?.map(|p| p.reason),
        unpayable: state
            .store
            .unpayable_nodes(job.job_id)
            .await?
            .into_iter()
            .map(|(node, reason)| lumen_protocol::api::UnpayableNode { node, reason })
            .collect(),
        onchain,
    })
}

/// The verified output of frame `frame` (Blender frame number) of a job.
async fn verified_output(
    state: &AppState,
    id: JobId,
    frame: i32,
) -> ApiResult<(lumen_store::FrameRow, ContentHash)> {
    let frames = state.store.frames(id).await?;
    let f = frames
        .into_iter()
        .find(|f| f.frame_number == frame)
        .ok_or_else(|| ApiError::not_found(format!("job {id} has no frame {frame}")))?;
    match (f.state, f.output_hash) {
        (FrameState::Verified, Some(hash)) => Ok((f, hash)),
        _ => Err(ApiError::client(
            StatusCode::CONFLICT,
            "not_verified",
            format!("frame {frame} is not verified"),
        )),
    }
}

/// `GET /api/v1/jobs/{id}/frames/{frame}`: the full frame, to its artist,
/// once its payment is final on-chain (in the mirror, which trails the
/// head by the indexer's confirmation depth). Before that the artist sees
/// the preview: a frame handed over before it is paid could be kept and
/// the job refunded.
pub(crate) async fn job_frame(
    State(state): State<AppState>,
    artist: Artist,
    Path((id, frame)): Path<(JobId, i32)>,
) -> ApiResult<Response> {
    own_job(&state, artist, id).await?;
    let (f, hash) = verified_output(&state, id, frame).await?;
    let paid = state.store.payouts(id).await?.iter().any(|p| p.frame_index == f.frame_index);
    if !paid {
        return Err(ApiError::client(
            StatusCode::PAYMENT_REQUIRED,
            "not_paid",
            format!(
                "frame {frame} is verified but its payment is not final on-chain yet; \
                 its preview is at /api/v1/jobs/{id}/frames/{frame}/preview"
            ),
        ));
    }
    let blob = state.store.blobs().reader(&hash).await.map_err(ApiError::internal)?.ok_or_else(|| {
        ApiError::internal(format!("verified frame {frame} of job {id} is missing from the blob store"))
    })?;
    Ok(private_stream(blob, "image/png"))
}

/// `GET /api/v1/jobs/{id}/frames/{frame}/preview`: the reduced, watermarked
/// preview the verifier made of a verified frame, to its artist.
pub(crate) async fn job_preview(
    State(state): State<AppState>,
    artist: Artist,
    Path((id, frame)): Path<(JobId, i32)>,
) -> ApiResult<Response> {
    own_job(&state, artist, id).await?;
    let (_, hash) = verified_output(&state, id, frame).await?;
    let preview = state.store.preview(hash).await?.ok_or_else(|| {
        ApiError::client(
            StatusCode::CONFLICT,
            "no_preview",
            format!("frame {frame}'s preview is not made yet"),
        )
    })?;
    let blob = state.store.blobs().reader(&preview).await.map_err(ApiError::internal)?.ok_or_else(|| {
        ApiError::internal(format!("the preview of frame {frame} of job {id} is missing from the blob store"))
    })?;
    Ok(private_stream(blob, "image/png"))
}

/// `PUT /api/v1/tasks/{id}/output`: a node uploads the frame of a task it
/// runs, authenticated by its connection's session token before a byte of
/// the body is read.
pub(crate) async fn upload_output(
    State(state): State<AppState>,
    Path(task_id): Path<TaskId>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<serde_json::Value>> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let node = state.nodes.node_for_session(token).ok_or_else(|| {
        ApiError::client(StatusCode::UNAUTHORIZED, "unauthorized", "unknown or expired session")
    })?;
    let task =
        state.store.task(task_id).await?.ok_or_else(|| ApiError::not_found(format!("no task {task_id}")))?;
    if task.node != node {
        return Err(ApiError::client(
            StatusCode::FORBIDDEN,
            "not_assigned",
            "the task is not assigned to this node",
        ));
    }
    if task.state != TaskState::Running {
        return Err(ApiError::client(StatusCode::CONFLICT, "not_running", "the task is no longer running"));
    }
    let max = state.config.max_frame_bytes as u64;
    let blob = crate::body::spool(state.store.blobs(), &headers, body, max, &state.config.limits).await?;
    if !crate::body::starts_like_an_image(blob.path()).await {
        return Err(ApiError::client(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not_an_image",
            "a frame must be a PNG, OpenEXR or JPEG file",
        ));
    }
    let size = blob.size();
    let hash = state.store.commit_blob(blob).await.map_err(ApiError::internal)?;
    if !state.store.record_upload(task_id, hash).await? {
        warn!(target: "gateway::api", %task_id, %node, "upload for a task that is no longer running");
        return Err(ApiError::client(StatusCode::CONFLICT, "not_running", "the task is no longer running"));
    }
    Ok(Json(serde_json::json!({ "hash": hash, "size": size })))
}

pub(crate) async fn list_nodes(State(state): State<AppState>) -> ApiResult<Json<Vec<NodeView>>> {
    let mut nodes = state.nodes.views(false);
    let mut running: HashMap<lumen_protocol::Address, u32> = HashMap::new();
    for task in state.store.tasks_in_state(TaskState::Running).await? {
        *running.entry(task.node).or_default() += 1;
    }
    let records: HashMap<_, _> = state.store.node_records().await?.into_iter().map(|r| (r.node, r)).collect();
    let banned = state.store.banned_nodes().await?;
    for node in &mut nodes {
        node.running = running.get(&node.address).copied().unwrap_or(0);
        let record = records.get(&node.address).cloned().unwrap_or_default();
        node.trust = Some(trust_view(&record, banned.contains(&node.address)));
    }
    Ok(Json(nodes))
}

/// A node's track record as the API shows it, with its reputation.
pub(crate) fn trust_view(record: &lumen_store::NodeRecord, banned: bool) -> TrustView {
    TrustView {
        accepted: record.accepted,
        agreed_samples: record.agreed_samples,
        rejected: record.rejected,
        outvoted: record.outvoted,
        failed: record.failed,
        lost: record.lost,
        reputation: lumen_matchmaker::policy::reputation(record),
        banned,
    }
}
