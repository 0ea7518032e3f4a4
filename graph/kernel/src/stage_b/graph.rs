//! Stage B — the global co-occurrence graph, built from the partitions' change batches.
//!
//! Layers (graph/DETECTION.md explains each rule):
//! 1. **Links** account–entity, with the entity's degree. Entities: devices `d:`, cards `p:` (strong),
//!    IPs `i:`, prompt templates `t:` (weak), lockstep cohorts `s:` (derived here from API activity)
//!    and owned template groups `g:` (derived from who uses a template: `owned.rs`).
//! 2. **Binding** (this file): a device/card binds when it is shared the way one operator shares
//!    (2..max accounts, most of them with no private entity of that kind); a cohort binds its
//!    accounts that act in lockstep on one template.
//! 3. **Cores** (`cores.rs`): connected components over binding entities — exact, incremental.
//! 4. **Weak edges** (`weak.rs`): cores joined by several weak entities each covering a large share
//!    of both and used by little else; a loose account attached to a core the same way.
//! 5. **Operations** (`ops.rs`): components of cores under weak edges = the clusters, with stable
//!    public ids and lineage (`identity.rs`).

use crate::stage_a::changes::ChangeBatch;
use crate::store::intern::{grow_to, table_bytes, Names, Space, NONE};
use std::collections::VecDeque;
use rustc_hash::{FxHashMap, FxHashSet};
use crate::store::list::List;
use crate::store::members::Members;

/// Usage is kept per account in buckets of this many hours: one, the hour stage A closes, so damage
/// is exact to the window's whole hours (4-hour buckets counted up to three hours before the window's
/// edge: 12 % too much for an operation whose calls came in bursts at the edge).
pub const USAGE_BUCKET_HOURS: u32 = 1;
/// The population's ordinary volume (extraction's yardstick) is re-measured this often, and the
/// accounts' usage hours that left the window are dropped this often (reads filter by the hour, so this
/// only bounds memory; clusters' sums are pruned every hour, they are few).
const POPULATION_REFRESH_HOURS: i64 = 4;

/// Does usage bucket `b` reach into the window whose first whole hour is `first_hour`?
#[inline]
pub fn bucket_in_window(b: u32, first_hour: u32) -> bool {
    (b + 1) * USAGE_BUCKET_HOURS > first_hour
}

pub const DEVICE: u8 = b'd';
pub const PAYMENT: u8 = b'p';
pub const IP: u8 = b'i';
pub const TEMPLATE: u8 = b't';
pub const COHORT: u8 = b's';
pub const OWNED: u8 = b'g';

/// Kinds the graph derives itself (a cohort from API rhythm, an owned group from a template's users):
/// they always bind, and they have no "private" notion.
#[inline]
pub fn is_derived(kind: u8) -> bool {
    kind == COHORT || kind == OWNED
}

#[inline]
pub fn private_bit(kind: u8) -> u8 {
    match kind {
        DEVICE => 1,
        PAYMENT => 2,
        _ => 4, // TEMPLATE: "captive" (owned.rs; bit 3, 8, is its "set" flag)
    }
}

#[inline]
pub fn is_strong(kind: u8) -> bool {
    kind == DEVICE || kind == PAYMENT || kind == COHORT || kind == OWNED
}
#[inline]
pub fn is_weak(kind: u8) -> bool {
    kind == IP || kind == TEMPLATE
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct GraphConfig {
    pub window: i64,
    pub tick: i64,
    pub device_max_degree: u32,
    pub payment_max_degree: u32,
    pub exclusivity_min: f64,
    pub sync_bucket_seconds: u32,
    pub sync_min_accounts: u32,
    pub sync_min_lift: f64,
    pub sync_min_overlap: f64,
    pub sync_recent_buckets: usize,
    pub sync_min_buckets: u16,
    pub sync_min_ratio: f64,
    pub weak_cover_min: f64,
    pub weak_min_accounts: u32,
    pub weak_purity_min: f64,
    pub weak_min_entities: u32,
    pub weak_max_groups: u32,
    pub track_min_size: u32,
    pub hub_copy_overlap: f64,
    pub evidence_limit: usize,
    pub freemail: FxHashSet<String>,
    pub group_min_accounts: u32,
    pub device_rotation_min: u32,
    pub group_captive_min: f64,
    pub group_set_min: f64,
    pub template_max_degree: u32,
}

#[derive(Clone, Copy, Debug)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Link {
    pub ent: u32,
    pub pos: u32, // index of the account in the entity's member list
    pub ts: u32,  // event time the link appeared
    pub uses: u16, // template links: minutes with API activity on it
    /// The top bit: the entity is of a strong kind (device, card, cohort). Template links: the low 15
    /// bits count the minutes (of `uses`) in a synchronous bucket, saturating. Strong links: bits 0-1
    /// its kind (`STRONG_KINDS`), bit 2 a copy of the entity's `binding` (kept by `Graph::rebind`,
    /// checked by the consistency check). Walks over an account's links (split checks, binding
    /// flags, features) then read an entity only when it binds, not for each personal device or card.
    flags: u16,
}

const STRONG_BIT: u16 = 1 << 15;
const BINDS_BIT: u16 = 1 << 2;
const GROUP_BIT: u16 = 1 << 3; // a strong link to an owned template group (its 2-bit code unused)
/// A strong link's kind by its 2-bit code (0 unused).
const STRONG_KINDS: [u8; 4] = [0, DEVICE, PAYMENT, COHORT];

impl Link {
    fn new(ent: u32, pos: u32, ts: u32, kind: u8, binds: bool) -> Self {
        let flags = match kind {
            DEVICE => STRONG_BIT | 1,
            PAYMENT => STRONG_BIT | 2,
            COHORT => STRONG_BIT | 3,
            OWNED => STRONG_BIT | GROUP_BIT,
            _ => 0,
        };
        Link { ent, pos, ts, uses: 0, flags: if binds && flags != 0 { flags | BINDS_BIT } else { flags } }
    }
    /// Is the entity a device, card or cohort (the kinds that can bind)?
    #[inline]
    pub fn strong(&self) -> bool {
        self.flags & STRONG_BIT != 0
    }
    /// A strong link's entity kind (DEVICE, PAYMENT or COHORT); 0 for an IP or template link.
    #[inline]
    pub fn strong_kind(&self) -> u8 {
        if !self.strong() {
            0
        } else if self.flags & GROUP_BIT != 0 {
            OWNED
        } else {
            STRONG_KINDS[(self.flags & 3) as usize]
        }
    }
    /// Does the entity bind (a strong link whose entity's `binding` is set)?
    #[inline]
    pub fn binds(&self) -> bool {
        self.flags & (STRONG_BIT | BINDS_BIT) == STRONG_BIT | BINDS_BIT
    }
    #[inline]
    fn set_binds(&mut self, binds: bool) {
        debug_assert!(self.strong());
        if binds { self.flags |= BINDS_BIT } else { self.flags &= !BINDS_BIT }
    }
    #[inline]
    pub fn hits(&self) -> u16 {
        debug_assert!(!self.strong());
        self.flags & !STRONG_BIT
    }
    fn add_hit(&mut self) {
        if self.hits() < !STRONG_BIT {
            self.flags += 1;
        }
    }
}

