//! The states of jobs, frames and render tasks, and the transitions allowed
//! between them, written once.
//!
//! Every state has one wire name (lower-case, `snake_case`), defined here by
//! [`wire_enum!`] and used unchanged by the JSON API, the database, the CLI
//! and the dashboard. Who moves each state, and the diagram, are in
//! `docs/domain.md`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Declares an enum whose variants each have one wire name, with
/// `as_str`/`ALL`, `Display`, `FromStr` and serde built from that name.
#[macro_export]
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident : $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The wire name (JSON, database, CLI output).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $wire, )+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::types::ParseError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == text)
                    .ok_or_else(|| $crate::types::ParseError { kind: $kind, value: text.chars().take(80).collect() })
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(::serde::de::Error::custom)
            }
        }

        $crate::sql_text_type!($name);
    };
}

wire_enum! {
    /// Where a job stands.
    pub enum JobState: "job state" {
        /// Registered by the artist; the matching `JobOpened` event is not yet seen.
        AwaitingChain = "awaiting_chain",
        /// Funded on-chain; frames are being rendered and verified.
        Rendering = "rendering",
        /// Every frame is final; releases, close and refund are under way.
        Settling = "settling",
        /// Every frame verified and paid, job closed and refunded on-chain.
        Completed = "completed",
        /// Ended with frames that failed for good: verified frames paid, the rest refunded.
        Failed = "failed",
        /// The chain does not back the job as registered (spec hash, amount or artist differ).
        Rejected = "rejected",
    }
}

impl JobState {
    /// Whether nothing more will happen to the job.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Rejected)
    }

    /// Whether a job may move from `self` to `to`. The store refuses any
    /// other move. A confirmed job goes back to `awaiting_chain` when a
    /// reorg takes its `JobOpened` away or gives its id to another spec.
    pub const fn can_become(self, to: Self) -> bool {
        use JobState::*;
        matches!(
            (self, to),
            (AwaitingChain, Rendering | Rejected)
                | (Rendering, Settling | Completed | Failed | AwaitingChain)
                | (Settling, Completed | Failed | AwaitingChain)
        )
    }
}

wire_enum! {
    /// Where a frame stands. A frame needs `wanted` accepted renders (one,
    /// more when it is sampled for verification); its state follows from
    /// its tasks ([`FrameState::derive`]).
    pub enum FrameState: "frame state" {
        /// A render of it waits for a node.
        Pending = "pending",
        /// Every render it needs is assigned; at least one is running.
        Rendering = "rendering",
        /// Every render it needs is uploaded or judged; verdicts are pending.
        Verifying = "verifying",
        /// Enough renders were accepted: it will be paid.
        Verified = "verified",
        /// Failed for good; never paid.
        Failed = "failed",
    }
}

impl FrameState {
    /// Whether the frame will not change any more.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Verified | Self::Failed)
    }

    /// The state of a frame that is not failed, from how many renders it
    /// wants and the states of its tasks (every attempt, any order).
    pub fn derive(wanted: u32, tasks: impl IntoIterator<Item = TaskState>) -> Self {
        let (mut running, mut uploaded, mut accepted) = (0u32, 0u32, 0u32);
        for state in tasks {
            match state {
                TaskState::Running => running += 1,
                TaskState::Uploaded | TaskState::Checked => uploaded += 1,
                TaskState::Accepted => accepted += 1,
                TaskState::Rejected | TaskState::Failed | TaskState::Lost | TaskState::Cancelled => {}
            }
        }
        let wanted = wanted.max(1);
        if accepted >= wanted && running == 0 && uploaded == 0 {
            Self::Verified
        } else if running + uploaded + accepted < wanted {
            Self::Pending
        } else if running > 0 {
            Self::Rendering
        } else {
            Self::Verifying
        }
    }
}

