//! What node operators earn: credits per job type (the operator guide's
//! table), earnings credited and withdrawn per owner and node, monthly
//! statements and the leaderboard. All of it is computed from the chain
//! mirror (`lumen-store`), except uptime, which the gateway records; see
//! `docs/earnings.md`.

use std::{fmt, str::FromStr};

use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};

use crate::{JobId, Wei, wire_enum};

wire_enum! {
    /// The kinds of work a node can be paid for, with the credits one
    /// completed job of that kind earns (the operator guide's table).
    pub enum JobType: "job type" {
        /// Rendering a frame of a `.blend` (a frame or its verification render).
        Render = "render",
        /// AI inference.
        Inference = "inference",
        /// A CPU benchmark.
        CpuBenchmark = "cpu_benchmark",
        /// A connectivity test.
        Echo = "echo",
    }
}

impl JobType {
    /// Credits earned per completed job of this type.
    pub const fn credits(self) -> u64 {
        match self {
            Self::Render => 10,
            Self::Inference => 5,
            Self::CpuBenchmark => 1,
            Self::Echo => 0,
        }
    }
}

wire_enum! {
    /// A leaderboard badge.
    pub enum Badge: "badge" {
        /// First place.
        Gold = "gold",
        /// Second place.
        Silver = "silver",
        /// Third place.
        Bronze = "bronze",
    }
}

impl Badge {
    /// The badge of 1-based rank `rank`, if any.
    pub const fn of_rank(rank: u32) -> Option<Self> {
        match rank {
            1 => Some(Self::Gold),
            2 => Some(Self::Silver),
            3 => Some(Self::Bronze),
            _ => None,
        }
    }
}

/// A calendar month (UTC), written `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: time::Month,
}

/// A month that is not `YYYY-MM`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a month: expected YYYY-MM, for example 2026-11")]
pub struct BadMonth(String);

impl Month {
    /// The month containing unix time `secs`.
    pub fn containing(secs: u64) -> Self {
        let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(i64::MAX))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Self { year: t.year(), month: t.month() }
    }

    /// Its first second and the first second of the next month, unix seconds.
    pub fn range(self) -> (u64, u64) {
        let start = |year: i32, month: time::Month| {
            time::Date::from_calendar_date(year, month, 1)
                .map(|d| d.midnight().assume_utc().unix_timestamp())
                .ok()
                .and_then(|t| u64::try_from(t).ok())
                .unwrap_or(0)
        };
        let (next_year, next) = if self.month == time::Month::December {
            (self.year + 1, time::Month::January)
        } else {
            (self.year, self.month.next())
        };
        (start(self.year, self.month), start(next_year, next))
    }

    /// Whether unix time `secs` falls in this month.
    pub fn contains(self, secs: u64) -> bool {
        let (from, to) = self.range();
        (from..to).contains(&secs)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, u8::from(self.month))
    }
}

impl FromStr for Month {
    type Err = BadMonth;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadMonth(s.to_owned());
        let (year, month) = s.split_once('-').ok_or_else(bad)?;
        if year.len() != 4
            || month.len() != 2
            || !(year.bytes().chain(month.bytes()).all(|b| b.is_ascii_digit()))
        {
            return Err(bad());
        }
        let year: i32 = year.parse().map_err(|_| bad())?;
        let month: u8 = month.parse().map_err(|_| bad())?;
        let month = time::Month::try_from(month).map_err(|_| bad())?;
        if year < 1970 {
            return Err(bad());
        }
        Ok(Self { year, month })
    }
}

