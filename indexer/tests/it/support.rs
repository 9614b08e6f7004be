//! The world every test starts from: Anvil with the contracts deployed (a
//! 2.5 % fee), a store in a temporary folder, an artist, and two node keys
//! bound to two owners. Frames are made verified along the real path
//! (claim, upload, signed result, verdict).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use alloy::{
    primitives::{Address, B256, U256},
    providers::{DynProvider, Provider},
    rpc::types::{Filter, TransactionReceipt},
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use lumen_chain::{
    DeployConfig, Settler,
    contracts::{
        RenderEscrow::{self, RenderEscrowInstance},
        escrow::IRenderEscrow::JobTerms,
    },
    job::find_terms,
    sign::{FrameResult, result_digest, sign_digest},
};
use lumen_indexer::{Indexer, IndexerConfig};
use lumen_protocol::{
    ChainEvent, ChainEventKind, ContentHash, FrameIndex, JobId, JobState, MirroredEvent, TaskRole, Verdict,
    Wei,
};
use lumen_store::{Bus, NewJob, PayoutRow, Store, now_ms};
use lumen_testkit::{OpenedJob, TestChain};
use tempfile::TempDir;

/// Protocol fee of the test deployment (basis points).
pub(crate) const FEE_BPS: u16 = 250;
/// Seconds after a cancel before the artist may refund.
pub(crate) const CANCEL_GRACE: u64 = 3_600;
/// Price of one frame: 0.001 ETH, so fees come out exact.
pub(crate) const PRICE: u128 = 1_000_000_000_000_000;
/// Spec hash of every job the artist opens.
pub(crate) const SPEC: B256 = B256::repeat_byte(0x5e);
/// A job deadline far enough away that no test reaches it by accident.
pub(crate) const DAY: u64 = 86_400;
/// `IRenderEscrow.JobStatus.Refunded` as the bindings carry it (its `uint8`).
pub(crate) const REFUNDED: u8 = lumen_chain::contracts::JobStatus::Refunded as u8;
/// A batch delay no test waits for.
const HOUR_MS: u64 = 3_600_000;

/// A node key and the wallet it is bound to.
pub(crate) struct Node {
    pub(crate) key: PrivateKeySigner,
    pub(crate) owner: PrivateKeySigner,
}

impl Node {
    pub(crate) fn address(&self) -> Address {
        self.key.address()
    }
}

pub(crate) struct World {
    pub(crate) chain: TestChain,
    pub(crate) store: Store,
    pub(crate) artist: PrivateKeySigner,
    pub(crate) a: Node,
    pub(crate) b: Node,
    _dir: TempDir,
}