#[derive(Clone, Default)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct AcctB {
    pub links: List<Link>,
    pub core: u32,    // NONE: not in a core (no binding entity)
    pub core_pos: u32,
    pub op: u32,      // for an account outside any core: its operation when weak edges attach it
    pub cluster: u32, // public cluster number (NONE: none)
    pub signup: u32,  // NONE: no signup seen
    pub domain: u32,
    pub dc_hour: u32,
    pub usage: List<(u32, u32, u32)>, // (bucket of USAGE_BUCKET_HOURS, API exchanges, output tokens), ascending
    pub strong: bool, // has a binding strong entity (device, card or cohort)
    pub live: bool,
    /// "uses a device (bit 0) / card (bit 1) no other account uses"; templates (owned.rs): bit 2
    /// "captive" (no template of its own, at least one shared), bit 3 "on a set" (captive, at least two
    /// shared); as last settled (graph::rebind)
    pub private: u8,
}

impl AcctB {
    fn fresh() -> Self {
        AcctB { core: NONE, core_pos: NONE, op: NONE, cluster: NONE, signup: NONE, domain: NONE, dc_hour: NONE,
                live: true, ..Default::default() }
    }
    #[inline]
    pub fn has_private_cached(&self, kind: u8) -> bool {
        self.private & private_bit(kind) != 0
    }
    pub fn link(&self, ent: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.ent == ent)
    }
    pub fn link_mut(&mut self, ent: u32) -> Option<&mut Link> {
        self.links.iter_mut().find(|l| l.ent == ent)
    }
}

/// An entity. Most are used by one to three accounts (a home line, an own phone, an own template):
/// up to three members sit inline; the per-core counts exist only for weak entities that cores use.
#[derive(Clone, Default)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct EntB {
    pub members: Members, // up to 3 inline in 16 bytes (src/members.rs)
    /// weak entities: members per core (only accounts in a core; the rest are loose), as a list in
    /// `Graph::hists` (0: none, else 1 + its index) — an index, not a box, keeps this slot at 32 bytes
    hist: u32,
    pub stamp: u32,     // per-tick dedupe of dirty marks (an entity is strong or weak, never both)
    /// device/card: members with no private entity of its kind; IP/template: members in a core
    /// (both kept as they change)
    pub exclusive: u32,
    pub kind: u8,
    pub binding: bool,
    pub live: bool,
}

/// A template's API rhythm: account-minutes since it was first used. Its recent crowded minutes
/// (for the recurrence test) are kept apart (`Graph::crowded`): most templates (one user's own) never
/// have one, and a rhythm is kept for every template with API activity — 16 bytes with its key.
#[derive(Clone, Debug)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Rhythm {
    first_minute: u32,
    account_minutes: [u32; 2], // low and high halves of a u64: 4-byte alignment keeps the entry at 16
}

impl Rhythm {
    fn new(first_minute: u32) -> Self {
        Rhythm { first_minute, account_minutes: [0, 0] }
    }

    fn account_minutes(&self) -> u64 {
        (self.account_minutes[1] as u64) << 32 | self.account_minutes[0] as u64
    }

    /// Closes one minute: `accounts` used the template in it (sorted, distinct; minutes closed in time
    /// order), `arrivals` are those of them that did not use it the minute before. Returns the accounts
    /// it credits with a synchronous minute. Only arrivals count: a scheduler starts its accounts
    /// together and they are quiet together in between; people working through a notebook for twenty
    /// minutes are *still there* the next minute — a crowd that persists is not one that recurs.
    fn close<'r>(&mut self, minute: u32, accounts: usize, arrivals: Vec<u32>, cfg: &GraphConfig,
                 recent: impl FnOnce() -> &'r mut VecDeque<Vec<u32>>) -> Vec<u32> {
        let d = arrivals.len();
        let span = minute.saturating_sub(self.first_minute) as u64 + 1;
        let minutes = self.account_minutes();
        let usual = (minutes as f64 / span as f64).max(1.0);
        let minutes = minutes + accounts as u64;
        self.account_minutes = [minutes as u32, (minutes >> 32) as u32];
        if d < cfg.sync_min_accounts as usize {
            return Vec::new();
        }
        let mut hits: Vec<u32> = Vec::new();
        let recent = recent();
        if d as f64 >= cfg.sync_min_lift * usual {
            for past in recent.iter() {
                let common = intersect(&arrivals, past);
                if common.len() >= cfg.sync_min_accounts as usize
                    && common.len() as f64 >= cfg.sync_min_overlap * d.min(past.len()) as f64
                {
                    hits.extend(common);
                }
            }
            hits.sort_unstable();
            hits.dedup();
        }
        if recent.len() >= cfg.sync_recent_buckets.max(1) {
            recent.pop_front();
        }
        recent.push_back(arrivals);
        hits
    }
}

/// The accounts of `a` (sorted) that are not in `b` (sorted).
fn difference(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut j, mut out) = (0, Vec::with_capacity(a.len()));
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j >= b.len() || b[j] != x {
            out.push(x);
        }
    }
    out
}

/// The heap bytes of a template's recent crowded minutes.
fn crowded_bytes(recent: &VecDeque<Vec<u32>>) -> usize {
    recent.capacity() * std::mem::size_of::<Vec<u32>>() + recent.iter().map(|v| v.capacity() * 4).sum::<usize>()
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// The weak entities' per-core member counts (`EntB::hist` indexes them); freed lists are reused.
/// A list is (core, count) pairs laid flat in a `Members` (16 bytes): most such entities have members
/// in one core, and that pair sits inline.
#[derive(Default)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Hists {
    lists: Vec<Members>,
    free: Vec<u32>,
}

impl Hists {
    /// (core, members of the entity in it) of an entity.
    pub fn of<'a>(&'a self, ent: &EntB) -> impl Iterator<Item = (u32, u32)> + 'a {
        let words: &[u32] = if ent.hist == 0 { &[] } else { &self.lists[ent.hist as usize - 1] };
        words.chunks_exact(2).map(|p| (p[0], p[1]))
    }

    /// `n` more (or fewer) of the entity's members in `core`; the entity's `exclusive` (members in a
    /// core) follows.
    pub fn add(&mut self, ent: &mut EntB, core: u32, n: i64) {
        ent.exclusive = (ent.exclusive as i64 + n) as u32;
        if ent.hist == 0 {
            if n <= 0 {
                return;
            }
            ent.hist = 1 + match self.free.pop() {
                Some(i) => i,
                None => {
                    self.lists.push(Members::default());
                    (self.lists.len() - 1) as u32
                }
            };
        }
        let hist = &mut self.lists[ent.hist as usize - 1];
        if let Some(i) = hist.chunks_exact(2).position(|p| p[0] == core) {
            let v = hist[2 * i + 1] as i64 + n;
            debug_assert!(v >= 0);
            if v <= 0 {
                // the last pair takes its place: its count, then its core
                hist.swap_remove(2 * i + 1);
                hist.swap_remove(2 * i);
            } else {
                hist[2 * i + 1] = v as u32;
            }
        } else if n > 0 {
            hist.push(core);
            hist.push(n as u32);
        }
        if hist.is_empty() {
            self.free.push(ent.hist - 1);
            ent.hist = 0;
        }
    }

    pub fn get(&self, ent: &EntB, core: u32) -> u32 {
        self.of(ent).find(|h| h.0 == core).map(|h| h.1).unwrap_or(0)
    }

    pub fn heap_bytes(&self) -> usize {
        self.lists.capacity() * std::mem::size_of::<Members>()
            + self.lists.iter().filter(|h| h.spilled()).map(|h| h.capacity() * 4).sum::<usize>() + self.free.capacity() * 4
    }
}

