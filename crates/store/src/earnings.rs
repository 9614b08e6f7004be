//! Earnings, credits, monthly statements and the leaderboard, computed from
//! the chain mirror (`frame_payouts`, `verification_payouts` and the
//! mirrored `JobOpened` and `CreditsWithdrawn` events), so that anyone can
//! rebuild them from the chain; and node uptime, which the gateway records
//! (it is not on the chain).

use std::collections::{BTreeMap, HashMap};

use alloy_primitives::{Address, B256};
use lumen_protocol::{
    ChainEventKind, JobId, Wei,
    earnings::{
        Badge, JobType, Leaderboard, LeaderboardEntry, Month, NodeEarnings, OwnerEarnings, Statement,
        StatementLine, TokenAmount, WithdrawalLine, add_to, amount_of,
    },
};

use crate::{Hex, OptHex, Store, StoreResult};

/// Seconds in a day: uptime is recorded per node and unix day.
const DAY: u64 = 86_400;

/// One paid render (a frame or a verification render) with the token its
/// job paid in.
#[derive(Debug, sqlx::FromRow)]
struct PaidRender {
    job_id: JobId,
    #[sqlx(try_from = "Hex<Address>")]
    node: Address,
    #[sqlx(try_from = "Hex<Address>")]
    owner: Address,
    amount: Wei,
    fee: Wei,
    #[sqlx(try_from = "Hex<B256>")]
    tx_hash: B256,
    #[sqlx(try_from = "i64")]
    block_number: u64,
    #[sqlx(try_from = "i64")]
    block_time: u64,
    #[sqlx(try_from = "OptHex<Address>")]
    token: Option<Address>,
    verification: bool,
}

/// A mirrored `CreditsWithdrawn`.
#[derive(Debug, sqlx::FromRow)]
struct Withdrawal {
    #[sqlx(try_from = "OptHex<Address>")]
    token: Option<Address>,
    amount: Option<Wei>,
    #[sqlx(try_from = "Hex<B256>")]
    tx_hash: B256,
    #[sqlx(try_from = "i64")]
    block_number: u64,
    #[sqlx(try_from = "i64")]
    block_time: u64,
}

impl PaidRender {
    fn net(&self) -> Wei {
        Wei(self.amount.0.saturating_sub(self.fee.0))
    }

    /// Renders pay in the job's token; a job without a mirrored JobOpened
    /// cannot have been paid, so the native coin is only a fallback.
    fn token(&self) -> Address {
        self.token.unwrap_or(Address::ZERO)
    }
}

impl Store {
    /// Every paid render, in chain order.
    async fn paid_renders(&self, owner: Option<Address>) -> StoreResult<Vec<PaidRender>> {
        Ok(sqlx::query_as(
            "SELECT p.job_id AS job_id, p.node AS node, p.owner AS owner, p.amount AS amount, p.fee AS fee, \
             p.tx_hash AS tx_hash, p.block_number AS block_number, p.block_time AS block_time, e.token AS token, \
             FALSE AS verification \
             FROM frame_payouts p LEFT JOIN chain_events e ON e.kind = $1 AND e.job_id = p.job_id \
             WHERE ($2 IS NULL OR p.owner = $2) \
             UNION ALL \
             SELECT p.job_id, p.node, p.owner, p.amount, p.fee, p.tx_hash, p.block_number, p.block_time, e.token, \
             TRUE AS verification \
             FROM verification_payouts p LEFT JOIN chain_events e ON e.kind = $1 AND e.job_id = p.job_id \
             WHERE ($2 IS NULL OR p.owner = $2) \
             ORDER BY block_number, job_id, verification",
        )
            .bind(ChainEventKind::JobOpened)
            .bind(owner.map(Hex))
            .fetch_all(self.pool())
            .await?)
    }

    async fn withdrawals(&self, account: Address) -> StoreResult<Vec<Withdrawal>> {
        Ok(sqlx::query_as(
            "SELECT token, amount, tx_hash, block_number, block_time FROM chain_events \
             WHERE kind = $1 AND account = $2 ORDER BY block_number, log_index",
        )
        .bind(ChainEventKind::CreditsWithdrawn)
        .bind(Hex(account))
        .fetch_all(self.pool())
        .await?)
    }

    /// What every node that was ever paid earned, by node address.
    pub async fn node_earnings(&self) -> StoreResult<Vec<NodeEarnings>> {
        Ok(by_node(&self.paid_renders(None).await?))
    }

