//! Identifiers, content hashes and amounts: the values every Lumen component
//! passes around, as types rather than strings.
//!
//! On the wire (JSON) ids are numbers, hashes `0x`-prefixed lower-case hex
//! and wei amounts decimal strings (they exceed what JSON numbers carry
//! exactly). In the database ids are integers and hashes and amounts text in
//! the same forms (see the `sqlx` feature).

use std::{fmt, str::FromStr};

use alloy_primitives::{B256, U256};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value that is not a valid id, hash or amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {value:?}")]
pub struct ParseError {
    /// What was being parsed.
    pub kind: &'static str,
    /// The offending text (cut to 80 characters).
    pub value: String,
}

impl ParseError {
    pub(crate) fn new(kind: &'static str, value: &str) -> Self {
        Self { kind, value: value.chars().take(80).collect() }
    }
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident($inner:ty), $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl $name {
            /// The raw number.
            pub const fn get(self) -> $inner {
                self.0
            }
        }

        impl From<$inner> for $name {
            fn from(value: $inner) -> Self {
                Self(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = ParseError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.trim().parse().map(Self).map_err(|_| ParseError::new($kind, text))
            }
        }
    };
}

id_type!(
    /// A job's id: the escrow's `jobId`, assigned by `openJob`.
    JobId(u64),
    "job id"
);
id_type!(
    /// One render attempt of one frame on one node, assigned by the gateway.
    TaskId(u64),
    "task id"
);
id_type!(
    /// A frame's 0-based position within its job: what the escrow's release
    /// bitmaps pay. (The Blender frame number is a plain `i32`.)
    FrameIndex(u32),
    "frame index"
);

impl JobId {
    /// The id as the contracts take it.
    pub fn to_u256(self) -> U256 {
        U256::from(self.0)
    }

    /// The id of a contract value, if it fits 64 bits (the escrow counts
    /// from 1 and one at a time, so every real id does).
    pub fn from_u256(value: U256) -> Option<Self> {
        u64::try_from(value).ok().map(Self)
    }
}

impl FrameIndex {
    /// As a `usize`, for indexing.
    pub fn as_usize(self) -> usize {
        self.0 as usize
    }
}

/// The blake3 hash of some content (a `.blend`, a frame): its name in the
/// blob store, in dispatches and in signed results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentHash(pub B256);

impl ContentHash {
    /// Hashes content the way every Lumen component does (blake3, 32 bytes).
    pub fn of(bytes: &[u8]) -> Self {
        Self(B256::from(*blake3::hash(bytes).as_bytes()))
    }

    /// The hash as 32 bytes, as the EIP-712 messages carry it.
    pub const fn to_b256(self) -> B256 {
        self.0
    }

    /// Lower-case hex without the `0x` prefix (file names in the blob store).
    pub fn to_hex(self) -> String {
        format!("{:x}", self.0)
    }
}

/// Hashes content that arrives in pieces (an upload, a download, a file
/// read in chunks) to the same [`ContentHash`] as [`ContentHash::of`] on
/// the whole.
#[derive(Debug, Clone, Default)]
pub struct ContentHasher(blake3::Hasher);

impl ContentHasher {
    /// A hasher over nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next piece.
    pub fn update(&mut self, piece: &[u8]) {
        self.0.update(piece);
    }

    /// The hash of everything added.
    pub fn finalize(&self) -> ContentHash {
        ContentHash(B256::from(*self.0.finalize().as_bytes()))
    }
}

impl From<B256> for ContentHash {
    fn from(value: B256) -> Self {
        Self(value)
    }
}

