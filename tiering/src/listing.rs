//! Listing a customer's records across both tiers: order, window, merge. Pure.
//!
//! Records are ordered by age value, newest first, then by id ascending. That order
//! depends only on `(age, id)`, which a record keeps when it moves from Cosmos to
//! the archive, so a position ("after this (age, id)") means the same in both tiers.
//! A page is the first `n` records after the position; the continuation token is the
//! position of the last record consumed. A record that moves between two page
//! requests therefore appears exactly once: before the position it was already
//! served, after it, it will be served from whichever tier holds it then.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::record::AgeValue;

/// A position in the listing order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub age: AgeValue,
    pub id: String,
}

/// Listing order: newer (larger age) first, then id ascending.
pub fn listing_order(a: (&AgeValue, &str), b: (&AgeValue, &str)) -> Ordering {
    b.0.cmp(a.0).then_with(|| a.1.cmp(b.1))
}

/// Which records a page may hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    /// Inclusive lower bound on the age value.
    pub from: Option<AgeValue>,
    /// Exclusive upper bound on the age value.
    pub until: Option<AgeValue>,
    /// Only records strictly after this position.
    pub after: Option<Cursor>,
}

impl Window {
    pub fn contains(&self, age: &AgeValue, id: &str) -> bool {
        self.from.as_ref().is_none_or(|from| age >= from)
            && self.until.as_ref().is_none_or(|until| age < until)
            && self.after.as_ref().is_none_or(|c| listing_order((age, id), (&c.age, &c.id)) == Ordering::Greater)
    }
}

/// Where a candidate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Cosmos,
    Archive,
}

/// One record proposed for a page by one tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<T> {
    pub age: AgeValue,
    pub id: String,
    pub tier: Tier,
    /// Set on archive candidates whose id is (also) in Cosmos: Cosmos holds the
    /// newer version, which appears at its own position, so the copy is skipped.
    pub shadowed: bool,
    pub payload: T,
}

/// A prefix of one tier's listing order after the window's position.
#[derive(Debug)]
pub struct TierList<T> {
    pub items: Vec<Candidate<T>>,
    /// `None`: the tier has no other record in the window after the position.
    /// `Some(p)`: every such record up to and including `p` is in `items`; beyond `p`, unknown.
    pub boundary: Option<Cursor>,
}

impl<T> TierList<T> {
    /// The first `limit` (at least one) of `all`, given in any order, and the
    /// boundary that truncation implies.
    pub fn first(mut all: Vec<Candidate<T>>, limit: usize) -> Self {
        all.sort_by(|a, b| listing_order((&a.age, &a.id), (&b.age, &b.id)));
        let mut boundary = None;
        if all.len() > limit.max(1) {
            all.truncate(limit.max(1));
            boundary = all.last().map(|c| Cursor { age: c.age.clone(), id: c.id.clone() });
        }
        Self { items: all, boundary }
    }
}

/// Both tiers' prefixes.
#[derive(Debug)]
pub struct TierLists<T> {
    pub cosmos: TierList<T>,
    pub archive: TierList<T>,
}

/// A merged page and the position to continue from.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<Candidate<T>>,
    /// `None` when nothing follows.
    pub next: Option<Cursor>,
}