/// A public cluster as the kernel tracks it (the Python side keeps scores, alerts and verdicts).
#[derive(Clone)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ClusterB {
    pub op: u32,
    pub size: u32,
    pub born_at: i64,
    pub updated_at: i64,
    /// the members' usage per bucket, summed (bucket, API exchanges, output tokens), ascending (damage.rs)
    pub usage: Vec<(u32, u64, u64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lineage {
    Born,
    Grew,
    Shrank,
    Merged,
    MergedInto,
    Split,
    Expired,
}

impl Lineage {
    pub fn name(self) -> &'static str {
        match self {
            Lineage::Born => "born",
            Lineage::Grew => "grew",
            Lineage::Shrank => "shrank",
            Lineage::Merged => "merged",
            Lineage::MergedInto => "merged_into",
            Lineage::Split => "split",
            Lineage::Expired => "expired",
        }
    }
}

#[derive(Default)]
pub struct TickOut {
    pub tick_end: i64,
    pub watermark: f64,
    pub lineage: Vec<(u32, Lineage, u32, u32)>, // cluster, kind, size, other cluster (NONE)
    pub changed: Vec<u32>,                        // clusters whose membership changed
    pub touched: Vec<u32>,                        // clusters whose members gained or lost links
    pub gone: Vec<u32>,
    pub worked: bool,
}

/// Work lists of one tick (cleared at its end).
#[derive(Default)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Dirty {
    pub strong: Vec<u32>,             // strong entities to re-evaluate
    pub moved_kind: Vec<(u32, u8)>,   // (account, kind) whose "has a private one" may differ
    pub lost: Vec<(u32, u32)>,        // (account, entity) binding connections removed
    pub unite: Vec<(u32, u32)>,       // (binding entity, its new member)
    pub weak: Vec<u32>,               // weak entities whose Q(e) may differ
    pub flipped_off: Vec<u32>,
    pub flipped_on: Vec<u32>,
    pub touched_accounts: Vec<u32>,
    pub free_accounts: Vec<u32>,
    pub cohort_check: Vec<(u32, u32)>, // (account, template) whose cohort membership may differ
    pub owned_check: Vec<u32>,         // templates whose owned status may differ (owned.rs)
    pub owned_join: Vec<(u32, u32)>,   // (account, template): a new member of a template that may be owned
    pub damaged: Vec<u32>,             // clusters whose damage moved in the last applied tick (damage.rs)
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Graph {
    pub cfg: GraphConfig,
    pub names: Names,
    /// the graph's own ids for accounts and entities (see intern::Space)
    pub acc_space: Space,
    pub ent_space: Space,
    pub acct: Vec<AcctB>,
    pub ent: Vec<EntB>,
    pub hists: Hists,
    /// template -> its lockstep cohort entity (few templates have one)
    pub cohorts: FxHashMap<u32, u32>,
    /// template -> [captive members, members on a set] (only templates with some; owned.rs)
    pub captive: FxHashMap<u32, [u32; 2]>,
    /// owned template -> its group entity (owned.rs)
    pub owned: FxHashMap<u32, u32>,
    pub cores: crate::stage_b::tables::Cores,
    pub weak: crate::stage_b::tables::Weak,
    pub ops: crate::stage_b::tables::Ops,
    pub clusters: FxHashMap<u32, ClusterB>,
    pub next_cluster: u32,
    pub open_buckets: FxHashMap<(u32, u32), Vec<u32>>,
    pub closed_minutes_before: u32,
    /// per template with API activity: its rhythm and its recent crowded minutes (graph::lockstep)
    pub rhythm: FxHashMap<u32, Rhythm>,
    /// per template that had crowded minutes: the arrivals of the last `sync_recent_buckets` of them
    /// (sorted account ids)
    pub crowded: FxHashMap<u32, VecDeque<Vec<u32>>>,
    /// per template used in the last closed minute: that minute and its accounts (sorted), to tell
    /// arrivals from accounts still at it (pruned at every close: one minute of activity)
    pub last_minute: FxHashMap<u32, (u32, Vec<u32>)>,
    pub dirty: Dirty,
    pub stamp: u32,
    pub now: i64,
    pub link_count: usize,
    pub deltas: FxHashMap<u32, (Vec<String>, Vec<String>)>, // cluster -> (added, removed) accounts, this tick
    pub population_tokens_median: f64,
    usage_seen: bool,
    pub counters: GraphCounters,
    pub last_watermark: f64,
    /// per sending partition: its ids -> ours (accounts, entities); a cache, verified on every use
    pub remap: FxHashMap<u32, (Vec<u32>, Vec<u32>)>,
}

#[derive(Default, Clone, Copy)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct GraphCounters {
    pub ticks: u64,
    pub changes: u64,
    pub sync_buckets: u64,
    pub unknown_removals: u64,
    pub split_steps: u64, // accounts the split check expanded (its cost)
    pub owned_flips: u64, // templates that became or stopped being owned (owned.rs)
    pub phase_ns: [u64; 10], // time per phase of apply (see PHASES)
}

pub const PHASES: [&str; 10] = ["sort", "links", "facts", "lockstep", "binding", "cores", "weak", "operations",
                                "identity", "finish"];

fn account_name<'a>(names: &'a Names, b: &'a ChangeBatch, i: u32) -> &'a str {
    if b.shared { names.accounts.get_str(b.accounts.ids[i as usize]) } else { b.accounts.get(i) }
}

fn entity_name<'a>(names: &'a Names, b: &'a ChangeBatch, i: u32) -> &'a str {
    if b.shared { names.entities.get_str(b.entities.ids[i as usize]) } else { b.entities.get(i) }
}

impl Graph {
    // -- names through the graph's ids ------------------------------------------------------------
    #[inline]
    pub fn acc_str(&self, b: u32) -> &str {
        self.names.accounts.get_str(self.acc_space.to_names(b))
    }
    #[inline]
    pub fn acc_bytes(&self, b: u32) -> &[u8] {
        self.names.accounts.bytes(self.acc_space.to_names(b))
    }
    pub fn acc_lookup(&self, s: &str) -> Option<u32> {
        self.acc_space.lookup(&self.names.accounts, s)
    }
    pub fn acc_intern(&mut self, s: &str) -> (u32, bool) {
        self.acc_space.intern(&mut self.names.accounts, s)
    }
    pub fn acc_retain(&mut self, b: u32) {
        self.acc_space.retain(&mut self.names.accounts, b)
    }
    pub fn acc_release(&mut self, b: u32) -> bool {
        self.acc_space.release(&mut self.names.accounts, b)
    }
    pub fn acc_is_live(&self, b: u32) -> bool {
        self.acc_space.is_live(&self.names.accounts, b)
    }
    pub fn acc_count(&self) -> usize {
        self.acc_space.count(&self.names.accounts)
    }
    #[inline]
    pub fn ent_str(&self, b: u32) -> &str {
        self.names.entities.get_str(self.ent_space.to_names(b))
    }
    #[inline]
    pub fn ent_bytes(&self, b: u32) -> &[u8] {
        self.names.entities.bytes(self.ent_space.to_names(b))
    }
    pub fn ent_lookup(&self, s: &str) -> Option<u32> {
        self.ent_space.lookup(&self.names.entities, s)
    }
    pub fn ent_intern(&mut self, s: &str) -> (u32, bool) {
        self.ent_space.intern(&mut self.names.entities, s)
    }
    pub fn ent_retain(&mut self, b: u32) {
        self.ent_space.retain(&mut self.names.entities, b)
    }
    pub fn ent_release(&mut self, b: u32) -> bool {
        self.ent_space.release(&mut self.names.entities, b)
    }
    pub fn ent_is_live(&self, b: u32) -> bool {
        self.ent_space.is_live(&self.names.entities, b)
    }
    pub fn ent_count(&self) -> usize {
        self.ent_space.count(&self.names.entities)
    }

