//! Errors of [`compare_frames`](crate::compare::compare_frames).
//!
//! Checking a single frame never fails: a bad frame is a
//! [`Rejection`](crate::check::Rejection), a verdict rather than an error.
//! Comparing two frames fails when either cannot be decoded or when their
//! sizes differ, because then there is nothing meaningful to compare.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which of the two frames handed to
/// [`compare_frames`](crate::compare::compare_frames) an error is about, so
/// the caller can blame the node that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The first frame (`a`).
    A,
    /// The second frame (`b`).
    B,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::A => "a",
            Self::B => "b",
        })
    }
}

/// Why two frames could not be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompareError {
    /// One frame is not a PNG, OpenEXR or JPEG image we can decode: wrong
    /// magic bytes, truncated or corrupt data, an unsupported variant.
    #[error("frame {side} cannot be decoded: {reason}")]
    Undecodable {
        /// The frame that failed.
        side: Side,
        /// What the decoder said.
        reason: String,
    },
    /// One frame's header claims more pixels than the verifier decodes
    /// (see [`MAX_DIMENSION`](crate::check::MAX_DIMENSION)); refused before
    /// any pixel memory is allocated.
    #[error("frame {side} is {width}x{height}, larger than the verifier decodes")]
    TooLarge {
        /// The frame that failed.
        side: Side,
        /// Width claimed by the header.
        width: u32,
        /// Height claimed by the header.
        height: u32,
    },
    /// Both frames decode, but their dimensions differ.
    #[error("frame sizes differ: a is {}x{}, b is {}x{}", a.0, a.1, b.0, b.1)]
    SizeMismatch {
        /// `(width, height)` of frame `a`.
        a: (u32, u32),
        /// `(width, height)` of frame `b`.
        b: (u32, u32),
    },
}

impl CompareError {
    /// The frame at fault, when the error is about one frame alone
    /// (`None` for a size mismatch: either node may be wrong, which the
    /// caller settles with [`check_frame`](crate::check::check_frame)).
    pub fn side(&self) -> Option<Side> {
        match self {
            Self::Undecodable { side, .. } | Self::TooLarge { side, .. } => Some(*side),
            Self::SizeMismatch { .. } => None,
        }
    }
}

/// Result of a frame comparison.
pub type CompareResult<T> = Result<T, CompareError>;