impl From<ContentHash> for B256 {
    fn from(value: ContentHash) -> Self {
        value.0
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl FromStr for ContentHash {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text.strip_prefix("0x").unwrap_or(text);
        if digits.len() != 64 {
            return Err(ParseError::new("content hash", text));
        }
        digits.parse::<B256>().map(Self).map_err(|_| ParseError::new("content hash", text))
    }
}

impl Serialize for ContentHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Hashes content the way every Lumen component does (blake3, 32 bytes).
pub fn content_hash(bytes: &[u8]) -> ContentHash {
    ContentHash::of(bytes)
}

/// An amount of the native coin or of an ERC-20, in its smallest unit.
/// Decimal on the wire and in the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Wei(pub U256);

impl Wei {
    /// Nothing.
    pub const ZERO: Self = Self(U256::ZERO);

    /// The raw value.
    pub const fn get(self) -> U256 {
        self.0
    }

    /// Whether it is zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// `self × n`, `None` on overflow.
    pub fn checked_mul(self, n: u64) -> Option<Self> {
        self.0.checked_mul(U256::from(n)).map(Self)
    }

    /// `self - other`, or `None` below zero.
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }

    /// `self + other`, `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    /// `self − other`, clamped at zero.
    pub fn saturating_sub(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }
}

impl From<U256> for Wei {
    fn from(value: U256) -> Self {
        Self(value)
    }
}

impl From<u128> for Wei {
    fn from(value: u128) -> Self {
        Self(U256::from(value))
    }
}

impl From<Wei> for U256 {
    fn from(value: Wei) -> Self {
        value.0
    }
}

impl std::ops::Add for Wei {
    type Output = Self;

    /// Panics on overflow, like integer addition in debug builds: amounts of
    /// one chain never come near 2^256.
    fn add(self, other: Self) -> Self {
        self.checked_add(other).expect("wei amounts never overflow 256 bits")
    }
}

impl std::ops::AddAssign for Wei {
    fn add_assign(&mut self, other: Self) {
        *self = *self + other;
    }
}

impl std::iter::Sum for Wei {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::ZERO, |a, b| a + b)
    }
}

impl fmt::Display for Wei {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Wei {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::new("wei amount", text));
        }
        U256::from_str_radix(text, 10).map(Self).map_err(|_| ParseError::new("wei amount", text))
    }
}

impl Serialize for Wei {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Wei {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pieces_hash_like_the_whole() {
        let mut hasher = super::ContentHasher::new();
        for piece in [&b"a frame "[..], b"in ", b"", b"pieces"] {
            hasher.update(piece);
        }
        assert_eq!(hasher.finalize(), super::content_hash(b"a frame in pieces"));
    }

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn wire_forms_are_pinned() {
        let hash = ContentHash::of(b"frame");
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(json, format!("\"0x{}\"", hash.to_hex()));
        assert_eq!(serde_json::from_str::<ContentHash>(&json).unwrap(), hash);
        assert_eq!(
            serde_json::to_string(&Wei::from(10u128.pow(24))).unwrap(),
            "\"1000000000000000000000000\""
        );
        assert_eq!(serde_json::to_string(&JobId(7)).unwrap(), "7");
        assert_eq!(serde_json::to_string(&FrameIndex(3)).unwrap(), "3");
    }

    #[test]
    fn hostile_text_is_refused_not_defaulted() {
        for bad in ["", "0x", "0x12", "-1", "1e18", " 5", "0x00zz"] {
            assert!(bad.parse::<Wei>().is_err(), "{bad}");
            assert!(bad.parse::<ContentHash>().is_err(), "{bad}");
        }
        assert!("12a".parse::<JobId>().is_err());
        assert!(serde_json::from_str::<Wei>("\"-3\"").is_err());
        assert!(serde_json::from_str::<Wei>("3").is_err(), "amounts are strings on the wire");
    }

    proptest! {
        #[test]
        fn amounts_and_hashes_round_trip(limbs in any::<[u64; 4]>(), bytes in any::<[u8; 32]>()) {
            let wei = Wei(U256::from_limbs(limbs));
            prop_assert_eq!(wei.to_string().parse::<Wei>().unwrap(), wei);
            let hash = ContentHash(B256::from(bytes));
            prop_assert_eq!(hash.to_string().parse::<ContentHash>().unwrap(), hash);
        }
    }
}