    pub fn new(cfg: GraphConfig) -> Self {
        Graph {
            cfg, names: Names::default(), acc_space: Space::default(), ent_space: Space::default(), acct: Vec::new(),
            ent: Vec::new(), hists: Default::default(), cohorts: FxHashMap::default(), captive: FxHashMap::default(), owned: FxHashMap::default(), cores: Default::default(), weak: Default::default(), ops: Default::default(),
            clusters: FxHashMap::default(), next_cluster: 1, open_buckets: FxHashMap::default(),
            closed_minutes_before: 0, rhythm: FxHashMap::default(), crowded: FxHashMap::default(), last_minute: FxHashMap::default(), dirty: Dirty::default(), stamp: 1, now: i64::MIN, link_count: 0,
            deltas: FxHashMap::default(), population_tokens_median: 0.0, usage_seen: false,
            counters: GraphCounters::default(), last_watermark: f64::NEG_INFINITY, remap: FxHashMap::default(),
        }
    }

    /// A template's lockstep cohort entity (NONE: none yet).
    #[inline]
    pub fn cohort_of(&self, template: u32) -> u32 {
        if self.cohorts.is_empty() { NONE } else { self.cohorts.get(&template).copied().unwrap_or(NONE) }
    }

    #[inline]
    pub fn kind(&self, e: u32) -> u8 {
        self.ent[e as usize].kind
    }

    pub fn max_degree(&self, kind: u8) -> u32 {
        match kind {
            DEVICE => self.cfg.device_max_degree,
            PAYMENT => self.cfg.payment_max_degree,
            _ => u32::MAX,
        }
    }

    // -- one tick -----------------------------------------------------------------------------
    /// Apply the batches of one tick (one per partition, all closing the same `tick_end`) and run
    /// detection. The changes are applied in a canonical order (sorted by name), so the result does
    /// not depend on how the input was partitioned.
    pub fn apply(&mut self, batches: &[ChangeBatch]) -> TickOut {
        let tick_end = batches.iter().map(|b| b.tick_end).max().unwrap_or(self.now);
        self.now = tick_end;
        self.stamp = self.stamp.wrapping_add(1).max(1);
        self.counters.ticks += 1;
        self.deltas.clear();
        self.dirty.damaged.clear();
        let watermark = batches.iter().map(|b| b.watermark).fold(f64::INFINITY, f64::min);
        if watermark.is_finite() {
            self.last_watermark = watermark;
        }
        let mut out = TickOut { tick_end, watermark: self.last_watermark, ..Default::default() };

        // Canonical order: by the names' stable hashes (names break the rare tie), so ids, and with
        // them every tie-break, are the same however the input was partitioned.
        type Ref = (u64, u64, usize, u32, u32); // (account hash, entity hash, batch, account, entity)
        let mut removes: Vec<Ref> = Vec::new();
        let mut adds: Vec<(Ref, u32)> = Vec::new();
        for (bi, b) in batches.iter().enumerate() {
            removes.extend(b.removes.iter().map(|&(a, e)| (b.accounts.hashes[a as usize], b.entities.hashes[e as usize], bi, a, e)));
            adds.extend(b.adds.iter().map(|&(a, e, t)| ((b.accounts.hashes[a as usize], b.entities.hashes[e as usize], bi, a, e), t)));
        }
        let mut clock = std::time::Instant::now();
        let mut phase = |g: &mut GraphCounters, i: usize| {
            let now = std::time::Instant::now();
            g.phase_ns[i] += (now - clock).as_nanos() as u64;
            clock = now;
        };
        let n_changes: usize = batches.iter().map(|b| b.changes()).sum();
        self.counters.changes += n_changes as u64;
        {
            // (ties of 64-bit name hashes are broken by the names)
            let n = &self.names;
            let names = |r: &Ref| (account_name(n, &batches[r.2], r.3), entity_name(n, &batches[r.2], r.4));
            removes.sort_unstable_by(|x, y| (x.0, x.1).cmp(&(y.0, y.1)).then_with(|| names(x).cmp(&names(y))));
            adds.sort_unstable_by(|x, y| (x.0 .0, x.0 .1).cmp(&(y.0 .0, y.0 .1)).then_with(|| names(&x.0).cmp(&names(&y.0))));
        }
        phase(&mut self.counters, 0);
        for (i, r) in removes.iter().enumerate() {
            self.prefetch_change(batches, &removes, i, |r| r);
            let b = &batches[r.2];
            match (self.resolve_account(b, r.3, false), self.resolve_entity(b, r.4, false)) {
                (Some(a), Some(e)) if self.acct[a as usize].link(e).is_some() => self.remove_link(a, e),
                _ => self.counters.unknown_removals += 1,
            }
        }
        for (i, (r, t)) in adds.iter().enumerate() {
            self.prefetch_change(batches, &adds, i, |x| &x.0);
            let b = &batches[r.2];
            let a = self.resolve_account(b, r.3, true).expect("created");
            let e = self.resolve_entity(b, r.4, true).expect("created");
            if self.acct[a as usize].link(e).is_none() {
                self.add_link(a, e, *t);
            }
        }
        let mut activity: Vec<(u64, u64, u32, usize, u32, u32)> = Vec::new();
        for (bi, b) in batches.iter().enumerate() {
            activity.extend(b.activity.iter().map(|&(a, e, m)| (b.accounts.hashes[a as usize], b.entities.hashes[e as usize], m, bi, a, e)));
        }
        {
            let n = &self.names;
            activity.sort_unstable_by(|x, y| (x.0, x.1, x.2).cmp(&(y.0, y.1, y.2)).then_with(|| {
                (account_name(n, &batches[x.3], x.4), entity_name(n, &batches[x.3], x.5))
                    .cmp(&(account_name(n, &batches[y.3], y.4), entity_name(n, &batches[y.3], y.5)))
            }));
        }
        let activity: Vec<(u32, u32, u32)> = activity.iter().filter_map(|&(_, _, m, bi, a, e)| {
            let b = &batches[bi];
            Some((self.resolve_account(b, a, false)?, self.resolve_entity(b, e, false)?, m))
        }).collect();
        phase(&mut self.counters, 1);
        self.apply_facts(batches);
        phase(&mut self.counters, 2);
        let worked_before = !self.dirty.strong.is_empty() || !self.dirty.weak.is_empty() || !self.dirty.lost.is_empty()
            || !self.dirty.unite.is_empty();
        self.lockstep(&activity, tick_end);
        phase(&mut self.counters, 3);
        self.rebind();
        phase(&mut self.counters, 4);
        self.update_cores();
        phase(&mut self.counters, 5);
        self.update_weak();
        phase(&mut self.counters, 6);
        self.update_ops();
        phase(&mut self.counters, 7);
        self.reconcile(tick_end, &mut out);
        phase(&mut self.counters, 8);
        self.finish_tick(&mut out);
        if tick_end % (3600 * POPULATION_REFRESH_HOURS) == 0 || (self.population_tokens_median == 0.0 && self.usage_seen) {
            self.usage_seen = false;
            self.refresh_population();
        }
        out.worked = worked_before || !out.lineage.is_empty() || !out.touched.is_empty();
        phase(&mut self.counters, 9);
        for b in batches.iter().filter(|b| b.shared) {
            // the window retained every name it sent by id until we applied it (its ids, not ours)
            for &id in &b.accounts.ids {
                self.names.accounts.release(id);
            }
            for &id in &b.entities.ids {
                self.names.entities.release(id);
            }
            for &id in &b.domains.ids {
                self.names.domains.release(id);
            }
        }
        out
    }