impl Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Month {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An amount of one token (`address(0)`: the native coin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenAmount {
    /// The token.
    pub token: Address,
    /// How much of it.
    pub amount: Wei,
}

/// A payment token's symbol and decimals, as its contract says them
/// (`GET /api/v1/tokens`): what a page needs to show its amounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The token (`address(0)`: the native coin).
    pub token: Address,
    /// Its symbol (`ETH` for the native coin; `None` when the contract does not say).
    pub symbol: Option<String>,
    /// Its decimals (18 for the native coin; `None` when the contract does not say).
    pub decimals: Option<u8>,
}

/// Adds `amount` of `token` to `sums` (kept sorted by token).
pub fn add_to(sums: &mut Vec<TokenAmount>, token: Address, amount: Wei) {
    match sums.binary_search_by(|t| t.token.cmp(&token)) {
        Ok(i) => sums[i].amount += amount,
        Err(i) => sums.insert(i, TokenAmount { token, amount }),
    }
}

/// The amount of `token` in `sums`, zero if absent.
pub fn amount_of(sums: &[TokenAmount], token: Address) -> Wei {
    sums.iter().find(|t| t.token == token).map_or(Wei::ZERO, |t| t.amount)
}

/// What one node was paid, from the chain mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEarnings {
    /// The node.
    pub node: Address,
    /// The owner its pay was credited to (its last binding).
    pub owner: Address,
    /// Jobs completed: renders paid on-chain (frames and verification renders).
    pub jobs_completed: u64,
    /// Credits: `jobs_completed` × the credits of a render job.
    pub credits: u64,
    /// Earned (credited to the owner, fees deducted), per token.
    pub earned: Vec<TokenAmount>,
}

/// What an owner was paid and withdrew, from the chain mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerEarnings {
    /// The owner.
    pub owner: Address,
    /// Its nodes, by address.
    pub nodes: Vec<NodeEarnings>,
    /// Jobs completed by its nodes.
    pub jobs_completed: u64,
    /// Credits of its nodes.
    pub credits: u64,
    /// Earned, per token.
    pub earned: Vec<TokenAmount>,
    /// Withdrawn from the escrow, per token (withdrawals are per owner: the
    /// escrow credits owners, not nodes).
    pub withdrawn: Vec<TokenAmount>,
}

/// One line of a statement: what one node earned for one job in one
/// settlement transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLine {
    /// Block timestamp, unix seconds.
    pub time: u64,
    /// The job.
    pub job_id: JobId,
    /// The node.
    pub node: Address,
    /// The token the job paid in.
    pub token: Address,
    /// Frames paid.
    pub frames: u32,
    /// Verification renders paid.
    pub verification_renders: u32,
    /// Credits.
    pub credits: u64,
    /// Released from the job's lock.
    pub gross: Wei,
    /// Protocol fee.
    pub fee: Wei,
    /// Credited to the owner: gross − fee.
    pub net: Wei,
    /// The settlement transaction.
    pub tx_hash: B256,
    /// Its block.
    pub block_number: u64,
}

/// A withdrawal on a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawalLine {
    /// Block timestamp, unix seconds.
    pub time: u64,
    /// The token.
    pub token: Address,
    /// Amount withdrawn.
    pub amount: Wei,
    /// The transaction.
    pub tx_hash: B256,
    /// Its block.
    pub block_number: u64,
}

/// An owner's monthly statement, from the chain mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// The owner.
    pub owner: Address,
    /// The month (UTC).
    pub month: Month,
    /// Earnings, in chain order.
    pub lines: Vec<StatementLine>,
    /// Withdrawals, in chain order.
    pub withdrawals: Vec<WithdrawalLine>,
    /// Jobs completed in the month.
    pub jobs_completed: u64,
    /// Credits in the month.
    pub credits: u64,
    /// Earned in the month, per token.
    pub earned: Vec<TokenAmount>,
    /// Withdrawn in the month, per token.
    pub withdrawn: Vec<TokenAmount>,
}

