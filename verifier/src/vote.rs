//! Deciding a sampled frame from independent renders of it.
//!
//! Renders are compared pairwise ([`compare_frames`](crate::compare_frames));
//! [`tally`] turns the agreements into a decision: all agree; a group of
//! agreeing independent renders larger than any other outvotes the rest;
//! an undecided tally calls for one more render (arbitration); and at the
//! render cap with nothing decided, the scene itself does not render the
//! same way twice.

/// What the agreements between a frame's renders decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tally {
    /// Every render agrees with the chosen one: all are accepted.
    Agreed,
    /// One group of at least two agreeing renders (independent owners) is
    /// larger than any other: it is accepted, the rest are outvoted.
    Majority {
        /// Indices of the accepted renders.
        accepted: Vec<usize>,
        /// Indices of the outvoted renders.
        outvoted: Vec<usize>,
    },
    /// No group stands out yet: one more render, by yet another owner,
    /// decides.
    NeedArbitration,
    /// `max_renders` renders and still no group stands out: nobody can be
    /// blamed (the scene may not render the same way twice).
    NoMajority,
}

/// Tallies `n` renders (at least two) given which pairs agree. Each render
/// with the renders agreeing with it forms a group; the largest group (the
/// first on a tie) wins when it is everyone, or when it holds at least two
/// renders and is strictly larger than every group without its members.
/// Cheaters who each fake a different output never agree with each other,
/// so they cannot outvote two honest owners; colluding owners must outnumber
/// the honest renders of the frame. Below `max_renders` an undecided tally
/// asks for another render.
pub fn tally(n: usize, agree: impl Fn(usize, usize) -> bool, max_renders: usize) -> Tally {
    let group = |r: usize| -> Vec<usize> { (0..n).filter(|&o| o == r || agree(r, o)).collect() };
    let groups: Vec<Vec<usize>> = (0..n).map(group).collect();
    let Some(best) = (0..n).max_by_key(|&r| (groups[r].len(), std::cmp::Reverse(r))) else {
        return Tally::NeedArbitration;
    };
    let accepted = groups[best].clone();
    if accepted.len() == n {
        return Tally::Agreed;
    }
    let rival =
        groups.iter().filter(|g| g.iter().all(|m| !accepted.contains(m))).map(Vec::len).max().unwrap_or(0);
    if accepted.len() >= 2 && accepted.len() > rival {
        let outvoted = (0..n).filter(|r| !accepted.contains(r)).collect();
        Tally::Majority { accepted, outvoted }
    } else if n < max_renders {
        Tally::NeedArbitration
    } else {
        Tally::NoMajority
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(agreeing: &'static [(usize, usize)]) -> impl Fn(usize, usize) -> bool {
        move |a, b| agreeing.iter().any(|&(x, y)| (x, y) == (a, b) || (y, x) == (a, b))
    }

    #[test]
    fn two_renders_agree_or_call_for_arbitration() {
        assert_eq!(tally(2, pairs(&[(0, 1)]), 5), Tally::Agreed);
        assert_eq!(tally(2, pairs(&[]), 5), Tally::NeedArbitration);
    }

    #[test]
    fn the_third_render_decides_who_was_wrong() {
        // The first render was the odd one out.
        assert_eq!(
            tally(3, pairs(&[(1, 2)]), 5),
            Tally::Majority { accepted: vec![1, 2], outvoted: vec![0] }
        );
        // The verification render was.
        assert_eq!(
            tally(3, pairs(&[(0, 2)]), 5),
            Tally::Majority { accepted: vec![0, 2], outvoted: vec![1] }
        );
        assert_eq!(tally(3, pairs(&[(0, 1), (1, 2), (0, 2)]), 5), Tally::Agreed);
        // Within tolerance of a middle render on both sides: nobody is provably wrong.
        assert_eq!(tally(3, pairs(&[(0, 1), (1, 2)]), 5), Tally::Agreed);
        // Three different outputs: one more render.
        assert_eq!(tally(3, pairs(&[]), 5), Tally::NeedArbitration);
        assert_eq!(tally(3, pairs(&[]), 3), Tally::NoMajority);
    }

    #[test]
    fn cheaters_who_do_not_collude_cannot_outvote_two_honest_owners() {
        // An honest first render, two cheats (noise, a copied frame), then an honest arbiter.
        assert_eq!(
            tally(4, pairs(&[(0, 3)]), 5),
            Tally::Majority { accepted: vec![0, 3], outvoted: vec![1, 2] }
        );
    }

    #[test]
    fn colluders_must_outnumber_the_honest_renders() {
        // Two colluding owners agree on a fake; two honest owners agree on the frame: undecided.
        assert_eq!(tally(4, pairs(&[(0, 1), (2, 3)]), 5), Tally::NeedArbitration);
        assert_eq!(tally(4, pairs(&[(0, 1), (2, 3)]), 4), Tally::NoMajority);
        // A third honest owner decides.
        assert_eq!(
            tally(5, pairs(&[(0, 1), (2, 3), (2, 4), (3, 4)]), 5),
            Tally::Majority { accepted: vec![2, 3, 4], outvoted: vec![0, 1] }
        );
    }
}