    /// While applying `changes` in order, at position `i`: ask for what the change `3 * STEP` on will
    /// read first (its names' id maps: the shared names' map, or the cache of the sender's ids), then
    /// for the account and entity slots of the one `2 * STEP` on (whose maps were asked for; with names
    /// of their own, the names' slots too), then for their link and member lists (and the names' bytes
    /// the cache's check compares) of the one `STEP` on. Hints only, no effect on results.
    #[inline(always)]
    fn prefetch_change<T>(&self, batches: &[ChangeBatch], changes: &[T], i: usize, r: impl Fn(&T) -> &(u64, u64, usize, u32, u32)) {
        const STEP: usize = 4;
        use crate::store::index::{prefetch, prefetch_slice};
        // (batch, its account's and entity's hints, the cached ids if any)
        let at = |k: usize| changes.get(i + k).map(&r).map(|r| (&batches[r.2], r.3 as usize, r.4 as usize));
        let cache = |b: &ChangeBatch| if b.shared { None } else { self.remap.get(&b.partition) };
        let ids = |b: &ChangeBatch, ai: usize, ei: usize| -> (Option<u32>, Option<u32>) {
            match cache(b) {
                None if b.shared => (self.acc_space.mapped(b.accounts.ids[ai]), self.ent_space.mapped(b.entities.ids[ei])),
                None => (None, None),
                Some((acc, ent)) => (acc.get(b.accounts.ids[ai] as usize).copied().filter(|&x| x != NONE),
                                     ent.get(b.entities.ids[ei] as usize).copied().filter(|&x| x != NONE)),
            }
        };
        if let Some((b, ai, ei)) = at(3 * STEP) {
            match cache(b) {
                None if b.shared => {
                    self.acc_space.prefetch(b.accounts.ids[ai]);
                    self.ent_space.prefetch(b.entities.ids[ei]);
                }
                None => {}
                Some((acc, ent)) => {
                    if let Some(x) = acc.get(b.accounts.ids[ai] as usize) {
                        prefetch(x);
                    }
                    if let Some(x) = ent.get(b.entities.ids[ei] as usize) {
                        prefetch(x);
                    }
                }
            }
        }
        if let Some((b, ai, ei)) = at(2 * STEP) {
            let (a, e) = ids(b, ai, ei);
            if let Some(a) = a.filter(|&a| (a as usize) < self.acct.len()) {
                prefetch(&self.acct[a as usize]);
                if !b.shared {
                    self.names.accounts.prefetch_id(a, 0);
                }
            }
            if let Some(e) = e.filter(|&e| (e as usize) < self.ent.len()) {
                prefetch(&self.ent[e as usize]);
                if !b.shared {
                    self.names.entities.prefetch_id(e, 0);
                }
            }
        }
        if let Some((b, ai, ei)) = at(STEP) {
            let (a, e) = ids(b, ai, ei);
            if let Some(a) = a.filter(|&a| (a as usize) < self.acct.len()) {
                prefetch_slice(self.acct[a as usize].links.as_slice());
                if !b.shared {
                    self.names.accounts.prefetch_id(a, 1);
                }
            }
            if let Some(e) = e.filter(|&e| (e as usize) < self.ent.len()) {
                prefetch_slice(&self.ent[e as usize].members[..]);
                if !b.shared {
                    self.names.entities.prefetch_id(e, 1);
                }
            }
        }
    }

    /// The graph's id for a batch's account name: the sender's id is tried first (a cache, checked by
    /// comparing names), else the name is looked up (or, with `create`, interned).
    fn resolve_account(&mut self, b: &ChangeBatch, i: u32, create: bool) -> Option<u32> {
        if b.shared {
            let a = b.accounts.ids[i as usize];
            let id = match self.acc_space.mapped(a) {
                Some(id) if self.acct[id as usize].live => return Some(id),
                Some(id) => id,
                None if !create => return None,
                None => self.acc_space.map(&mut self.names.accounts, a).0,
            };
            if !create {
                return None;
            }
            if id as usize >= self.acct.len() {
                grow_to(&mut self.acct, id as usize, AcctB::default());
            }
            self.acct[id as usize] = AcctB::fresh();
            return Some(id);
        }
        let name = b.accounts.get(i);
        let hint = b.accounts.ids[i as usize] as usize;
        let cache = &self.remap.entry(b.partition).or_default().0;
        if let Some(&id) = cache.get(hint) {
            if id != NONE && self.acc_is_live(id) && self.acc_bytes(id) == name.as_bytes() {
                return Some(id);
            }
        }
        let id = if create { Some(self.intern_account(name)) } else { self.acc_lookup(name) }?;
        let cache = &mut self.remap.get_mut(&b.partition).expect("made above").0;
        if cache.len() <= hint {
            cache.resize(hint + 1, NONE);
        }
        cache[hint] = id;
        Some(id)
    }

    fn resolve_entity(&mut self, b: &ChangeBatch, i: u32, create: bool) -> Option<u32> {
        if b.shared {
            let a = b.entities.ids[i as usize];
            let id = match self.ent_space.mapped(a) {
                Some(id) if (id as usize) < self.ent.len() && self.ent[id as usize].live => return Some(id),
                Some(id) => id,
                None if !create => return None,
                None => self.ent_space.map(&mut self.names.entities, a).0,
            };
            if !create {
                return None;
            }
            self.fresh_entity(id);
            return Some(id);
        }
        let name = b.entities.get(i);
        let hint = b.entities.ids[i as usize] as usize;
        let cache = &self.remap.entry(b.partition).or_default().1;
        if let Some(&id) = cache.get(hint) {
            if id != NONE && self.ent_is_live(id) && self.ent_bytes(id) == name.as_bytes() {
                return Some(id);
            }
        }
        let id = if create { Some(self.intern_entity(name)) } else { self.ent_lookup(name) }?;
        let cache = &mut self.remap.get_mut(&b.partition).expect("made above").1;
        if cache.len() <= hint {
            cache.resize(hint + 1, NONE);
        }
        cache[hint] = id;
        Some(id)
    }

    fn intern_account(&mut self, s: &str) -> u32 {
        let (id, _new) = self.acc_intern(s);
        if id as usize >= self.acct.len() {
            grow_to(&mut self.acct, id as usize, AcctB::default());
        }
        if !self.acct[id as usize].live {
            self.acct[id as usize] = AcctB::fresh();
        }
        id
    }

