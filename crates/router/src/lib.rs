//! `strata-router`: which subscribers receive a PUBLISH, and which retained
//! messages a new subscription gets. No I/O, no runtime, no clock: the broker
//! owns a [`Router`], feeds it subscriptions and publishes, and delivers what
//! it answers.
//!
//! Modules:
//! - [`Router`] (here): the API; subscriptions per key, routing with
//!   per-subscriber aggregation of overlapping subscriptions.
//! - `trie` (private): the arena trie of topic levels with dedicated `+` and
//!   `#` children, walked by topic (subscriptions) or by filter (retained).
//! - `subscribers` (private): the subscribers of one filter, direct and shared.
//! - `shared` (private): share groups and their choice of member
//!   ([`ShareStrategy`]), with a seeded xorshift generator.
//! - `cache` (private): the bounded topic -> matching filters cache and its
//!   generation-based invalidation.
//! - `retained` (private): the retained messages, in a trie by topic level.
//!
//! Matching follows section 4.7: `+` is exactly one level (possibly empty),
//! `#` is any number of trailing levels including none (`a/#` matches `a`),
//! levels are compared byte for byte with no normalization [MQTT-4.7.3-4],
//! and a topic starting with `$` is not matched by a filter whose first level
//! is a wildcard [MQTT-4.7.2-1].
//!
//! Filters and topics are taken as already validated by `strata-codec`.

mod cache;
mod retained;
mod shared;
mod subscribers;
mod trie;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;

use strata_codec::SubscribeOptions;
use strata_codec::topic::parse_filter;

pub use cache::DEFAULT_CAPACITY as DEFAULT_CACHE_CAPACITY;
pub use shared::ShareStrategy;
pub use strata_codec::QoS;
pub use strata_codec::packet::RetainHandling;

use cache::MatchCache;
use retained::RetainedIndex;
use shared::Rng;
use subscribers::FilterSubs;
use trie::LevelTrie;

/// The options of one subscription, as granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct SubOptions {
    /// The maximum QoS granted.
    pub qos: QoS,
    /// Do not deliver the key's own publishes [MQTT-3.8.3-3].
    pub no_local: bool,
    /// Keep the RETAIN flag as published [MQTT-3.3.1-12].
    pub retain_as_published: bool,
    /// Applied by the caller on subscribe; kept here for persistence.
    pub retain_handling: RetainHandling,
    /// The Subscription Identifier given with the SUBSCRIBE, if any.
    pub subscription_id: Option<u32>,
}

impl SubOptions {
    /// The options of a SUBSCRIBE entry, with the packet's identifier.
    pub fn new(options: SubscribeOptions, subscription_id: Option<u32>) -> Self {
        SubOptions {
            qos: options.qos,
            no_local: options.no_local,
            retain_as_published: options.retain_as_published,
            retain_handling: options.retain_handling,
            subscription_id,
        }
    }
}

/// One subscriber that receives a routed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<K> {
    pub key: K,
    /// The highest granted QoS among the matching subscriptions; the caller
    /// sends min(this, the message's QoS) [MQTT-3.3.4-2] [MQTT-3.8.4-8].
    pub qos: QoS,
    /// The identifiers of every matching subscription that has one, sorted
    /// and deduplicated [MQTT-3.3.4-3] [MQTT-3.3.4-4]. Empty allocates nothing.
    pub subscription_ids: Vec<u32>,
    /// Whether any matching subscription asked to keep the RETAIN flag.
    pub retain_as_published: bool,
    /// The share group this delivery was chosen for; `None` for a
    /// non-shared subscription.
    pub share_group: Option<Arc<str>>,
}

impl<K> Delivery<K> {
    fn new(key: K, opts: &SubOptions, share_group: Option<Arc<str>>) -> Self {
        Delivery {
            key,
            qos: opts.qos,
            subscription_ids: opts.subscription_id.into_iter().collect(),
            retain_as_published: opts.retain_as_published,
            share_group,
        }
    }
}

/// The subscription index, the share groups and the retained messages.
///
/// `K` is the subscriber's key (the broker uses a session id), `M` a retained
/// message handle (the broker uses `Arc<Message>`, so clones are cheap).
#[derive(Debug)]
pub struct Router<K, M> {
    subs: LevelTrie<FilterSubs<K>>,
    /// Every subscription by key and full filter (with any `$share/g/`): the
    /// identity of a subscription within a session [MQTT-3.8.4-3].
    by_key: HashMap<K, BTreeMap<Box<str>, SubOptions>>,
    count: usize,
    /// Bumped when a filter gains its first or loses its last subscription;
    /// see the `cache` module.
    generation: u64,
    cache: MatchCache,
    retained: RetainedIndex<M>,
    strategy: ShareStrategy,
    rng: Rng,
    /// Scratch for route(): key -> index of its delivery in `out`.
    merge: HashMap<K, usize>,
}