impl World {
    pub(crate) async fn new() -> eyre::Result<Self> {
        // The indexer's log, shown with a failing test (`RUST_LOG` overrides).
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("indexer=info"));
        let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter(filter).try_init();
        let chain = TestChain::spawn_with(|admin| DeployConfig {
            fee_bps: FEE_BPS,
            cancel_grace: CANCEL_GRACE,
            ..DeployConfig::devnet(admin)
        })
        .await?;
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path()).await?;
        let a = Node { key: PrivateKeySigner::random(), owner: chain.account(4) };
        let b = Node { key: PrivateKeySigner::random(), owner: chain.account(5) };
        chain.bind_node(&a.owner, &a.key).await?;
        chain.bind_node(&b.owner, &b.key).await?;
        Ok(Self { artist: chain.account(3), chain, store, a, b, _dir: dir })
    }

    /// An indexer on this world with the settler key, configured by `tune`.
    pub(crate) fn indexer(&self, tune: impl FnOnce(&mut IndexerConfig)) -> Indexer {
        self.indexer_with(self.chain.settler(), tune)
    }

    /// An indexer that sends as `settler` (another key, or another RPC URL).
    pub(crate) fn indexer_with(&self, settler: Settler, tune: impl FnOnce(&mut IndexerConfig)) -> Indexer {
        let mut config = IndexerConfig::default();
        tune(&mut config);
        Indexer::new(self.store.clone(), Bus::new(), settler, &self.chain.deployment, config)
    }

    /// Turns Anvil's mining of each transaction as it arrives on or off
    /// (off: transactions wait in the pool for [`TestChain::mine`]).
    pub(crate) async fn automine(&self, on: bool) -> eyre::Result<()> {
        let _: serde_json::Value =
            self.escrow().provider().raw_request("evm_setAutomine".into(), [on]).await?;
        Ok(())
    }

    /// An indexer that releases whatever is verified at once.
    pub(crate) fn eager(&self) -> Indexer {
        self.indexer(|c| c.max_batch_delay_ms = 0)
    }

    /// An indexer that releases only once `frames` verified frames of a job
    /// wait (the batch delay is never reached in a test).
    pub(crate) fn batching(&self, frames: usize) -> Indexer {
        self.indexer(|c| {
            c.batch_frames = frames;
            c.max_batch_delay_ms = HOUR_MS;
        })
    }

    /// Opens a job of `frames` frames on-chain as the artist.
    pub(crate) async fn open(&self, frames: u32) -> eyre::Result<OpenedJob> {
        self.chain.open_job(&self.artist, SPEC, PRICE, frames, DAY).await
    }

    /// The registration that matches a job opened by [`World::open`].
    pub(crate) fn registration(&self, job_id: JobId, frames: u32) -> NewJob {
        let mut job = lumen_testkit::new_job(job_id, ContentHash::of(b"scene.blend"), frames);
        job.artist = self.artist.address();
        job.spec_hash = SPEC;
        job.price_per_frame = Wei::from(PRICE);
        job.token = Address::ZERO;
        job
    }

    /// Registers a job in the store, as the gateway does.
    pub(crate) async fn register(&self, job: &NewJob) -> eyre::Result<()> {
        assert_eq!(self.store.put_blob(b"scene.blend").await?, job.blend_hash);
        self.store.insert_job(job).await?;
        Ok(())
    }

    /// Opens and registers a matching job, and has `indexer` confirm it.
    pub(crate) async fn confirmed_job(&self, indexer: &Indexer, frames: u32) -> eyre::Result<OpenedJob> {
        let opened = self.open(frames).await?;
        self.register(&self.registration(opened.job_id, frames)).await?;
        assert_eq!(self.state(opened.job_id).await, JobState::AwaitingChain);
        round(indexer).await;
        assert_eq!(self.state(opened.job_id).await, JobState::Rendering);
        Ok(opened)
    }

    /// Renders frame `index` on `node` and has the verifier judge it.
    async fn render(&self, job: JobId, index: u32, node: &Node, verdict: &Verdict) -> eyre::Result<()> {
        self.render_as(job, index, node, TaskRole::Primary, verdict).await
    }

    /// Renders frame `index` on `node` in `role` and has the verifier judge it.
    async fn render_as(
        &self,
        job: JobId,
        index: u32,
        node: &Node,
        role: TaskRole,
        verdict: &Verdict,
    ) -> eyre::Result<()> {
        let task = self
            .store
            .claim_render(
                job,
                FrameIndex(index),
                &lumen_testkit::renderer(node.address()),
                role,
                now_ms() + 60_000,
            )
            .await?
            .ok_or_else(|| eyre::eyre!("frame {index} of job {job} cannot be claimed"))?;
        let output = format!("frame {index} of job {job} by {}", node.address());
        let hash = self.store.put_blob(output.as_bytes()).await?;
        let result = FrameResult { jobId: job.to_u256(), frameIndex: index, outputHash: hash.to_b256() };
        let d = &self.chain.deployment;
        let signature = sign_digest(&node.key, result_digest(&result, d.chain_id, d.escrow)).await?;
        assert!(self.store.record_upload(task.task_id, hash).await?);
        assert!(self.store.record_result(task.task_id, hash, &signature, 1.5).await?);
        assert!(self.store.record_verdict(task.task_id, verdict).await?);
        Ok(())
    }

    /// Frame `index` rendered by `node` and accepted: verified.
    pub(crate) async fn verify(&self, job: JobId, index: u32, node: &Node) -> eyre::Result<()> {
        self.render(job, index, node, &Verdict::Accepted).await
    }

    /// Frame `index` sampled: rendered by `first`, then by `second` as its
    /// verification render, both accepted (they agreed): verified.
    pub(crate) async fn verify_twice(
        &self,
        job: JobId,
        index: u32,
        first: &Node,
        second: &Node,
    ) -> eyre::Result<()> {
        self.store.set_renders_wanted(job, FrameIndex(index), 2).await?;
        self.render_as(job, index, first, TaskRole::Primary, &Verdict::Accepted).await?;
        self.render_as(job, index, second, TaskRole::Verification, &Verdict::Accepted).await
    }

    /// Frame `index` rendered by `node` and rejected: pending again.
    pub(crate) async fn reject(&self, job: JobId, index: u32, node: &Node) -> eyre::Result<()> {
        let verdict = Verdict::Rejected { code: "all_black".into(), message: "every pixel is black".into() };
        self.render(job, index, node, &verdict).await
    }

    /// Frame `index` failed for good.
    pub(crate) async fn fail(&self, job: JobId, index: u32) -> eyre::Result<()> {
        let cancelled = self.store.fail_frame(job, FrameIndex(index), "failed on 3 nodes").await?;
        assert!(cancelled.is_some(), "frame {index} of job {job} was already final");
        Ok(())
    }

    pub(crate) async fn state(&self, job: JobId) -> JobState {
        self.store.job(job).await.unwrap().unwrap().state
    }

    pub(crate) async fn failure(&self, job: JobId) -> Option<String> {
        self.store.job(job).await.unwrap().unwrap().failure
    }

    pub(crate) async fn payouts(&self, job: JobId) -> Vec<PayoutRow> {
        self.store.payouts(job).await.unwrap()
    }

    pub(crate) async fn verification_payouts(&self, job: JobId) -> Vec<PayoutRow> {
        self.store.verification_payouts(job).await.unwrap()
    }

    /// The mirrored events of `kind` of a job.
    pub(crate) async fn events(&self, job: JobId, kind: ChainEventKind) -> Vec<MirroredEvent> {
        let events = self.store.chain_events(Some(job)).await.unwrap();
        events.into_iter().filter(|e| e.event.kind() == kind).collect()
    }

    /// The amount of the job's mirrored `JobRefunded`, if any.
    pub(crate) async fn refunded(&self, job: JobId) -> Option<U256> {
        let events = self.events(job, ChainEventKind::JobRefunded).await;
        assert!(events.len() <= 1, "refunded twice: {events:?}");
        events.first().map(|e| match &e.event {
            ChainEvent::JobRefunded { amount, .. } => amount.get(),
            other => unreachable!("{other:?}"),
        })
    }

    /// The escrow, read (and called) as the settler.
    pub(crate) fn escrow(&self) -> RenderEscrowInstance<DynProvider> {
        RenderEscrow::new(self.chain.deployment.escrow, self.chain.provider(&self.chain.admin()))
    }

    /// The escrow as the artist.
    pub(crate) fn artist_escrow(&self) -> RenderEscrowInstance<DynProvider> {
        RenderEscrow::new(self.chain.deployment.escrow, self.chain.provider(&self.artist))
    }

    /// What `account` may withdraw from the escrow (native coin).
    pub(crate) async fn credits(&self, account: Address) -> U256 {
        self.escrow().credits(account, Address::ZERO).call().await.unwrap()
    }

    /// Protocol fees held for the treasury (native coin).
    pub(crate) async fn fees(&self) -> U256 {
        self.escrow().fees(Address::ZERO).call().await.unwrap()
    }

    /// The job's terms, from its JobOpened event (the escrow keeps their hash).
    pub(crate) async fn terms(&self, job: JobId) -> JobTerms {
        let d = &self.chain.deployment;
        let (terms, _) = find_terms(self.escrow().provider(), d.escrow, d.deploy_block, job)
            .await
            .unwrap()
            .expect("job exists");
        terms
    }

    /// The job's status in the escrow and what the escrow still holds for it.
    pub(crate) async fn onchain(&self, job: JobId) -> (u8, U256) {
        let d = &self.chain.deployment;
        let (_, state) = find_terms(self.escrow().provider(), d.escrow, d.deploy_block, job)
            .await
            .unwrap()
            .expect("job exists");
        (state.status, U256::from(state.remaining))
    }

    /// What the escrow still holds for a job.
    pub(crate) async fn remaining(&self, job: JobId) -> U256 {
        self.onchain(job).await.1
    }

    /// Whether the chain paid frame `index`: in the escrow's bitmap (a
    /// payment that kept the job open) or in a `FramesReleased` event (a
    /// closing payment writes no bitmap).
    pub(crate) async fn is_paid(&self, job: JobId, index: u64) -> bool {
        if self.escrow().isFramePaid(job.to_u256(), U256::from(index)).call().await.unwrap() {
            return true;
        }
        let filter = Filter::new()
            .address(self.chain.deployment.escrow)
            .event_signature(RenderEscrow::FramesReleased::SIGNATURE_HASH)
            .topic1(B256::from(job.to_u256()))
            .from_block(self.chain.deployment.deploy_block);
        let logs = self.escrow().provider().get_logs(&filter).await.unwrap();
        logs.iter().filter_map(|l| RenderEscrow::FramesReleased::decode_log(&l.inner).ok()).any(|e| {
            e.data.frames.iter().any(|set| {
                u64::from(set.wordIndex) == index / 256 && set.bits.bit(usize::try_from(index % 256).unwrap())
            })
        })
    }

    pub(crate) async fn balance(&self, account: Address) -> U256 {
        self.escrow().provider().get_balance(account).await.unwrap()
    }

    /// Transactions the settler has sent so far.
    pub(crate) async fn settler_nonce(&self) -> u64 {
        self.escrow().provider().get_transaction_count(self.chain.admin().address()).await.unwrap()
    }
}