    pub fn intern_entity(&mut self, s: &str) -> u32 {
        let (id, _new) = self.ent_intern(s);
        if (id as usize) >= self.ent.len() || !self.ent[id as usize].live {
            self.fresh_entity(id);
        }
        id
    }

    fn fresh_entity(&mut self, id: u32) {
        if id as usize >= self.ent.len() {
            grow_to(&mut self.ent, id as usize, EntB::default());
        }
        let kind = self.ent_bytes(id)[0];
        self.ent[id as usize] = EntB { kind, live: true, ..Default::default() };
        if kind == TEMPLATE && !self.cohorts.is_empty() {
            self.cohorts.remove(&id); // a reused id is a new template
        }
        if kind == TEMPLATE {
            self.captive.remove(&id);
            debug_assert!(!self.owned.contains_key(&id), "a freed template's group was released with it");
        }
    }

    // -- links ----------------------------------------------------------------------------------
    pub fn add_link(&mut self, a: u32, e: u32, t: u32) {
        let pos = self.ent[e as usize].members.len() as u32;
        self.ent[e as usize].members.push(a);
        let kind = self.kind(e);
        let binds = self.ent[e as usize].binding;
        let links = &mut self.acct[a as usize].links;
        if links.len() == links.capacity() {
            links.reserve_exact(2.max(links.len() / 4)); // a quarter at a time: link lists are most of the state
        }
        links.push(Link::new(e, pos, t, kind, binds));
        self.acc_retain(a);
        self.ent_retain(e);
        self.link_count += 1;
        self.dirty.touched_accounts.push(a);
        let deg = self.ent[e as usize].members.len();
        if kind == TEMPLATE {
            self.template_member_moved(a, e, deg, true);
        }
        if is_strong(kind) {
            self.mark_strong(e);
            if !is_derived(kind) {
                self.dirty.moved_kind.push((a, kind));
                if deg == 2 {
                    // no longer private to its first account: that account's same-kind answers change
                    let first = self.ent[e as usize].members[0];
                    self.dirty.moved_kind.push((first, kind));
                }
            }
            if !is_derived(kind) && !self.acct[a as usize].has_private_cached(kind) {
                self.ent[e as usize].exclusive += 1;
            }
            if self.ent[e as usize].binding {
                self.dirty.unite.push((e, a));
            }
        } else {
            let core = self.acct[a as usize].core;
            if core != NONE {
                self.cores_weak_link(core, e, 1);
            }
            self.mark_weak(e);
        }
    }

    pub fn remove_link(&mut self, a: u32, e: u32) {
        let idx = self.acct[a as usize].links.iter().position(|l| l.ent == e).expect("link exists");
        let link = self.acct[a as usize].links.swap_remove(idx);
        let members = &mut self.ent[e as usize].members;
        let pos = link.pos as usize;
        members.swap_remove(pos);
        if pos < members.len() {
            let moved = members[pos];
            if let Some(l) = self.acct[moved as usize].link_mut(e) {
                l.pos = pos as u32;
            }
        }
        self.link_count -= 1;
        self.dirty.touched_accounts.push(a);
        let kind = self.kind(e);
        let deg = self.ent[e as usize].members.len();
        if is_strong(kind) {
            if self.ent[e as usize].binding {
                self.dirty.lost.push((a, e));
            }
            if !is_derived(kind) && !self.acct[a as usize].has_private_cached(kind) {
                self.ent[e as usize].exclusive -= 1;
            }
            self.mark_strong(e);
            if !is_derived(kind) {
                self.dirty.moved_kind.push((a, kind));
                if deg == 1 {
                    let survivor = self.ent[e as usize].members[0];
                    self.dirty.moved_kind.push((survivor, kind)); // private to the survivor again
                }
            }
        } else {
            let core = self.acct[a as usize].core;
            if core != NONE {
                self.cores_weak_link(core, e, -1);
            }
            self.mark_weak(e);
            if kind == TEMPLATE {
                let cohort = self.cohort_of(e);
                if cohort != NONE && self.acct[a as usize].link(cohort).is_some() {
                    self.remove_link(a, cohort); // its lockstep evidence goes with the template link
                }
                let group = self.owned.get(&e).copied().unwrap_or(NONE);
                if group != NONE && self.acct[a as usize].link(group).is_some() {
                    self.remove_link(a, group); // and its membership of the template's owned group
                }
                self.template_member_moved(a, e, deg, false);
            }
        }
        let freed = self.ent_release(e);
        if freed || (deg == 0 && !is_derived(kind)) {
            // the graph is done with it (with shared names the window may still hold the name)
            if kind == TEMPLATE {
                if !self.open_buckets.is_empty() {
                    self.open_buckets.retain(|k, _| k.0 != e); // its minutes must not count for a reused id
                }
                self.rhythm.remove(&e);
                self.crowded.remove(&e);
                self.last_minute.remove(&e);
            }
            let cohort = if kind == TEMPLATE { self.cohorts.remove(&e).unwrap_or(NONE) } else { NONE };
            let group = if kind == TEMPLATE { self.owned.remove(&e).unwrap_or(NONE) } else { NONE };
            if kind == TEMPLATE {
                self.captive.remove(&e);
            }
            debug_assert!(self.ent[e as usize].hist == 0, "an entity with no member counts no core");
            self.ent[e as usize] = EntB::default();
            for derived in [cohort, group] {
                if derived != NONE && self.ent_release(derived) {
                    self.ent[derived as usize] = EntB::default();
                }
            }
        }
        if self.acct[a as usize].links.is_empty() {
            self.dirty.free_accounts.push(a); // forgotten at the end of the tick (its cluster is settled first)
        } else {
            self.acc_release(a);
        }
    }

    pub fn mark_strong(&mut self, e: u32) {
        let stamp = self.stamp;
        let ent = &mut self.ent[e as usize];
        if ent.stamp != stamp {
            ent.stamp = stamp;
            self.dirty.strong.push(e);
        }
    }

    pub fn mark_weak(&mut self, e: u32) {
        let stamp = self.stamp;
        let ent = &mut self.ent[e as usize];
        if ent.stamp != stamp {
            ent.stamp = stamp;
            self.dirty.weak.push(e);
        }
    }

    fn apply_facts(&mut self, batches: &[ChangeBatch]) {
        for b in batches {
            for &(a, t) in &b.signups {
                if let Some(id) = self.resolve_account(b, a, false) {
                    let acc = &mut self.acct[id as usize];
                    if acc.signup == NONE || t > acc.signup {
                        acc.signup = t;
                    }
                }
            }
            for &(a, d) in &b.domain_facts {
                if let Some(id) = self.resolve_account(b, a, false) {
                    let dom = if b.shared { b.domains.ids[d as usize] } else { self.names.domains.intern(b.domains.get(d)).0 };
                    let acc = &mut self.acct[id as usize];
                    if acc.domain != dom {
                        if acc.domain != NONE {
                            self.names.domains.release(acc.domain);
                        }
                        self.names.domains.retain(dom);
                        self.acct[id as usize].domain = dom;
                    }
                }
            }
            for &(a, h) in &b.datacenter {
                if let Some(id) = self.resolve_account(b, a, false) {
                    let acc = &mut self.acct[id as usize];
                    if acc.dc_hour == NONE || h > acc.dc_hour {
                        acc.dc_hour = h;
                    }
                }
            }
            self.usage_seen |= !b.usage.is_empty();
            for &(a, h, r, t) in &b.usage {
                if let Some(id) = self.resolve_account(b, a, false) {
                    let usage = &mut self.acct[id as usize].usage;
                    let bucket = h / USAGE_BUCKET_HOURS;
                    let t = t.min(u32::MAX as u64) as u32;
                    match usage.binary_search_by_key(&bucket, |u| u.0) {
                        Ok(i) => {
                            usage[i].1 = usage[i].1.saturating_add(r);
                            usage[i].2 = usage[i].2.saturating_add(t);
                        }
                        Err(i) => usage.insert(i, (bucket, r, t)),
                    }
                    let cluster = self.acct[id as usize].cluster;
                    if cluster != NONE {
                        self.cluster_usage(cluster, bucket, r as u64, t as u64, true);
                    }
                }
            }
        }
    }

