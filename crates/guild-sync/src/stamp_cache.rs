//! Answers kept in the process under the data stamp ([`crate::db::console::data_stamp`]: the
//! database's identity and its data version). The stamp changes on every statement touching a
//! table the console's lists read, so a value kept under the current stamp is never stale, and a
//! new stamp empties the cache. One type for the console's caches (the candidate pools, the
//! players answers) so each states only what it keeps and how many.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// A data stamp: database identity, data version.
pub type Stamp = (String, i64);

/// At most `max` values by key, all kept under one stamp.
pub struct StampCache<K, V> {
    inner: Mutex<Option<(Stamp, HashMap<K, V>)>>,
    max: usize,
}

impl<K: Eq + Hash, V: Clone> StampCache<K, V> {
    /// An empty cache holding at most `max` values (when full, it starts over: this bounds
    /// memory against a stream of distinct keys).
    pub const fn new(max: usize) -> StampCache<K, V> {
        StampCache {
            inner: Mutex::new(None),
            max,
        }
    }

    /// The value kept for `key` under `stamp`, if the cache is at that stamp.
    pub fn get(&self, stamp: &Stamp, key: &K) -> Option<V> {
        let cache = self.inner.lock().expect("stamp cache poisoned");
        match cache.as_ref() {
            Some((kept, values)) if kept == stamp => values.get(key).cloned(),
            _ => None,
        }
    }

    /// Keep `value` for `key` under `stamp`. The caller read `stamp` before the data, so the
    /// value is at least as new as its key; a concurrent change only costs a reload.
    pub fn keep(&self, stamp: Stamp, key: K, value: V) {
        let mut cache = self.inner.lock().expect("stamp cache poisoned");
        let room = matches!(cache.as_ref(),
            Some((kept, values)) if *kept == stamp && values.len() < self.max);
        if !room {
            *cache = Some((stamp, HashMap::new()));
        }
        if let Some((_, values)) = cache.as_mut() {
            values.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_stamp_or_a_full_cache_starts_over() {
        let cache: StampCache<u8, &str> = StampCache::new(2);
        let one: Stamp = ("db@1".into(), 1);
        cache.keep(one.clone(), 1, "a");
        cache.keep(one.clone(), 2, "b");
        assert_eq!(cache.get(&one, &1), Some("a"));
        assert_eq!(cache.get(&("db@1".into(), 2), &1), None, "another version");
        assert_eq!(cache.get(&("db@2".into(), 1), &1), None, "another database");
        cache.keep(one.clone(), 3, "c");
        assert_eq!(
            (cache.get(&one, &1), cache.get(&one, &3)),
            (None, Some("c")),
            "full: over"
        );
        cache.keep(("db@1".into(), 2), 1, "new");
        assert_eq!(cache.get(&one, &3), None, "a new stamp empties it");
    }
}