wire_enum! {
    /// Where one render attempt stands.
    pub enum TaskState: "task state" {
        /// Dispatched to the node.
        Running = "running",
        /// Result signed and uploaded; waiting for the verifier.
        Uploaded = "uploaded",
        /// The output passed the integrity checks; it waits for the other
        /// renders of its sampled frame to be compared with.
        Checked = "checked",
        /// The verifier accepted the output.
        Accepted = "accepted",
        /// The verifier rejected the output.
        Rejected = "rejected",
        /// The node reported a failure, or its result was invalid.
        Failed = "failed",
        /// The node disconnected, went silent or overran its lease.
        Lost = "lost",
        /// Stopped because the frame or the job ended.
        Cancelled = "cancelled",
    }
}

impl TaskState {
    /// Whether the attempt is over. (An accepted render can still be
    /// revoked while unpaid, when its node is proven to cheat.)
    pub const fn is_final(self) -> bool {
        !matches!(self, Self::Running | Self::Uploaded | Self::Checked)
    }

    /// Whether the attempt still holds one of its frame's renders (running,
    /// waiting for a verdict, or accepted).
    pub const fn holds_render(self) -> bool {
        matches!(self, Self::Running | Self::Uploaded | Self::Checked | Self::Accepted)
    }

    /// Whether it counts as the node failing the frame (render error,
    /// invalid result, rejected output); a lost or cancelled task does not.
    pub const fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::Rejected)
    }

    /// Whether a task may move from `self` to `to`. `accepted → rejected`
    /// is the revocation of an unpaid render whose node was proven to cheat.
    pub const fn can_become(self, to: Self) -> bool {
        use TaskState::*;
        matches!(
            (self, to),
            (Running, Uploaded | Failed | Lost | Cancelled)
                | (Uploaded, Checked | Accepted | Rejected | Cancelled)
                | (Checked, Accepted | Rejected | Cancelled)
                | (Accepted, Rejected)
        )
    }
}

wire_enum! {
    /// Why a task exists: the frame's first render, or an independent render
    /// that checks another.
    pub enum TaskRole: "task role" {
        /// The render that is paid when accepted.
        Primary = "primary",
        /// An independent render of a sampled frame by another node, compared with the primary.
        Verification = "verification",
        /// A third render that settles a disagreement between the first two.
        Arbitration = "arbitration",
    }
}

wire_enum! {
    /// Where the on-chain slash of a node caught cheating stands.
    pub enum SlashState: "slash state" {
        /// The settler has yet to slash it.
        Pending = "pending",
        /// Slashed on-chain (the transaction is recorded).
        Slashed = "slashed",
        /// Nothing to slash: the node has no stake left.
        NoStake = "no_stake",
        /// The slash reverts for a reason it cannot pass as it is (the
        /// ban's `slash_failure`): not tried again until an operator
        /// unparks it.
        Parked = "parked",
    }
}

wire_enum! {
    /// The verifier's word on one uploaded render.
    pub enum VerdictKind: "verdict" {
        /// The output is a good frame.
        Accepted = "accepted",
        /// The output is corrupt, or lost a comparison.
        Rejected = "rejected",
    }
}

/// The verifier's verdict on one uploaded render.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The frame is good.
    Accepted,
    /// The frame is corrupt or disagrees with the frame's other renders.
    Rejected {
        /// Stable rejection code (`all_black`, `wrong_size`, …).
        code: String,
        /// Detail.
        message: String,
    },
}

impl Verdict {
    /// Accepted or rejected.
    pub const fn kind(&self) -> VerdictKind {
        match self {
            Self::Accepted => VerdictKind::Accepted,
            Self::Rejected { .. } => VerdictKind::Rejected,
        }
    }

    /// The state a judged task ends in.
    pub const fn task_state(&self) -> TaskState {
        match self {
            Self::Accepted => TaskState::Accepted,
            Self::Rejected { .. } => TaskState::Rejected,
        }
    }
}