    // -- lockstep: synchronous template buckets → cohorts --------------------------------------
    /// API activity per (template, minute). A minute is *synchronous* for the accounts that make
    /// it so — lockstep is "the same accounts, at the same times, when the template is otherwise
    /// quiet", so a closing minute with `d >= sync_min_accounts` accounts counts when both hold:
    /// - **burst**: `d >= sync_min_lift x` the template's usual accounts per minute (its account-
    ///   minutes over the minutes since it was first used) — a steady crowd of always-on scripts is
    ///   never a burst;
    /// - **recurrence**: one of the template's last `sync_recent_buckets` crowded minutes shares at
    ///   least `sync_min_accounts` accounts and `sync_min_overlap` of the smaller minute with it —
    ///   a popular template's rush hour is a different crowd every minute.
    /// The accounts in those overlaps get a hit. An account whose template minutes are mostly hits
    /// (`hits >= sync_min_buckets` and `hits >= sync_min_ratio * uses`) joins the template's cohort.
    fn lockstep(&mut self, activity: &[(u32, u32, u32)], tick_end: i64) {
        let bucket = self.cfg.sync_bucket_seconds as i64;
        for &(a, e, minute) in activity {
            let Some(link) = self.acct[a as usize].link_mut(e) else { continue };
            link.uses = link.uses.saturating_add(1);
            self.dirty.cohort_check.push((a, e));
            if minute >= self.closed_minutes_before {
                self.open_buckets.entry((e, minute)).or_default().push(a);
            }
        }
        let closed_before = (tick_end.max(0) / bucket) as u32; // buckets ending at or before tick_end
        if closed_before > self.closed_minutes_before {
            let mut closing: Vec<(u32, u32)> =
                self.open_buckets.keys().filter(|k| k.1 < closed_before).copied().collect();
            closing.sort_unstable_by_key(|k| (k.1, k.0)); // minutes in time order: each sees its past
            for key in closing {
                let mut accounts = self.open_buckets.remove(&key).unwrap_or_default();
                let (tpl, minute) = key;
                if !self.ent[tpl as usize].live {
                    continue;
                }
                accounts.sort_unstable();
                accounts.dedup();
                let arrivals = match self.last_minute.get(&tpl) {
                    Some((m, before)) if m + 1 == minute => difference(&accounts, before),
                    _ => accounts.clone(),
                };
                let crowded = &mut self.crowded;
                let hits = self.rhythm.entry(tpl).or_insert_with(|| Rhythm::new(minute))
                    .close(minute, accounts.len(), arrivals, &self.cfg, || crowded.entry(tpl).or_default());
                self.last_minute.insert(tpl, (minute, accounts));
                if !hits.is_empty() {
                    self.counters.sync_buckets += 1;
                }
                for a in hits {
                    if let Some(link) = self.acct[a as usize].link_mut(tpl) {
                        link.add_hit();
                    }
                }
                // every account of the bucket was queued for a check by its activity
            }
            self.closed_minutes_before = closed_before;
            // only the last closed minute can be the minute before one still open
            self.last_minute.retain(|_, (m, _)| *m + 1 >= closed_before);
        }
        let mut checks = std::mem::take(&mut self.dirty.cohort_check);
        checks.sort_unstable();
        checks.dedup();
        for (a, tpl) in checks {
            if !self.acct[a as usize].live || !self.ent[tpl as usize].live {
                continue;
            }
            let Some(link) = self.acct[a as usize].link(tpl).copied() else { continue };
            let member = link.hits() >= self.cfg.sync_min_buckets && link.hits() as f64 >= self.cfg.sync_min_ratio * link.uses as f64;
            let cohort = self.cohort_of(tpl);
            let has = cohort != NONE && self.acct[a as usize].link(cohort).is_some();
            if member && !has {
                let c = if cohort == NONE {
                    let name = format!("s:{}", &self.ent_str(tpl)[2..]);
                    let c = self.intern_entity(&name);
                    self.cohorts.insert(tpl, c);
                    self.ent_retain(c); // the template holds its cohort's id
                    c
                } else {
                    cohort
                };
                let ts = (tick_end.max(0) as u64).min(u32::MAX as u64 - 1) as u32;
                self.add_link(a, c, ts);
            } else if !member && has {
                self.remove_link(a, cohort);
            }
        }
    }

    // -- binding --------------------------------------------------------------------------------
    /// Does the account use an entity of `kind` no other live account uses?
    pub fn has_private(&self, a: u32, kind: u8) -> bool {
        if kind == TEMPLATE {
            return self.captive_fresh(a) & 4 != 0; // for templates the flag is "captive" (owned.rs)
        }
        if kind == DEVICE {
            // a phone or laptop of its own; an account on a new fingerprint every session (an
            // anti-detect browser, an emulator reset per login) has many, and none of them is an identity
            let own = self.acct[a as usize].links.iter()
                .filter(|l| l.strong_kind() == DEVICE && self.ent[l.ent as usize].members.len() == 1).count();
            return own >= 1 && (own as u32) < self.cfg.device_rotation_min;
        }
        self.acct[a as usize].links.iter().any(|l| l.strong_kind() == kind && self.ent[l.ent as usize].members.len() == 1)
    }

    /// The device/card rule with the exclusive count kept incrementally (O(1)).
    pub fn strong_binds(&self, e: u32) -> bool {
        let ent = &self.ent[e as usize];
        self.binds_with(ent, ent.exclusive)
    }

    /// The same rule counted from scratch (the full recompute and the consistency check use it).
    pub fn strong_binds_fresh(&self, e: u32) -> bool {
        let ent = &self.ent[e as usize];
        let exclusive = ent.members.iter().filter(|&&a| !self.has_private(a, ent.kind)).count() as u32;
        self.binds_with(ent, exclusive)
    }

    fn binds_with(&self, ent: &EntB, exclusive: u32) -> bool {
        let deg = ent.members.len() as u32;
        if deg < 2 {
            return false;
        }
        if is_derived(ent.kind) {
            return true;
        }
        if deg > self.max_degree(ent.kind) {
            return false;
        }
        exclusive as f64 >= self.cfg.exclusivity_min * deg as f64
    }