impl<K: Copy + Eq + Hash + Ord, M: Clone> Router<K, M> {
    /// A router with the default match cache; `seed` seeds the generator of
    /// [`ShareStrategy::Random`] and [`ShareStrategy::Sticky`].
    pub fn new(strategy: ShareStrategy, seed: u64) -> Self {
        Self::with_cache_capacity(strategy, seed, DEFAULT_CACHE_CAPACITY)
    }

    /// A router whose match cache keeps at most `capacity` topics (0 turns
    /// the cache off).
    pub fn with_cache_capacity(strategy: ShareStrategy, seed: u64, capacity: usize) -> Self {
        Router {
            subs: LevelTrie::new(),
            by_key: HashMap::new(),
            count: 0,
            generation: 0,
            cache: MatchCache::new(capacity),
            retained: RetainedIndex::new(),
            strategy,
            rng: Rng::new(seed),
            merge: HashMap::new(),
        }
    }

    /// Adds or replaces the subscription of `key` to `filter` (a whole
    /// filter, possibly `$share/g/f`, already validated by the codec).
    /// Returns whether this key already had a subscription with this exact
    /// filter: it is then replaced [MQTT-3.8.4-3], and retain handling 1
    /// sends nothing [MQTT-3.3.1-10].
    ///
    /// An invalid filter is a caller bug: it is ignored (false), and panics
    /// in debug builds.
    pub fn subscribe(&mut self, key: K, filter: &str, opts: SubOptions) -> bool {
        let parsed = parse_filter(filter);
        debug_assert!(parsed.is_ok(), "unvalidated topic filter {filter:?}");
        let Ok(parsed) = parsed else {
            return false;
        };
        let existed = self
            .by_key
            .entry(key)
            .or_default()
            .insert(filter.into(), opts)
            .is_some();
        if !existed {
            self.count += 1;
        }
        let node = self.subs.node_for(parsed.filter);
        let slot = self.subs.slot(node);
        if slot.is_none() {
            // A new filter: cached topic matches may now be incomplete.
            self.generation += 1;
        }
        slot.get_or_insert_with(FilterSubs::new)
            .upsert(parsed.share_group, key, opts);
        existed
    }

    /// Removes the subscription of `key` to `filter` (the whole filter, as
    /// subscribed). Returns whether it existed; UNSUBACK says 0x11 (No
    /// subscription existed) when it did not.
    pub fn unsubscribe(&mut self, key: K, filter: &str) -> bool {
        let Some(filters) = self.by_key.get_mut(&key) else {
            return false;
        };
        if filters.remove(filter).is_none() {
            return false;
        }
        if filters.is_empty() {
            self.by_key.remove(&key);
        }
        self.unlink(key, filter);
        true
    }

    /// Removes every subscription of `key` (its session ended).
    pub fn remove_all(&mut self, key: K) {
        let Some(filters) = self.by_key.remove(&key) else {
            return;
        };
        for filter in filters.keys() {
            self.unlink(key, filter);
        }
    }

    /// Takes `key` out of the trie entry of `filter`, which `by_key` no
    /// longer lists.
    fn unlink(&mut self, key: K, filter: &str) {
        self.count -= 1;
        let Ok(parsed) = parse_filter(filter) else {
            return;
        };
        let Some(node) = self.subs.find(parsed.filter) else {
            return;
        };
        let Some(subs) = self.subs.value_mut(node) else {
            return;
        };
        subs.remove(parsed.share_group, key);
        if subs.is_empty() {
            self.subs.remove(parsed.filter);
            self.generation += 1;
        }
    }

    /// The subscriptions of `key`, sorted by filter.
    pub fn subscriptions_of(&self, key: K) -> Vec<(String, SubOptions)> {
        self.by_key.get(&key).map_or_else(Vec::new, |filters| {
            filters.iter().map(|(f, o)| (f.to_string(), *o)).collect()
        })
    }

    /// How many subscriptions `key` holds, and whether `filter` (with any
    /// `$share/g/`) is one of them: a SUBSCRIBE to it replaces it rather
    /// than adding one.
    pub fn subscriptions_held(&self, key: K, filter: &str) -> (usize, bool) {
        self.by_key
            .get(&key)
            .map_or((0, false), |f| (f.len(), f.contains_key(filter)))
    }

    /// Subscriptions held, over all keys (a key's overlapping filters count
    /// once each).
    pub fn subscription_count(&self) -> usize {
        self.count
    }