    /// What `owner`'s nodes earned and what it withdrew.
    pub async fn owner_earnings(&self, owner: Address) -> StoreResult<OwnerEarnings> {
        let renders = self.paid_renders(Some(owner)).await?;
        let nodes = by_node(&renders);
        let mut earned = Vec::new();
        for r in &renders {
            add_to(&mut earned, r.token(), r.net());
        }
        let mut withdrawn = Vec::new();
        for w in self.withdrawals(owner).await? {
            add_to(&mut withdrawn, w.token.unwrap_or(Address::ZERO), w.amount.unwrap_or(Wei::ZERO));
        }
        let jobs_completed = nodes.iter().map(|n| n.jobs_completed).sum();
        Ok(OwnerEarnings {
            owner,
            jobs_completed,
            credits: nodes.iter().map(|n| n.credits).sum(),
            nodes,
            earned,
            withdrawn,
        })
    }

    /// `owner`'s statement for `month`: one line per job, node and
    /// settlement transaction, and its withdrawals, by block time (UTC).
    pub async fn statement(&self, owner: Address, month: Month) -> StoreResult<Statement> {
        let renders = self.paid_renders(Some(owner)).await?;
        // (block, tx, job, node) → line, in chain order.
        let mut lines: BTreeMap<(u64, B256, JobId, Address), StatementLine> = BTreeMap::new();
        for r in renders.iter().filter(|r| month.contains(r.block_time)) {
            let line =
                lines.entry((r.block_number, r.tx_hash, r.job_id, r.node)).or_insert_with(|| StatementLine {
                    time: r.block_time,
                    job_id: r.job_id,
                    node: r.node,
                    token: r.token(),
                    frames: 0,
                    verification_renders: 0,
                    credits: 0,
                    gross: Wei::ZERO,
                    fee: Wei::ZERO,
                    net: Wei::ZERO,
                    tx_hash: r.tx_hash,
                    block_number: r.block_number,
                });
            if r.verification {
                line.verification_renders += 1;
            } else {
                line.frames += 1;
            }
            line.credits += JobType::Render.credits();
            line.gross += r.amount;
            line.fee += r.fee;
            line.net += r.net();
        }
        let lines: Vec<StatementLine> = lines.into_values().collect();
        let withdrawals: Vec<WithdrawalLine> = self
            .withdrawals(owner)
            .await?
            .into_iter()
            .filter(|w| month.contains(w.block_time))
            .map(|w| WithdrawalLine {
                time: w.block_time,
                token: w.token.unwrap_or(Address::ZERO),
                amount: w.amount.unwrap_or(Wei::ZERO),
                tx_hash: w.tx_hash,
                block_number: w.block_number,
            })
            .collect();
        let (mut earned, mut withdrawn) = (Vec::new(), Vec::new());
        for l in &lines {
            add_to(&mut earned, l.token, l.net);
        }
        for w in &withdrawals {
            add_to(&mut withdrawn, w.token, w.amount);
        }
        Ok(Statement {
            owner,
            month,
            jobs_completed: lines.iter().map(|l| u64::from(l.frames + l.verification_renders)).sum(),
            credits: lines.iter().map(|l| l.credits).sum(),
            lines,
            withdrawals,
            earned,
            withdrawn,
        })
    }

    /// The leaderboard at unix time `now`: every node paid on-chain or seen
    /// by the gateway, ranked by jobs completed, uptime over the last
    /// `window_days` (or since first seen, if later), native-coin earnings,
    /// then address; the first three get badges.
    pub async fn leaderboard(&self, now: u64, window_days: u32) -> StoreResult<Leaderboard> {
        let earnings = self.node_earnings().await?;
        let uptime = self.uptime(now, window_days).await?;
        let mut rows: HashMap<Address, LeaderboardEntry> = HashMap::new();
        for e in earnings {
            rows.insert(
                e.node,
                LeaderboardEntry {
                    rank: 0,
                    badge: None,
                    node: e.node,
                    owner: e.owner,
                    jobs_completed: e.jobs_completed,
                    credits: e.credits,
                    earned: e.earned,
                    uptime_percent: 0.0,
                },
            );
        }
        for (node, percent) in uptime {
            rows.entry(node)
                .or_insert_with(|| LeaderboardEntry {
                    rank: 0,
                    badge: None,
                    node,
                    owner: Address::ZERO,
                    jobs_completed: 0,
                    credits: 0,
                    earned: Vec::new(),
                    uptime_percent: 0.0,
                })
                .uptime_percent = percent;
        }
        let mut entries: Vec<LeaderboardEntry> = rows.into_values().collect();
        entries.sort_by(|a, b| {
            b.jobs_completed
                .cmp(&a.jobs_completed)
                .then(b.uptime_percent.total_cmp(&a.uptime_percent))
                .then(amount_of(&b.earned, Address::ZERO).cmp(&amount_of(&a.earned, Address::ZERO)))
                .then(a.node.cmp(&b.node))
        });
        for (i, e) in (1u32..).zip(entries.iter_mut()) {
            e.rank = i;
            e.badge = Badge::of_rank(i);
        }
        Ok(Leaderboard { computed_at: now, uptime_window_days: window_days, entries })
    }