    fn rebind(&mut self) {
        // settle each moved account's "has a private one" and carry changes to its entities' counts
        let mut moved = std::mem::take(&mut self.dirty.moved_kind);
        moved.sort_unstable();
        moved.dedup();
        for (a, kind) in moved {
            if !self.acct[a as usize].live {
                continue;
            }
            if kind == TEMPLATE {
                self.settle_captive(a);
                continue;
            }
            let truth = self.has_private(a, kind);
            if truth == self.acct[a as usize].has_private_cached(kind) {
                continue;
            }
            self.acct[a as usize].private ^= private_bit(kind);
            for i in 0..self.acct[a as usize].links.len() {
                let link = self.acct[a as usize].links[i];
                let e = link.ent;
                if link.strong_kind() == kind {
                    let ent = &mut self.ent[e as usize];
                    if truth { ent.exclusive -= 1 } else { ent.exclusive += 1 }
                    self.mark_strong(e);
                }
            }
        }
        self.settle_owned(); // after the private flags: owned status reads the captive counts
        let mut dirty = std::mem::take(&mut self.dirty.strong);
        dirty.sort_unstable();
        let mut status: Vec<u32> = Vec::new();
        for &e in &dirty {
            // an id freed this tick may have been reused by an entity of another kind
            if !self.ent[e as usize].live || !is_strong(self.ent[e as usize].kind) {
                continue;
            }
            let binds = self.strong_binds(e);
            if binds != self.ent[e as usize].binding {
                self.ent[e as usize].binding = binds;
                for mi in 0..self.ent[e as usize].members.len() {
                    let m = self.ent[e as usize].members[mi];
                    let link = self.acct[m as usize].link_mut(e).expect("a member links its entity");
                    link.set_binds(binds);
                }
                if binds {
                    self.dirty.flipped_on.push(e);
                } else {
                    self.dirty.flipped_off.push(e);
                    let members = self.ent[e as usize].members.to_vec();
                    for a in members {
                        self.dirty.lost.push((a, e));
                    }
                }
                status.extend(self.ent[e as usize].members.iter().copied());
            }
        }
        for &(a, _e) in &self.dirty.lost {
            status.push(a);
        }
        status.extend(self.dirty.unite.iter().map(|&(_e, a)| a)); // new members of binding entities
        status.sort_unstable();
        status.dedup();
        for a in status {
            let acc = &self.acct[a as usize];
            if !acc.live {
                continue;
            }
            let strong = acc.links.iter().any(|l| l.binds());
            self.acct[a as usize].strong = strong;
        }
        self.dirty.strong = Vec::new();
    }

    fn finish_tick(&mut self, out: &mut TickOut) {
        let mut touched: Vec<u32> = std::mem::take(&mut self.dirty.touched_accounts)
            .into_iter()
            .filter(|&a| (a as usize) < self.acct.len())
            .map(|a| self.acct[a as usize].cluster)
            .filter(|&c| c != NONE)
            .collect();
        touched.sort_unstable();
        touched.dedup();
        out.touched = touched;
        let frees = std::mem::take(&mut self.dirty.free_accounts);
        for a in frees {
            if self.acct[a as usize].links.is_empty() {
                self.acct[a as usize] = AcctB::default(); // no link left: the account is forgotten
            }
            self.acc_release(a);
        }
        self.dirty.flipped_on.clear();
        self.dirty.flipped_off.clear();
        self.dirty.lost.clear();
        self.dirty.unite.clear();
        self.dirty.weak.clear();
        // drop usage hours that left the window
        let first_hour = ((self.now - self.cfg.window).max(0) / 3600) as u32 + 1;
        if self.now % (3600 * POPULATION_REFRESH_HOURS) == 0 {
            for acc in self.acct.iter_mut().filter(|a| a.live && !a.usage.is_empty()) {
                let keep = acc.usage.partition_point(|u| !bucket_in_window(u.0, first_hour));
                if keep > 0 {
                    acc.usage.remove_front(keep);
                }
            }
        }
        if self.now % (3600 * USAGE_BUCKET_HOURS as i64) == 0 {
            self.prune_cluster_usage(first_hour);
        }
    }

    /// Median output tokens in the window per account with API usage that is in no cluster (refreshed
    /// hourly): the population's ordinary volume, against which a cluster's extraction intensity is
    /// measured. Clustered accounts are left out, so a stream where rings are the majority still
    /// measures them against ordinary users.
    fn refresh_population(&mut self) {
        let first_hour = ((self.now - self.cfg.window).max(0) / 3600) as u32 + 1;
        let mut volumes: Vec<u64> = self.acct.iter()
            .filter(|a| a.live && !a.usage.is_empty() && a.cluster == NONE)
            .map(|a| a.usage.iter().filter(|u| bucket_in_window(u.0, first_hour)).map(|u| u.2 as u64).sum())
            .filter(|&v| v > 0)
            .collect();
        if volumes.is_empty() {
            return;
        }
        let mid = volumes.len() / 2;
        let (_, m, _) = volumes.select_nth_unstable(mid);
        self.population_tokens_median = *m as f64;
    }

    // -- inspection --------------------------------------------------------------------------
    pub fn cluster_members(&self, no: u32) -> Vec<u32> {
        match self.clusters.get(&no) {
            Some(c) => self.op_accounts(c.op),
            None => Vec::new(),
        }
    }

    /// Heap bytes by part (capacity, not length).
    pub fn heap_parts(&self) -> Vec<(&'static str, usize)> {
        let links: usize = self.acct.iter().map(|a| a.links.capacity() * std::mem::size_of::<Link>()).sum();
        let usage: usize = self.acct.iter().map(|a| a.usage.capacity() * 12).sum();
        let members: usize = self.ent.iter().filter(|e| e.members.spilled()).map(|e| e.members.capacity() * 4).sum();
        vec![
            ("account slots", self.acct.capacity() * std::mem::size_of::<AcctB>()),
            ("account links", links),
            ("account usage", usage),
            ("entity slots", self.ent.capacity() * std::mem::size_of::<EntB>()),
            ("entity members", members),
            ("entity per-core counts", self.hists.heap_bytes()),
            ("template cohorts", self.cohorts.capacity() * 9),
            ("owned templates", table_bytes(self.captive.capacity(), 12) + table_bytes(self.owned.capacity(), 8)),
            ("names", if self.acc_space.shared { self.acc_space.heap_bytes() + self.ent_space.heap_bytes() } else { self.names.heap_bytes() }),
            ("cores", self.cores.heap_bytes()),
            ("weak edges", self.weak.heap_bytes()),
            ("operations", self.ops.heap_bytes()),
            ("template rhythm", table_bytes(self.rhythm.capacity(), 4 + std::mem::size_of::<Rhythm>())
                + table_bytes(self.crowded.capacity(), 4 + std::mem::size_of::<VecDeque<Vec<u32>>>())
                + self.crowded.values().map(crowded_bytes).sum::<usize>()
                + table_bytes(self.last_minute.capacity(), 4 + std::mem::size_of::<(u32, Vec<u32>)>())
                + self.last_minute.values().map(|(_, v)| v.capacity() * 4).sum::<usize>()),
        ]
    }

    pub fn heap_bytes(&self) -> usize {
        self.heap_parts().iter().map(|p| p.1).sum()
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn an_entity_slot_is_32_bytes() {
        // entity slots are the graph's largest part per live link: members inline up to 3 (in 16
        // bytes, src/members.rs), core counts and cohorts on the side
        assert_eq!(std::mem::size_of::<EntB>(), 32);
    }
}