    /// The counter the match cache is validated against. It changes whenever
    /// the set of subscribed filters changes, so a caller may keep its own
    /// per-thread cache of routing results keyed on it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Routes a PUBLISH on `topic` from `publisher` (`None` when the server
    /// itself publishes, e.g. `$SYS`), appending one [`Delivery`] per
    /// receiver to `out`:
    ///
    /// - non-shared subscriptions: one delivery per key however many of its
    ///   subscriptions match, at the highest of their QoS, with all their
    ///   subscription identifiers [MQTT-3.3.4-2] [MQTT-3.3.4-3]
    ///   [MQTT-3.3.4-4]; a `no_local` subscription of the publisher itself
    ///   is left out [MQTT-3.8.3-3];
    /// - shared subscriptions: one member of each matching share group, its
    ///   own delivery with `share_group` set (section 4.8.2).
    ///
    /// Deliveries come in a deterministic order: by matching filter, then by
    /// key; a key's merged delivery sits where its first match put it.
    pub fn route(&mut self, topic: &str, publisher: Option<K>, out: &mut Vec<Delivery<K>>) {
        self.route_with_skip(topic, publisher, |_| false, out);
    }

    /// [`Router::route`], passing over share-group members for which `skip`
    /// is true (for example offline sessions): the group's message goes to
    /// the next eligible member. When every member of a group is skipped,
    /// the member the strategy would have picked still gets it, so a shared
    /// message is not dropped here; the caller may queue or drop it.
    /// `skip` is not applied to non-shared subscriptions.
    pub fn route_with_skip(
        &mut self,
        topic: &str,
        publisher: Option<K>,
        mut skip: impl FnMut(K) -> bool,
        out: &mut Vec<Delivery<K>>,
    ) {
        let Router {
            subs,
            cache,
            generation,
            strategy,
            rng,
            merge,
            ..
        } = self;
        let nodes = cache.get_or_compute(topic, *generation, |found| {
            subs.match_topic(topic, |id, _| found.push(id));
        });
        // A filter holds a key at most once, so keys need merging only when
        // two matching filters have non-shared subscriptions.
        let merging = nodes
            .iter()
            .filter(|&&id| subs.value(id).is_some_and(|s| !s.direct.is_empty()))
            .count()
            > 1;
        merge.clear();
        let start = out.len();
        for &id in nodes {
            // Always Some: a node in a current cache entry holds subscribers.
            let Some(filter_subs) = subs.value_mut(id) else {
                continue;
            };
            for (&key, opts) in &filter_subs.direct {
                if opts.no_local && publisher == Some(key) {
                    continue;
                }
                if merging {
                    match merge.entry(key) {
                        Entry::Occupied(i) => {
                            let d = &mut out[*i.get()];
                            d.qos = d.qos.max(opts.qos);
                            d.subscription_ids.extend(opts.subscription_id);
                            d.retain_as_published |= opts.retain_as_published;
                            continue;
                        }
                        Entry::Vacant(v) => {
                            v.insert(out.len());
                        }
                    }
                }
                out.push(Delivery::new(key, opts, None));
            }
            // No Local on a shared subscription is a Protocol Error the codec
            // rejects [MQTT-3.8.3-4], so it is not checked here.
            for group in &mut filter_subs.groups {
                if let Some((key, opts)) = group.pick(*strategy, rng, &mut skip) {
                    out.push(Delivery::new(key, &opts, Some(group.name.clone())));
                }
            }
        }
        if merging {
            for d in &mut out[start..] {
                if d.subscription_ids.len() > 1 {
                    d.subscription_ids.sort_unstable();
                    d.subscription_ids.dedup();
                }
            }
        }
    }

    /// Sets (`Some`) or clears (`None`) the retained message of `topic`
    /// [MQTT-3.3.1-5] [MQTT-3.3.1-6] (3.1.1: [MQTT-3.3.1-10] [MQTT-3.3.1-11]).
    /// Whether an empty payload clears is the caller's rule [MQTT-3.3.1-7].
    pub fn set_retained(&mut self, topic: &str, msg: Option<M>) {
        self.retained.set(topic, msg);
    }

    /// Appends (topic, message) for every retained message whose topic
    /// matches `filter`, in no particular order. `filter` is a plain filter:
    /// the caller strips `$share/g/` and decides whether a shared
    /// subscription gets retained messages at all.
    pub fn retained_matching(&self, filter: &str, out: &mut Vec<(String, M)>) {
        self.retained.matching(filter, out);
    }

    /// Topics with a retained message.
    pub fn retained_count(&self) -> usize {
        self.retained.len()
    }
}