impl Statement {
    /// The statement as CSV: a header, then one row per earning and per
    /// withdrawal, in chain order (amounts in the token's smallest unit).
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "time,kind,job_id,node,token,frames,verification_renders,credits,gross,fee,net,tx_hash,block_number\n",
        );
        let mut rows: Vec<(u64, u64, String)> = self
            .lines
            .iter()
            .map(|l| {
                (
                    l.block_number,
                    0,
                    format!(
                        "{},earning,{},{:#x},{:#x},{},{},{},{},{},{},{:#x},{}\n",
                        l.time,
                        l.job_id,
                        l.node,
                        l.token,
                        l.frames,
                        l.verification_renders,
                        l.credits,
                        l.gross,
                        l.fee,
                        l.net,
                        l.tx_hash,
                        l.block_number
                    ),
                )
            })
            .collect();
        rows.extend(self.withdrawals.iter().map(|w| {
            (
                w.block_number,
                1,
                format!(
                    "{},withdrawal,,,{:#x},,,,,,{},{:#x},{}\n",
                    w.time, w.token, w.amount, w.tx_hash, w.block_number
                ),
            )
        }));
        rows.sort_by_key(|r| (r.0, r.1));
        for (_, _, row) in rows {
            out.push_str(&row);
        }
        out
    }
}

/// One row of the leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderboardEntry {
    /// 1-based rank.
    pub rank: u32,
    /// Gold, silver or bronze for the first three.
    pub badge: Option<Badge>,
    /// The node.
    pub node: Address,
    /// Its owner.
    pub owner: Address,
    /// Renders paid on-chain (from the chain mirror).
    pub jobs_completed: u64,
    /// Credits (from the chain mirror).
    pub credits: u64,
    /// Earned, per token (from the chain mirror).
    pub earned: Vec<TokenAmount>,
    /// Share of the time since the node was first seen (at most the window)
    /// that it was connected and heartbeating, in percent (from the
    /// gateway's records, not the chain).
    pub uptime_percent: f64,
}

/// The leaderboard: nodes ranked by jobs completed, then uptime, then
/// earnings in the native coin, then address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    /// When it was computed, unix seconds.
    pub computed_at: u64,
    /// The window uptime is measured over, in days.
    pub uptime_window_days: u32,
    /// The rows, best first.
    pub entries: Vec<LeaderboardEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_follow_the_operator_guide() {
        assert_eq!(JobType::Render.credits(), 10);
        assert_eq!(JobType::Inference.credits(), 5);
        assert_eq!(JobType::CpuBenchmark.credits(), 1);
        assert_eq!(JobType::Echo.credits(), 0);
        assert_eq!("cpu_benchmark".parse::<JobType>().unwrap(), JobType::CpuBenchmark);
    }

    #[test]
    fn months_parse_strictly_and_span_their_days() {
        let m: Month = "2026-02".parse().unwrap();
        assert_eq!(m.to_string(), "2026-02");
        let (from, to) = m.range();
        assert_eq!(from, 1_769_904_000); // 2026-02-01T00:00:00Z
        assert_eq!(to - from, 28 * 86_400);
        assert!(m.contains(from) && !m.contains(to) && !m.contains(from - 1));
        let dec: Month = "2025-12".parse().unwrap();
        assert_eq!(dec.range().1, 1_767_225_600); // 2026-01-01
        assert_eq!(Month::containing(1_769_904_000 + 5), m);
        for bad in
            ["2026-13", "2026-00", "26-01", "2026-1", "2026/01", "", "1969-12", "2026-01-01", "２０２６-01"]
        {
            assert!(bad.parse::<Month>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn badges_go_to_the_first_three() {
        assert_eq!(Badge::of_rank(1), Some(Badge::Gold));
        assert_eq!(Badge::of_rank(3), Some(Badge::Bronze));
        assert_eq!(Badge::of_rank(4), None);
        assert_eq!(Badge::of_rank(0), None);
    }

    #[test]
    fn token_sums_stay_sorted_and_add_up() {
        let (a, b) = (Address::repeat_byte(2), Address::repeat_byte(1));
        let mut sums = Vec::new();
        add_to(&mut sums, a, Wei::from(5u128));
        add_to(&mut sums, b, Wei::from(1u128));
        add_to(&mut sums, a, Wei::from(2u128));
        assert_eq!(sums.iter().map(|t| t.token).collect::<Vec<_>>(), [b, a]);
        assert_eq!(amount_of(&sums, a), Wei::from(7u128));
        assert_eq!(amount_of(&sums, Address::ZERO), Wei::ZERO);
    }
}