/// Merges both tiers' prefixes into one page of at most `n` records.
///
/// The walk never passes a tier's boundary (beyond it the merged order is not
/// known to be complete), so a short tier list or skipped shadowed copies can
/// shorten a page but never lose a record; when the walk stops at a boundary the
/// page continues from the boundary itself. Each id appears at most once on a
/// page: from Cosmos when both tiers hold it (a record archived while the page
/// was being read is in both answers), else at its first position.
pub fn merge<T>(lists: TierLists<T>, n: usize) -> Page<T> {
    let limit = [&lists.cosmos.boundary, &lists.archive.boundary]
        .into_iter()
        .flatten()
        .min_by(|a, b| listing_order((&a.age, &a.id), (&b.age, &b.id)))
        .cloned();
    let mut all: Vec<Candidate<T>> = lists.cosmos.items.into_iter().chain(lists.archive.items).collect();
    // Cosmos before Archive on equal positions.
    all.sort_by(|a, b| {
        listing_order((&a.age, &a.id), (&b.age, &b.id)).then_with(|| (a.tier as u8).cmp(&(b.tier as u8)))
    });
    let in_cosmos: std::collections::HashSet<String> =
        all.iter().filter(|c| c.tier == Tier::Cosmos).map(|c| c.id.clone()).collect();
    let mut listed: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut items = Vec::new();
    let mut last: Option<Cursor> = None;
    let mut page_full = false;
    for c in all {
        if let Some(b) = &limit
            && listing_order((&c.age, &c.id), (&b.age, &b.id)) == Ordering::Greater
        {
            break;
        }
        if items.len() == n {
            page_full = true;
            break;
        }
        last = Some(Cursor { age: c.age.clone(), id: c.id.clone() });
        let duplicate = (c.tier == Tier::Archive && in_cosmos.contains(&c.id)) || listed.contains(&c.id);
        if !c.shadowed && !duplicate {
            listed.insert(c.id.clone());
            items.push(c);
        }
    }
    let next = if page_full { last } else { limit };
    Page { items, next }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn cand(age: i64, id: &str, tier: Tier) -> Candidate<()> {
        Candidate { age: AgeValue::Seconds(age), id: id.into(), tier, shadowed: false, payload: () }
    }

    #[test]
    fn order_is_newest_first_then_id() {
        let (a, b) = (AgeValue::Seconds(5), AgeValue::Seconds(9));
        assert_eq!(listing_order((&b, "z"), (&a, "a")), Ordering::Less);
        assert_eq!(listing_order((&a, "a"), (&a, "b")), Ordering::Less);
        let w = Window { after: Some(Cursor { age: a.clone(), id: "m".into() }), ..Default::default() };
        assert!(
            !w.contains(&b, "a")
                && !w.contains(&a, "m")
                && w.contains(&a, "n")
                && w.contains(&AgeValue::Seconds(4), "a")
        );
        let w = Window { from: Some(AgeValue::Seconds(5)), until: Some(AgeValue::Seconds(9)), after: None };
        assert!(w.contains(&a, "x") && !w.contains(&b, "x") && !w.contains(&AgeValue::Seconds(4), "x"));
    }

    #[test]
    fn a_record_in_both_tiers_at_one_position_appears_once_from_cosmos() {
        let lists = TierLists {
            cosmos: complete(vec![cand(9, "a", Tier::Cosmos)]),
            archive: complete(vec![cand(9, "a", Tier::Archive), cand(8, "b", Tier::Archive)]),
        };
        let page = merge(lists, 5);
        assert_eq!(
            page.items.iter().map(|c| (c.id.as_str(), c.tier)).collect::<Vec<_>>(),
            [("a", Tier::Cosmos), ("b", Tier::Archive)]
        );
        assert!(page.next.is_none());
        // Archived while the page was read, at another position (the record changed
        // just before): still once, from Cosmos.
        let lists = TierLists {
            cosmos: complete(vec![cand(9, "a", Tier::Cosmos)]),
            archive: complete(vec![cand(3, "a", Tier::Archive)]),
        };
        let page = merge(lists, 5);
        assert_eq!(
            page.items.iter().map(|c| (c.age.clone(), c.tier)).collect::<Vec<_>>(),
            [(AgeValue::Seconds(9), Tier::Cosmos)]
        );
    }

    fn complete<T>(items: Vec<Candidate<T>>) -> TierList<T> {
        TierList { items, boundary: None }
    }

    #[test]
    fn the_walk_never_passes_a_boundary_even_when_items_before_it_vanished() {
        // Cosmos knew its records up to (5, "k") but two of them vanished meanwhile:
        // the page must stop at the boundary, not run on into archive records beyond it.
        let cosmos = TierList {
            items: vec![cand(9, "a", Tier::Cosmos)],
            boundary: Some(Cursor { age: AgeValue::Seconds(5), id: "k".into() }),
        };
        let archive = complete(vec![cand(7, "b", Tier::Archive), cand(2, "z", Tier::Archive)]);
        let page = merge(TierLists { cosmos, archive }, 10);
        assert_eq!(page.items.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(page.next, Some(Cursor { age: AgeValue::Seconds(5), id: "k".into() }), "continue at the boundary");
        // Every record of the slice vanished meanwhile: an empty page, but not the end.
        let cosmos =
            TierList { items: Vec::new(), boundary: Some(Cursor { age: AgeValue::Seconds(5), id: "k".into() }) };
        let page = merge(TierLists { cosmos, archive: complete(vec![cand(2, "z", Tier::Archive)]) }, 10);
        assert!(page.items.is_empty());
        assert_eq!(page.next, Some(Cursor { age: AgeValue::Seconds(5), id: "k".into() }));
        // One id twice in a tier (it moved between two answers): listed once.
        let cosmos = complete(vec![cand(9, "a", Tier::Cosmos), cand(4, "a", Tier::Cosmos)]);
        let page = merge(TierLists { cosmos, archive: complete(Vec::new()) }, 10);
        assert_eq!(page.items.len(), 1);
        // `first` keeps a prefix and marks where it was cut.
        let list = TierList::first((0..5).map(|i| cand(i, "x", Tier::Archive)).collect(), 2);
        assert_eq!(list.items.len(), 2);
        assert_eq!(list.boundary, Some(Cursor { age: AgeValue::Seconds(3), id: "x".into() }));
        assert!(TierList::first(vec![cand(1, "x", Tier::Archive)], 1).boundary.is_none());
    }

    #[test]
    fn shadowed_copies_shorten_a_page_but_the_walk_stops_at_a_truncated_tier() {
        let mut archive: Vec<_> = (0..4).map(|i| cand(10 - i, &format!("x{i}"), Tier::Archive)).collect();
        archive.iter_mut().for_each(|c| c.shadowed = true);
        let lists =
            TierLists { cosmos: complete(vec![cand(1, "late", Tier::Cosmos)]), archive: TierList::first(archive, 3) };
        let page = merge(lists, 2);
        // The archive list is truncated at x2; "late" lies beyond it, so it must wait.
        assert!(page.items.is_empty());
        assert_eq!(page.next, Some(Cursor { age: AgeValue::Seconds(8), id: "x2".into() }));
    }

    /// Simulates paging over two tiers, moving records from Cosmos to the archive
    /// between pages; every record must be served exactly once.
    fn page_through(
        records: &[(i64, String)],
        moves_per_page: usize,
        n: usize,
        shadow: &BTreeSet<String>,
    ) -> Vec<String> {
        let mut hot: Vec<(i64, String)> = records.to_vec();
        let mut cold: Vec<(i64, String)> = shadow.iter().map(|id| (-1_000, id.clone())).collect();
        let mut seen = Vec::new();
        let mut after: Option<Cursor> = None;
        for _ in 0..10_000 {
            let window = Window { after: after.clone(), ..Default::default() };
            let take = |list: &[(i64, String)], tier| {
                let v: Vec<Candidate<()>> = list
                    .iter()
                    .filter(|(a, id)| window.contains(&AgeValue::Seconds(*a), id))
                    .map(|(a, id)| Candidate {
                        shadowed: tier == Tier::Archive && hot.iter().any(|(_, h)| h == id),
                        ..cand(*a, id, tier)
                    })
                    .collect();
                TierList::first(v, n + 1)
            };
            let page = merge(TierLists { cosmos: take(&hot, Tier::Cosmos), archive: take(&cold, Tier::Archive) }, n);
            seen.extend(page.items.iter().map(|c| c.id.clone()));
            for _ in 0..moves_per_page {
                if !hot.is_empty() {
                    let r = hot.remove(hot.len() / 2);
                    // One blob per record: archiving replaces any older copy.
                    cold.retain(|(_, id)| *id != r.1);
                    cold.push(r);
                }
            }
            match page.next {
                None => return seen,
                Some(c) => after = Some(c),
            }
        }
        panic!("paging did not end");
    }

    proptest! {
        #[test]
        fn paging_serves_every_record_exactly_once_while_records_move(
            ages in proptest::collection::vec(0i64..20, 0..40),
            moves in 0usize..4,
            n in 1usize..6,
        ) {
            let records: Vec<(i64, String)> = ages.iter().enumerate().map(|(i, a)| (*a, format!("r{i:02}"))).collect();
            // Stale archive copies of other ids that are also hot must never show up twice.
            let shadow: BTreeSet<String> = records.iter().take(3).map(|(_, id)| id.clone()).collect();
            let seen = page_through(&records, moves, n, &shadow);
            let mut expected: Vec<String> = records.iter().map(|(_, id)| id.clone()).collect();
            let mut got = seen.clone();
            expected.sort();
            got.sort();
            prop_assert_eq!(got, expected, "served {:?}", seen);
        }
    }
}