/// `frames` frames' worth of the price.
pub(crate) fn price(frames: u64) -> U256 {
    U256::from(PRICE) * U256::from(frames)
}

/// The protocol fee the escrow takes from a release of `amount`.
pub(crate) fn fee(amount: U256) -> U256 {
    amount * U256::from(FEE_BPS) / U256::from(10_000)
}

/// What an owner is credited for `frames` frames.
pub(crate) fn net(frames: u64) -> U256 {
    price(frames) - fee(price(frames))
}

/// The payout row the mirror should hold for one frame rendered by `node`.
pub(crate) fn payout_of(
    job: JobId,
    index: u32,
    node: &Node,
) -> (JobId, FrameIndex, Address, Address, Wei, Wei) {
    (job, FrameIndex(index), node.address(), node.owner.address(), Wei(price(1)), Wei(fee(price(1))))
}

/// The comparable part of payout rows (everything but where they were mined).
pub(crate) fn summary(rows: &[PayoutRow]) -> Vec<(JobId, FrameIndex, Address, Address, Wei, Wei)> {
    rows.iter().map(|p| (p.job_id, p.frame_index, p.node, p.owner, p.amount, p.fee)).collect()
}

/// What a transaction cost its sender in gas.
pub(crate) fn gas_cost(receipt: &TransactionReceipt) -> U256 {
    U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price)
}

