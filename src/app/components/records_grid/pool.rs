//! The fixed pool of row nodes: which record a pooled row shows, and the fewest DOM moves
//! that keep the shown rows in record order.
//!
//! A record in the window is shown by slot `index % POOL`, so a record keeps its row node for
//! as long as it stays in view: scrolling down by ten rows re-labels ten rows and moves them
//! from the top of the table to the bottom, and leaves every other row untouched.

use super::POOL;

/// The record (position in the list) that `slot` shows for the window `[start, end)`, if any.
pub fn slot_row(slot: usize, (start, end): (usize, usize)) -> Option<usize> {
    let row = start + (slot + POOL - start % POOL) % POOL;
    (row < end).then_some(row)
}

/// The slots showing the window `[start, end)`, in record order.
pub fn slots_in_order((start, end): (usize, usize)) -> Vec<usize> {
    (start..end).map(|row| row % POOL).collect()
}

/// Where a slot goes: before another slot, or at the end (before the bottom spacer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub slot: usize,
    pub before: Option<usize>,
}

/// Reorders `order` (every slot, in DOM order) so that the slots of `wanted` follow one
/// another in that order, and answers the moves that do it on the DOM. Slots not wanted
/// (hidden) stay where they are. The longest run already in order is left in place, so a
/// scroll moves only the rows that came into view.
pub fn reorder(order: &mut Vec<usize>, wanted: &[usize]) -> Vec<Move> {
    let position = |order: &[usize], slot: usize| {
        order
            .iter()
            .position(|&s| s == slot)
            .expect("every slot is in the pool")
    };
    let positions: Vec<usize> = wanted.iter().map(|&s| position(order, s)).collect();
    let keep = longest_increasing(&positions);
    let mut moves = Vec::new();
    let mut next = None;
    for (i, &slot) in wanted.iter().enumerate().rev() {
        if !keep[i] {
            order.remove(position(order, slot));
            let to = next.map_or(order.len(), |n| position(order, n));
            order.insert(to, slot);
            moves.push(Move { slot, before: next });
        }
        next = Some(slot);
    }
    moves
}

/// Marks the members of one longest strictly increasing subsequence (the pool is small, so the
/// quadratic search is fine).
fn longest_increasing(values: &[usize]) -> Vec<bool> {
    let n = values.len();
    let mut length = vec![1usize; n];
    let mut previous = vec![None; n];
    for i in 0..n {
        for j in 0..i {
            if values[j] < values[i] && length[j] + 1 > length[i] {
                length[i] = length[j] + 1;
                previous[i] = Some(j);
            }
        }
    }
    let mut keep = vec![false; n];
    let mut at = (0..n).max_by_key(|&i| length[i]);
    while let Some(i) = at {
        keep[i] = true;
        at = previous[i];
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(order: &[usize], wanted: &[usize]) -> Vec<usize> {
        order
            .iter()
            .copied()
            .filter(|s| wanted.contains(s))
            .collect()
    }

    #[test]
    fn every_record_in_the_window_has_one_slot_and_keeps_it_while_in_view() {
        for window in [(0, 24), (3, 35), (992, 1024), (1991, 2000), (0, 0)] {
            let mut rows: Vec<usize> = (0..POOL).filter_map(|s| slot_row(s, window)).collect();
            rows.sort_unstable();
            assert_eq!(rows, (window.0..window.1).collect::<Vec<_>>(), "{window:?}");
        }
        let slot = 1000 % POOL;
        assert_eq!(slot_row(slot, (992, 1024)), Some(1000));
        assert_eq!(slot_row(slot, (1000, 1032)), Some(1000));
    }

    #[test]
    fn scrolling_down_moves_only_the_rows_that_came_into_view() {
        let mut order: Vec<usize> = (0..POOL).collect();
        let wanted = slots_in_order((11, 11 + POOL));
        let moves = reorder(&mut order, &wanted);
        assert_eq!(moves.len(), 11);
        assert_eq!(shown(&order, &wanted), wanted);
        assert!(moves.iter().all(|m| m.slot < 11));
    }

    #[test]
    fn scrolling_back_up_and_jumping_keep_the_rows_in_record_order() {
        let mut order: Vec<usize> = (0..POOL).collect();
        for window in [
            (0, 24),
            (40, 72),
            (41, 73),
            (20, 52),
            (1968, 2000),
            (1991, 2000),
            (0, 24),
        ] {
            let wanted = slots_in_order(window);
            let before = order.clone();
            let moves = reorder(&mut order, &wanted);
            assert_eq!(shown(&order, &wanted), wanted, "{window:?}");
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..POOL).collect::<Vec<_>>());
            assert!(moves.len() <= wanted.len());
            if shown(&before, &wanted) == wanted {
                assert!(moves.is_empty());
            }
        }
    }

    #[test]
    fn a_window_already_in_order_needs_no_move() {
        let mut order: Vec<usize> = (0..POOL).collect();
        assert!(reorder(&mut order, &slots_in_order((0, 24))).is_empty());
        assert_eq!(order, (0..POOL).collect::<Vec<_>>());
    }
}
