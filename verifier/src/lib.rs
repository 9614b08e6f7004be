//! The verifier: decodes every rendered frame and rejects corrupt ones
//! (undecodable, wrong size, black or uniform, NaN), and compares redundant
//! renders of sampled frames by pixels.
//!
//! The checks are pure, synchronous code; [`service`] runs them on every
//! uploaded result (in `spawn_blocking`, since decoding takes milliseconds).
//!
//! - [`check_frame`] checks one uploaded frame against its job's
//!   [`FrameExpectation`] and returns a [`CheckResult`]: accepted with
//!   [`FrameStats`], or rejected with a [`Rejection`] carrying a stable code
//!   (`too_large`, `undecodable`, `wrong_size`, `all_black`,
//!   `all_transparent`, `uniform`, `non_finite`).
//! - [`compare_frames`] compares two nodes' renders of the same frame by
//!   decoded pixels under a [`Tolerance`] and returns a [`Comparison`]
//!   (PSNR, differences, whether they match), or a [`CompareError`].
//!
//! - [`preview::make_preview`] makes the reduced, watermarked preview of an
//!   accepted frame that its artist sees until the frame is paid.
//!
//! Formats are detected from magic bytes: PNG (8/16-bit), single-part
//! OpenEXR (half/float) and JPEG. Header dimensions are checked before any
//! pixel memory is allocated, so forged headers cost nothing.

pub mod check;
pub mod compare;
pub mod error;
pub mod preview;
pub mod service;
pub mod vote;

pub use check::{CheckResult, FrameExpectation, FrameFormat, FrameStats, Rejection, check_frame};
pub use compare::{Comparison, Tolerance, compare_frames};
pub use error::{CompareError, CompareResult, Side};
pub use service::{VerifierConfig, VerifierError, VerifierHandle, VerifierService, spawn};