/// How long a round may take before the test fails instead of hanging.
const ROUND_LIMIT: Duration = Duration::from_secs(15);

/// One indexer round. A round waits for the receipts of what it sends, so
/// a transaction that is never mined (a nonce gap) would hang the test:
/// it fails it instead.
pub(crate) async fn round(indexer: &Indexer) {
    match tokio::time::timeout(ROUND_LIMIT, indexer.round()).await {
        Ok(done) => done.unwrap(),
        Err(_) => panic!("an indexer round is stuck: a settler transaction is never mined"),
    }
}

/// A TCP relay to Anvil that can be cut: a real network failure between the
/// indexer and its RPC, Anvil itself untouched.
pub(crate) struct Relay {
    pub(crate) url: String,
    up: Arc<AtomicBool>,
    cut: Arc<std::sync::Mutex<CancellationToken>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub(crate) async fn to(upstream: &str) -> eyre::Result<Self> {
        let upstream = tokio::net::lookup_host(upstream.trim_start_matches("http://").trim_end_matches('/'))
            .await?
            .next()
            .ok_or_else(|| eyre::eyre!("{upstream} resolves to nothing"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let task = tokio::spawn({
            let (up, cut) = (up.clone(), cut.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue; // dropped: the connection is refused as soon as it opens
                    }
                    let cancelled = cut.lock().unwrap().clone();
                    tokio::spawn(async move {
                        let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else { return };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            () = cancelled.cancelled() => {}
                        }
                    });
                }
            }
        });
        Ok(Self { url, up, cut, _task: task })
    }

    /// Cuts every open connection and refuses new ones.
    pub(crate) fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut cut = self.cut.lock().unwrap();
        cut.cancel();
        *cut = CancellationToken::new();
    }

    pub(crate) fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
