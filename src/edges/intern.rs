//! Interning: each distinct value stored once and named by a small id, so a million
//! edges are a million small `Copy` structs instead of a million sets of strings.
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

/// Hands out ids `0, 1, 2…` in first-seen order.
#[derive(Debug)]
pub(super) struct Interner<T> {
    ids: HashMap<T, u32>,
    values: Vec<T>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Self {
            ids: HashMap::new(),
            values: Vec::new(),
        }
    }
}

impl<T: Clone + Eq + Hash + Ord> Interner<T> {
    /// The id of `value`, which is stored on first sight only (a lookup by borrow, so
    /// interning a `&str` already seen allocates nothing).
    pub(super) fn intern<Q>(&mut self, value: &Q) -> u32
    where
        T: Borrow<Q> + for<'q> From<&'q Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct values");
        let owned = T::from(value);
        self.values.push(owned.clone());
        self.ids.insert(owned, id);
        id
    }

    /// Renumbers ids so that id order equals value order, which makes every later sort
    /// by id a sort by value: returns the sorted values and the old-id -> new-id map.
    pub(super) fn into_sorted(self) -> (Vec<T>, Vec<u32>) {
        drop(self.ids);
        let mut order: Vec<u32> = (0..self.values.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| self.values[a as usize].cmp(&self.values[b as usize]));
        let mut remap = vec![0; self.values.len()];
        for (new, &old) in order.iter().enumerate() {
            remap[old as usize] = new as u32;
        }
        let mut values: Vec<Option<T>> = self.values.into_iter().map(Some).collect();
        let sorted = order
            .iter()
            .map(|&old| values[old as usize].take().expect("each id once"))
            .collect();
        (sorted, remap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_first_seen_order_renumbered_into_value_order() {
        let mut names: Interner<Box<str>> = Interner::default();
        assert_eq!([names.intern("b"), names.intern("a"), names.intern("b")], [0, 1, 0]);
        let (sorted, remap) = names.into_sorted();
        assert_eq!(sorted, ["a".into(), "b".into()] as [Box<str>; 2]);
        assert_eq!(remap, [1, 0], "old id 0 (\"b\") is now 1");
    }
}