impl fmt::Display for Verdict {
    /// `accepted`, or `rejected: <code>` (the frame view's `verdict` field).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Accepted => f.write_str(VerdictKind::Accepted.as_str()),
            Self::Rejected { code, .. } => write!(f, "{}: {code}", VerdictKind::Rejected),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_pinned() {
        let names = |all: &[&str]| all.join(",");
        assert_eq!(
            names(&JobState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
            "awaiting_chain,rendering,settling,completed,failed,rejected"
        );
        assert_eq!(
            names(&FrameState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
            "pending,rendering,verifying,verified,failed"
        );
        assert_eq!(
            names(&TaskState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
            "running,uploaded,checked,accepted,rejected,failed,lost,cancelled"
        );
        assert_eq!(serde_json::to_string(&JobState::AwaitingChain).unwrap(), "\"awaiting_chain\"");
        assert_eq!(serde_json::from_str::<FrameState>("\"verified\"").unwrap(), FrameState::Verified);
        assert!(serde_json::from_str::<FrameState>("\"Verified\"").is_err());
        assert_eq!("lost".parse::<TaskState>().unwrap(), TaskState::Lost);
        let verdict = Verdict::Rejected { code: "all_black".into(), message: "black".into() };
        assert_eq!(verdict.to_string(), "rejected: all_black");
        assert_eq!(Verdict::Accepted.to_string(), "accepted");
    }

    #[test]
    fn final_states_go_nowhere() {
        for from in JobState::ALL.iter().filter(|s| s.is_final()) {
            assert!(JobState::ALL.iter().all(|to| !from.can_become(*to)), "{from}");
        }
        for from in TaskState::ALL.iter().filter(|s| s.is_final() && **s != TaskState::Accepted) {
            assert!(TaskState::ALL.iter().all(|to| !from.can_become(*to)), "{from}");
        }
        // An accepted render can only be revoked.
        let revocable: Vec<_> =
            TaskState::ALL.iter().filter(|to| TaskState::Accepted.can_become(**to)).collect();
        assert_eq!(revocable, [&TaskState::Rejected]);
        assert!(JobState::AwaitingChain.can_become(JobState::Rendering));
        // Only a reorg sends a confirmed job back, and never a finished one.
        assert!(JobState::Rendering.can_become(JobState::AwaitingChain));
        assert!(JobState::Settling.can_become(JobState::AwaitingChain));
        assert!(!JobState::Completed.can_become(JobState::AwaitingChain));
        assert!(!TaskState::Running.can_become(TaskState::Accepted), "results are verified first");
    }

    #[test]
    fn frame_state_follows_its_tasks() {
        use TaskState::*;
        assert_eq!(FrameState::derive(1, []), FrameState::Pending);
        assert_eq!(FrameState::derive(1, [Running]), FrameState::Rendering);
        assert_eq!(FrameState::derive(1, [Lost, Running]), FrameState::Rendering);
        assert_eq!(FrameState::derive(1, [Uploaded]), FrameState::Verifying);
        assert_eq!(FrameState::derive(1, [Rejected]), FrameState::Pending);
        assert_eq!(FrameState::derive(1, [Rejected, Accepted]), FrameState::Verified);
        // A sampled frame wants two independent accepted renders.
        assert_eq!(FrameState::derive(2, [Running]), FrameState::Pending);
        assert_eq!(FrameState::derive(2, [Running, Running]), FrameState::Rendering);
        assert_eq!(FrameState::derive(2, [Accepted, Running]), FrameState::Rendering);
        assert_eq!(FrameState::derive(2, [Accepted, Uploaded]), FrameState::Verifying);
        assert_eq!(FrameState::derive(2, [Accepted, Accepted]), FrameState::Verified);
        assert_eq!(FrameState::derive(2, [Accepted, Rejected]), FrameState::Pending);
        // Checked renders wait for their comparison.
        assert_eq!(FrameState::derive(2, [Checked, Running]), FrameState::Rendering);
        assert_eq!(FrameState::derive(2, [Checked, Checked]), FrameState::Verifying);
        assert_eq!(FrameState::derive(3, [Checked, Checked]), FrameState::Pending);
        assert_eq!(FrameState::derive(2, [Accepted, Accepted, Rejected]), FrameState::Verified);
    }
}