    /// Records that `node` authenticated at `at_ms` (kept only the first time).
    pub async fn note_first_seen(&self, node: Address, at_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO node_first_seen (node, at_ms) VALUES ($1, $2) ON CONFLICT (node) DO NOTHING",
        )
        .bind(Hex(node))
        .bind(at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Adds `secs` of uptime at unix time `now` to each of `nodes`, in one
    /// transaction (the gateway calls this once a minute).
    pub async fn record_uptime(&self, nodes: &[Address], secs: u64, now: u64) -> StoreResult<()> {
        if nodes.is_empty() {
            return Ok(());
        }
        let day = i64::try_from(now / DAY).unwrap_or(i64::MAX);
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        let mut tx = self.pool().begin().await?;
        for node in nodes {
            sqlx::query(
                "INSERT INTO node_uptime (node, day, up_secs) VALUES ($1, $2, $3) \
                 ON CONFLICT (node, day) DO UPDATE SET up_secs = node_uptime.up_secs + excluded.up_secs",
            )
            .bind(Hex(*node))
            .bind(day)
            .bind(secs)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Uptime in percent per node seen: up time over the time since it was
    /// first seen, at most the last `window_days`, rounded to 0.1.
    pub async fn uptime(&self, now: u64, window_days: u32) -> StoreResult<Vec<(Address, f64)>> {
        let window_start = now.saturating_sub(u64::from(window_days) * DAY);
        let seen: Vec<(Hex<Address>, i64)> =
            sqlx::query_as("SELECT node, at_ms FROM node_first_seen").fetch_all(self.pool()).await?;
        let first_day = i64::try_from(window_start / DAY).unwrap_or(i64::MAX);
        let up: Vec<(Hex<Address>, i64)> =
            sqlx::query_as("SELECT node, SUM(up_secs) FROM node_uptime WHERE day >= $1 GROUP BY node")
                .bind(first_day)
                .fetch_all(self.pool())
                .await?;
        let up: HashMap<Address, u64> =
            up.into_iter().map(|(n, s)| (n.0, u64::try_from(s).unwrap_or(0))).collect();
        Ok(seen
            .into_iter()
            .map(|(node, at_ms)| {
                let first = u64::try_from(at_ms / 1_000).unwrap_or(0);
                let since = first.max(window_start);
                let elapsed = now.saturating_sub(since).max(1);
                let secs = up.get(&node.0).copied().unwrap_or(0).min(elapsed);
                // Both below 2^53 for any real clock: exact as f64.
                #[allow(clippy::cast_precision_loss)]
                let percent = (secs as f64 * 1_000.0 / elapsed as f64).round() / 10.0;
                (node.0, percent)
            })
            .collect())
    }
}

/// Paid renders summed per node (the owner: that of its latest payment).
fn by_node(renders: &[PaidRender]) -> Vec<NodeEarnings> {
    let mut nodes: BTreeMap<Address, NodeEarnings> = BTreeMap::new();
    for r in renders {
        let n = nodes.entry(r.node).or_insert_with(|| NodeEarnings {
            node: r.node,
            owner: r.owner,
            jobs_completed: 0,
            credits: 0,
            earned: Vec::<TokenAmount>::new(),
        });
        n.owner = r.owner;
        n.jobs_completed += 1;
        n.credits += JobType::Render.credits();
        add_to(&mut n.earned, r.token(), r.net());
    }
    nodes.into_values().collect()
}
