//! Packing verified frames into `RenderEscrow.release` frame sets.
//!
//! The escrow pays frames in 256-frame bitmap words: a `FrameSet { node,
//! wordIndex, bits }` pays every frame index `wordIndex * 256 + i` whose bit
//! `i` is set to the owner bound to `node`. One word per node keeps a
//! 256-frame batch to a few hundred bytes of calldata.

use std::collections::{BTreeMap, btree_map::Entry};

use alloy::primitives::{Address, U256};

use crate::{ChainError, ChainResult, contracts::escrow::IRenderEscrow::FrameSet};

pub use lumen_protocol::event::WORD_BITS;
use lumen_protocol::{FrameIndex, event::FrameWord};

/// Groups `(node, frame index)` pairs of one job into frame sets, ordered by
/// word then node (the order the contract handles cheapest). A frame may be
/// named once only, and every index must be below `frame_count`.
pub fn pack(
    frames: impl IntoIterator<Item = (Address, u32)>,
    frame_count: u32,
) -> ChainResult<Vec<FrameSet>> {
    let mut owner_of_frame: BTreeMap<u32, Address> = BTreeMap::new();
    let mut sets: BTreeMap<(u32, Address), FrameWord> = BTreeMap::new();
    for (node, index) in frames {
        if index >= frame_count {
            return Err(ChainError::InvalidFrames(format!(
                "frame index {index} is outside the job's {frame_count} frames"
            )));
        }
        match owner_of_frame.entry(index) {
            Entry::Occupied(_) => {
                return Err(ChainError::InvalidFrames(format!("frame index {index} named twice")));
            }
            Entry::Vacant(slot) => {
                slot.insert(node);
            }
        }
        let frame = FrameIndex(index);
        let word = sets.entry((index / WORD_BITS, node)).or_insert_with(|| FrameWord::containing(frame));
        word.insert(frame);
    }
    Ok(sets
        .into_iter()
        .map(|((_, node), word)| FrameSet { node, wordIndex: word.index, bits: word.bits })
        .collect())
}

/// The frame indices a bitmap word pays, in ascending order.
pub fn unpack(word_index: u32, bits: U256) -> impl Iterator<Item = u32> {
    FrameWord { index: word_index, bits }.frames().map(|i| i.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    #[test]
    fn groups_by_word_and_node() {
        let sets = pack([(node(2), 0), (node(1), 1), (node(2), 300), (node(2), 5)], 400).unwrap();
        assert_eq!(sets.len(), 3);
        assert_eq!((sets[0].wordIndex, sets[0].node), (0, node(1)));
        assert_eq!(sets[0].bits, U256::from(1u8) << 1);
        assert_eq!((sets[1].wordIndex, sets[1].node), (0, node(2)));
        assert_eq!(sets[1].bits, U256::from(1u8) | (U256::from(1u8) << 5));
        assert_eq!((sets[2].wordIndex, sets[2].node), (1, node(2)));
        assert_eq!(unpack(1, sets[2].bits).collect::<Vec<_>>(), vec![300]);
    }

    #[test]
    fn rejects_duplicates_and_out_of_range() {
        let err = pack([(node(1), 3), (node(2), 3)], 10).unwrap_err();
        assert!(err.to_string().contains("named twice"), "{err}");
        let err = pack([(node(1), 10)], 10).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn pack_then_unpack_roundtrips(
            frames in proptest::collection::btree_map(0u32..2_000, 0u8..5, 0..300)
        ) {
            let sets = pack(frames.iter().map(|(i, n)| (node(*n), *i)), 2_000).unwrap();
            let mut seen = BTreeMap::new();
            for set in &sets {
                proptest::prop_assert!(!set.bits.is_zero());
                for index in unpack(set.wordIndex, set.bits) {
                    proptest::prop_assert!(seen.insert(index, set.node).is_none());
                }
            }
            let expected: BTreeMap<u32, Address> = frames.iter().map(|(i, n)| (*i, node(*n))).collect();
            proptest::prop_assert_eq!(seen, expected);
        }
    }
}
