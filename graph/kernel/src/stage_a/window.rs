//! Stage A — one input partition's rolling window: de-duplication, the clock guard, the lateness
//! buffer, and the account→entity links with their last-seen times and exact expiry.
//!
//! Events are keyed by account, so everything here is per account and a partition needs nothing
//! from the others. What the global graph needs is emitted as one [`ChangeBatch`] per detection tick:
//! links that appeared (a refresh of a known link changes no graph and does not cross) and links
//! that expired, plus usage per closed hour, API activity per minute (for the lockstep check) and
//! account facts.
//!
//! Expiry: a link dies when `last_seen <= tick - window`, at the first tick at or after that. Each
//! account sits in the expiry bucket (one tick wide) of its oldest link; when the bucket comes due
//! the account's few links are scanned and it is re-registered at its new oldest. So a tick looks at
//! the accounts whose oldest link is about to expire, nothing else.

use crate::stage_a::changes::{BatchBuilder, ChangeBatch};
use crate::store::hashing::{id_hash, ContentHasher};
use crate::store::intern::{Names, NONE};
use crate::store::list::List;
use crate::stage_a::ordering::{Admission, ClockGuard, Dedupe, Reorder, SkewRejection};
use rustc_hash::{FxHashMap, FxHashSet};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

pub const SIGNUP: u8 = 0;
pub const API_USAGE: u8 = 4;
pub const EVENT_TYPES: [&str; 5] = ["signup", "login", "api_key_created", "payment_method_added", "api_usage"];

#[derive(serde::Serialize, serde::Deserialize)]
pub struct WindowConfig {
    pub window: i64,
    pub tick: i64,
    pub lateness: f64,
    pub max_skew: f64,
    pub skew_sample: usize,
    pub datacenter_asns: FxHashSet<String>,
    pub partition: u32,
}

/// One event as the adapter hands it over (borrowed from Python's strings).
pub struct EventRow<'a> {
    pub source: u64,
    pub event_id: &'a str,
    pub etype: u8,
    pub account: &'a str,
    pub ts: f64,
    pub device: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub payment: Option<&'a str>,
    pub template: Option<&'a str>,
    pub email_domain: Option<&'a str>,
    pub asn: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub country: Option<&'a str>,
    pub model: Option<&'a str>,
    pub requests: Option<u64>,
    pub tokens_in: Option<u64>,
    pub tokens_out: Option<u64>,
}

/// Names interned per event: its account and the four entity keys of `EventRow::keys`.
const KEYS: usize = 5;

impl<'a> EventRow<'a> {
    /// The entity keys an event links its account to, in `Held::ents` order (None: absent or empty).
    #[inline]
    fn keys(&self) -> [(&'static str, Option<&'a str>); 4] {
        let some = |v: Option<&'a str>| v.filter(|v| !v.is_empty());
        [("d:", some(self.device)), ("p:", some(self.payment)), ("i:", some(self.ip)), ("t:", some(self.template))]
    }

    fn content(&self) -> u32 {
        let strings = [self.device, self.ip, self.payment, self.email_domain, self.user_agent, self.asn, self.country];
        // the buffer's size: an upper bound (every number counted present, 9 bytes)
        let size = 2 * 9 + 9 + self.event_id.len() + 9 + self.account.len() + 3 * 9
            + strings.iter().chain([&self.model, &self.template]).map(|f| ContentHasher::field_size(f.map(str::as_bytes))).sum::<usize>();
        let mut h = ContentHasher::new(size);
        h.field(Some(self.event_id.as_bytes()));
        h.number(Some(self.etype as u64));
        h.field(Some(self.account.as_bytes()));
        h.number(Some(self.ts.to_bits()));
        for f in strings {
            h.field(f.map(str::as_bytes));
        }
        for n in [self.requests, self.tokens_in, self.tokens_out] {
            h.number(n);
        }
        h.field(self.model.map(str::as_bytes));
        h.field(self.template.map(str::as_bytes));
        h.finish32()
    }
}

#[derive(Clone, Copy)]
#[derive(serde::Serialize, serde::Deserialize)]
struct Held {
    ts: f64,
    id: u64,
    source: u64,
    account: u32,
    ents: [u32; 4], // device, payment, ip, template (NONE when absent)
    domain: u32,
    requests: u32,
    tokens_out: u64,
    etype: u8,
    datacenter: bool,
}

#[derive(Clone)]
#[derive(serde::Serialize, serde::Deserialize)]
struct Acct {
    links: List<(u32, u32)>, // (entity, last seen, whole seconds rounded up)
    reg: u32,               // earliest expiry bucket it is registered in
    usage_hour: u32,        // open hour of usage not yet emitted (NONE: none)
    usage_req: u32,
    usage_tok: u64,
    dc_hour: u32,
    domain: u32,
    act_tpl: u32,
    act_min: u32,
}

impl Default for Acct {
    fn default() -> Self {
        Acct { links: List::new(), reg: NONE, usage_hour: NONE, usage_req: 0, usage_tok: 0, dc_hour: NONE, domain: NONE,
               act_tpl: NONE, act_min: NONE }
    }
}

#[derive(Default, Clone, Copy)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub events: u64,
    pub duplicates: u64,
    pub late: u64,
    pub too_old: u64,
    pub expired_links: u64,
    pub clock_skew: u64,
    pub id_conflict: u64,
}

pub const REJECT_SKEW: u8 = 1;
pub const REJECT_CONFLICT: u8 = 2;

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Window {
    cfg: WindowConfig,
    pub names: Names,
    acct: Vec<Acct>,
    dedupe: Dedupe,
    guard: ClockGuard,
    reorder: Reorder,
    slots: Vec<Held>,
    free_slots: Vec<u32>,
    due: BinaryHeap<Reverse<u32>>,
    buckets: FxHashMap<u32, Vec<u32>>,
    next_tick: Option<i64>,
    builder: BatchBuilder,
    ready: VecDeque<ChangeBatch>,
    usage_pending: Vec<u32>,
    link_count: usize,
    pub counters: Counters,
    /// (source, kind, reason) of events refused since the last call that drained it.
    pub rejected: Vec<(u64, u8, String)>,
    scratch_ready: Vec<u32>,
    /// per fed row: the hashes of its account and its four entity keys (`hold`)
    scratch_hashes: Vec<u64>,
    scratch_ids: Vec<u64>, // per fed row: its event id's hash
    scratch_released: Vec<u32>,
    scratch_skew: Vec<SkewRejection>,
}

fn ceil_secs(ts: f64) -> u32 {
    let c = ts.ceil();
    if c <= 0.0 {
        0
    } else if c >= u32::MAX as f64 {
        u32::MAX - 1
    } else {
        c as u32
    }
}

impl Window {
    pub fn new(cfg: WindowConfig) -> Self {
        let retention = (cfg.window as f64) + cfg.lateness;
        let guard = ClockGuard::new(cfg.max_skew, cfg.skew_sample);
        let reorder = Reorder::new(cfg.lateness);
        Window {
            cfg, names: Names::default(), acct: Vec::new(),
            dedupe: Dedupe::new(retention), guard, reorder, slots: Vec::new(), free_slots: Vec::new(),
            due: BinaryHeap::new(), buckets: FxHashMap::default(), next_tick: None, builder: BatchBuilder::default(),
            ready: VecDeque::new(), usage_pending: Vec::new(), link_count: 0, counters: Counters::default(),
            rejected: Vec::new(), scratch_ready: Vec::new(), scratch_hashes: Vec::new(), scratch_ids: Vec::new(), scratch_released: Vec::new(), scratch_skew: Vec::new(),
        }
    }

    pub fn watermark(&self) -> f64 {
        self.reorder.watermark()
    }

    /// Batches from now on name accounts and entities by id: the graph shares these names.
    pub fn share_names(&mut self) {
        self.builder.shared = true;
    }

    // -- input ----------------------------------------------------------------------------------
    pub fn feed(&mut self, rows: &[EventRow], wall: Option<f64>) {
        let hashes = self.name_hashes(rows);
        let mut ids = std::mem::take(&mut self.scratch_ids);
        ids.clear();
        ids.extend(rows.iter().map(|row| id_hash(row.event_id)));
        for level in 0..2 {
            ids.iter().for_each(|&id| self.dedupe.prefetch(id, level)); // hints, as for the names
        }
        for (k, row) in rows.iter().enumerate() {
            let id = ids[k];
            match self.dedupe.admit(id, row.content(), self.reorder.watermark()) {
                Admission::Duplicate => {
                    self.counters.duplicates += 1;
                    continue;
                }
                Admission::Conflict => {
                    self.counters.id_conflict += 1;
                    let shown: String = row.event_id.chars().take(80).collect();
                    let quoted = if shown.contains('\'') { format!("\"{shown}\"") } else { format!("'{shown}'") };
                    self.rejected.push((row.source, REJECT_CONFLICT,
                                        format!("event_id {quoted} was seen before with different content")));
                    continue;
                }
                Admission::New => {}
            }
            let slot = self.hold(row, id, &hashes[KEYS * k..KEYS * (k + 1)]);
            let mut ready = std::mem::take(&mut self.scratch_ready);
            let mut skew = std::mem::take(&mut self.scratch_skew);
            self.guard.check(slot, row.ts, self.reorder.watermark(), wall, &mut ready, &mut skew);
            self.take_guard_output(&mut ready, &mut skew);
            self.scratch_ready = ready;
            self.scratch_skew = skew;
            // A boundary the watermark passed closes before the next event: a tick's batch is then a
            // function of the partition's event sequence alone, not of how it was cut into feeds
            // (a partition's new owner re-sends exactly the batches its old owner sent).
            if let Some(next) = self.next_tick {
                let wm = self.reorder.watermark();
                if wm >= next as f64 {
                    self.advance_ticks(wm);
                }
            }
        }
        self.scratch_hashes = hashes;
        self.scratch_ids = ids;
        // Every event before a boundary the watermark passed is applied: detect now.
        let wm = self.reorder.watermark();
        if let Some(next) = self.next_tick {
            if wm >= next as f64 {
                self.advance_ticks(wm);
            }
        }
        self.counters.late = self.reorder.late_events;
    }

    fn take_guard_output(&mut self, ready: &mut Vec<u32>, skew: &mut Vec<SkewRejection>) {
        for rej in skew.drain(..) {
            self.counters.clock_skew += 1;
            let source = self.slots[rej.slot as usize].source;
            self.rejected.push((source, REJECT_SKEW, rej.reason));
            self.drop_slot(rej.slot);
        }
        for slot in ready.drain(..) {
            self.counters.events += 1;
            let (ts, id) = (self.slots[slot as usize].ts, self.slots[slot as usize].id);
            let mut released = std::mem::take(&mut self.scratch_released);
            self.reorder.push(slot, ts, id, &mut released);
            for r in released.drain(..) {
                self.apply(r);
            }
            self.scratch_released = released;
        }
    }

    /// End of input, or the input went idle: release every held event and close the tick covering them.
    pub fn flush(&mut self, wall: Option<f64>) {
        let mut ready = std::mem::take(&mut self.scratch_ready);
        let mut skew = std::mem::take(&mut self.scratch_skew);
        self.guard.drain(self.reorder.watermark(), wall, &mut ready, &mut skew);
        self.take_guard_output(&mut ready, &mut skew);
        self.scratch_ready = ready;
        self.scratch_skew = skew;
        let mut released = std::mem::take(&mut self.scratch_released);
        self.reorder.flush(&mut released);
        for r in released.drain(..) {
            self.apply(r);
        }
        self.scratch_released = released;
        if let Some(next) = self.next_tick {
            self.close_tick(next, true);
            self.next_tick = Some(next + self.cfg.tick);
        }
        self.counters.late = self.reorder.late_events;
    }

    /// The hashes of the names `rows` will intern (`KEYS` a row: account, then `row.keys()`), with
    /// the index entries, slots and bytes their lookups read asked of the CPU in three passes, so
    /// the lookups mostly find them in cache instead of waiting for memory one after another.
    /// Hints only: which ids the names get is decided by `hold`, in order, as before.
    fn name_hashes(&mut self, rows: &[EventRow]) -> Vec<u64> {
        let mut hashes = std::mem::take(&mut self.scratch_hashes);
        hashes.clear();
        let (accounts, entities) = (&self.names.accounts, &self.names.entities);
        for row in rows {
            hashes.push(accounts.hash_parts(b"", row.account.as_bytes()));
            for (prefix, value) in row.keys() {
                hashes.push(value.map_or(0, |v| entities.hash_parts(prefix.as_bytes(), v.as_bytes())));
            }
        }
        for level in 0..3 {
            for (k, &h) in hashes.iter().enumerate() {
                if k % KEYS == 0 {
                    accounts.prefetch(h, level);
                } else if h != 0 {
                    entities.prefetch(h, level);
                }
            }
        }
        hashes
    }

    fn hold(&mut self, row: &EventRow, id: u64, hashes: &[u64]) -> u32 {
        let account = self.retain_account(hashes[0], row.account);
        let mut ents = [NONE; 4];
        for (i, (prefix, value)) in row.keys().into_iter().enumerate() {
            if let Some(v) = value {
                ents[i] = self.retain_entity(hashes[1 + i], prefix, v);
            }
        }
        let domain = match row.email_domain {
            Some(d) if !d.is_empty() => self.names.domains.intern(d).0,
            _ => NONE,
        };
        let datacenter = row.asn.map(|a| self.cfg.datacenter_asns.contains(a)).unwrap_or(false);
        let held = Held {
            ts: row.ts, id, source: row.source, account, ents, domain,
            requests: row.requests.unwrap_or(1).min(u32::MAX as u64) as u32, tokens_out: row.tokens_out.unwrap_or(0),
            etype: row.etype, datacenter,
        };
        match self.free_slots.pop() {
            Some(s) => {
                self.slots[s as usize] = held;
                s
            }
            None => {
                self.slots.push(held);
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn retain_account(&mut self, h: u64, s: &str) -> u32 {
        let (id, _) = self.names.accounts.intern_hashed(h, b"", s.as_bytes());
        self.names.accounts.retain(id);
        if id as usize >= self.acct.len() {
            crate::store::intern::grow_to(&mut self.acct, id as usize, Acct::default());
        }
        id
    }

    fn retain_entity(&mut self, h: u64, prefix: &str, value: &str) -> u32 {
        let (id, _) = self.names.entities.intern_hashed(h, prefix.as_bytes(), value.as_bytes());
        self.names.entities.retain(id);
        id
    }

    fn release_account(&mut self, id: u32) {
        if self.names.accounts.release(id) {
            self.acct[id as usize] = Acct::default();
        }
    }

    fn drop_slot(&mut self, slot: u32) {
        let h = self.slots[slot as usize];
        for e in h.ents {
            if e != NONE {
                self.names.entities.release(e);
            }
        }
        self.release_account(h.account);
        self.free_slots.push(slot);
    }

    // -- applying released events ---------------------------------------------------------------
    fn apply(&mut self, slot: u32) {
        let h = self.slots[slot as usize];
        let tick = self.cfg.tick;
        match self.next_tick {
            None => self.next_tick = Some(((h.ts / tick as f64).floor() as i64 + 1) * tick),
            Some(next) if h.ts >= next as f64 => self.advance_ticks(h.ts),
            Some(next) if h.ts <= (next - tick - self.cfg.window) as f64 => {
                self.counters.too_old += 1; // already outside the window it would join
                self.drop_slot(slot);
                return;
            }
            _ => {}
        }
        let t = ceil_secs(h.ts);
        for e in h.ents {
            if e != NONE {
                self.touch(h.account, e, t);
            }
        }
        self.note_facts(&h, t);
        self.drop_slot(slot);
    }

    fn touch(&mut self, account: u32, entity: u32, t: u32) {
        let a = &mut self.acct[account as usize];
        if let Some(link) = a.links.iter_mut().find(|l| l.0 == entity) {
            if t > link.1 {
                link.1 = t; // a refresh: no graph change, nothing crosses
            }
            return;
        }
        if a.links.len() == a.links.capacity() {
            a.links.reserve_exact(2.max(a.links.len() / 4));
        }
        a.links.push((entity, t));
        let bucket = t / self.cfg.tick as u32;
        let register = a.reg == NONE || bucket < a.reg;
        if register {
            a.reg = bucket;
        }
        self.names.accounts.retain(account);
        self.names.entities.retain(entity);
        self.link_count += 1;
        if register {
            self.register(account, bucket);
        }
        let ai = self.builder.account(&mut self.names.accounts, account);
        let ei = self.builder.entity(&mut self.names.entities, entity);
        self.builder.batch.adds.push((ai, ei, t));
    }

    fn register(&mut self, account: u32, bucket: u32) {
        let list = self.buckets.entry(bucket).or_default();
        if list.is_empty() {
            self.due.push(Reverse(bucket));
        }
        list.push(account);
    }

    fn note_facts(&mut self, h: &Held, t: u32) {
        let account = h.account;
        if h.etype == SIGNUP {
            let ai = self.builder.account(&mut self.names.accounts, account);
            self.builder.batch.signups.push((ai, t));
        }
        if h.domain != NONE && self.acct[account as usize].domain != h.domain {
            self.acct[account as usize].domain = h.domain;
            let ai = self.builder.account(&mut self.names.accounts, account);
            let di = self.builder.domain(&mut self.names.domains, h.domain);
            self.builder.batch.domain_facts.push((ai, di));
        }
        if h.etype != API_USAGE {
            return;
        }
        let hour = (h.ts.max(0.0) / 3600.0).floor() as u32;
        if h.datacenter && self.acct[account as usize].dc_hour != hour {
            self.acct[account as usize].dc_hour = hour;
            let ai = self.builder.account(&mut self.names.accounts, account);
            self.builder.batch.datacenter.push((ai, hour));
        }
        self.add_usage(account, hour, h.requests, h.tokens_out);
        let tpl = h.ents[3];
        if tpl != NONE {
            let minute = (h.ts.max(0.0) / 60.0).floor() as u32;
            let a = &mut self.acct[account as usize];
            if a.act_tpl != tpl || a.act_min != minute {
                a.act_tpl = tpl;
                a.act_min = minute;
                let ai = self.builder.account(&mut self.names.accounts, account);
                let ei = self.builder.entity(&mut self.names.entities, tpl);
                self.builder.batch.activity.push((ai, ei, minute));
            }
        }
    }

    fn add_usage(&mut self, account: u32, hour: u32, requests: u32, tokens_out: u64) {
        let a = &mut self.acct[account as usize];
        if a.usage_hour == hour {
            a.usage_req = a.usage_req.saturating_add(requests);
            a.usage_tok += tokens_out;
            return;
        }
        if a.usage_hour != NONE && hour < a.usage_hour {
            // a late event for an hour already moved on from: its own record
            let ai = self.builder.account(&mut self.names.accounts, account);
            self.builder.batch.usage.push((ai, hour, requests, tokens_out));
            return;
        }
        if a.usage_hour != NONE {
            let (h0, r0, t0) = (a.usage_hour, a.usage_req, a.usage_tok);
            let ai = self.builder.account(&mut self.names.accounts, account);
            self.builder.batch.usage.push((ai, h0, r0, t0));
        } else {
            self.names.accounts.retain(account); // the pending hour keeps the account's id alive
            self.usage_pending.push(account);
        }
        let a = &mut self.acct[account as usize];
        a.usage_hour = hour;
        a.usage_req = requests;
        a.usage_tok = tokens_out;
    }

    /// Emit the usage of hours before `before_hour` (all of it when `before_hour` is NONE).
    fn emit_usage(&mut self, before_hour: u32) {
        let pending = std::mem::take(&mut self.usage_pending);
        let mut keep = Vec::with_capacity(pending.len());
        for account in pending {
            let a = &self.acct[account as usize];
            if a.usage_hour == NONE {
                self.release_account(account);
                continue;
            }
            if before_hour != NONE && a.usage_hour >= before_hour {
                keep.push(account);
                continue;
            }
            let (h0, r0, t0) = (a.usage_hour, a.usage_req, a.usage_tok);
            let ai = self.builder.account(&mut self.names.accounts, account);
            self.builder.batch.usage.push((ai, h0, r0, t0));
            let a = &mut self.acct[account as usize];
            a.usage_hour = NONE;
            a.usage_req = 0;
            a.usage_tok = 0;
            self.release_account(account);
        }
        self.usage_pending = keep;
    }

    // -- ticks and expiry ------------------------------------------------------------------------
    fn advance_ticks(&mut self, ts: f64) {
        let tick = self.cfg.tick;
        let mut next = self.next_tick.expect("advance before the first event");
        if ts - next as f64 > self.cfg.window as f64 {
            // A gap longer than the window: everything expires; one tick does what all would.
            next = (ts / tick as f64).floor() as i64 * tick;
        }
        while ts >= next as f64 {
            self.close_tick(next, false);
            next += tick;
        }
        self.next_tick = Some(next);
    }

    fn close_tick(&mut self, at: i64, last: bool) {
        let cutoff = at - self.cfg.window;
        self.counters.expired_links += self.expire(cutoff);
        self.dedupe.forget_before(cutoff as f64 - self.cfg.lateness);
        let hour = (at.max(0) / 3600) as u32;
        if last {
            self.emit_usage(NONE);
        } else if (at - self.cfg.tick).max(0) / 3600 != at.max(0) / 3600 {
            self.emit_usage(hour);
        }
        let batch = self.builder.finish(at, self.reorder.watermark(), self.cfg.partition);
        self.ready.push_back(batch);
    }

    fn expire(&mut self, cutoff: i64) -> u64 {
        if cutoff < 0 {
            return 0;
        }
        let cutoff = cutoff.min(u32::MAX as i64 - 1) as u32;
        let tick = self.cfg.tick as u32;
        let last_due = cutoff / tick;
        let mut due = Vec::new();
        while let Some(&Reverse(b)) = self.due.peek() {
            if b > last_due {
                break;
            }
            self.due.pop();
            due.push(b); // taken first: an account re-registered in a due bucket waits a tick
        }
        let mut removed = 0u64;
        for b in due {
            let accounts = self.buckets.remove(&b).unwrap_or_default();
            for account in accounts {
                removed += self.expire_account(account, b, cutoff);
            }
        }
        removed
    }

    fn expire_account(&mut self, account: u32, bucket: u32, cutoff: u32) -> u64 {
        if !self.names.accounts.is_live(account) {
            return 0;
        }
        let links = std::mem::take(&mut self.acct[account as usize].links);
        let mut keep = List::with_capacity(links.len());
        let mut gone = Vec::new();
        for &l in links.iter() {
            if l.1 <= cutoff {
                gone.push(l.0);
            } else {
                keep.push(l);
            }
        }
        let oldest = keep.iter().map(|l| l.1).min();
        let n = gone.len() as u64;
        if !gone.is_empty() {
            let ai = self.builder.account(&mut self.names.accounts, account);
            for e in &gone {
                let ei = self.builder.entity(&mut self.names.entities, *e);
                self.builder.batch.removes.push((ai, ei));
            }
        }
        let tick = self.cfg.tick as u32;
        let a = &mut self.acct[account as usize];
        a.links = keep;
        if let Some(o) = oldest {
            let nb = o / tick;
            if a.reg == NONE || a.reg <= bucket || nb < a.reg {
                a.reg = nb;
                self.register(account, nb);
            }
        } else {
            a.reg = NONE;
        }
        self.link_count -= gone.len();
        for e in gone {
            self.names.entities.release(e);
            self.release_account(account);
        }
        n
    }

    // -- output ------------------------------------------------------------------------------------
    pub fn pop_batch(&mut self) -> Option<ChangeBatch> {
        self.ready.pop_front()
    }

    pub fn pending_batches(&self) -> usize {
        self.ready.len()
    }

    /// Sources of the events the clock guard is holding (they may be rejected later).
    pub fn guard_sources(&self) -> Vec<u64> {
        self.guard.slots().map(|s| self.slots[s as usize].source).collect()
    }

    pub fn guard_len(&self) -> usize {
        self.guard.len()
    }

    pub fn held_events(&self) -> usize {
        self.reorder.len() + self.guard.len()
    }

    pub fn stats(&self) -> [(&'static str, u64); 6] {
        [("accounts", self.names.accounts.live() as u64), ("entities", self.names.entities.live() as u64),
         ("links", self.link_count as u64), ("held_events", self.held_events() as u64),
         ("remembered_event_ids", self.dedupe.len() as u64), ("pending_batches", self.ready.len() as u64)]
    }

    pub fn heap_parts(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("account slots", self.acct.capacity() * std::mem::size_of::<Acct>()),
            ("account links", self.acct.iter().map(|a| a.links.capacity() * 8).sum()),
            ("names", self.names.heap_bytes()),
            ("de-duplication", self.dedupe.heap_bytes()),
            ("held events", self.slots.capacity() * std::mem::size_of::<Held>()),
            ("expiry index", self.buckets.values().map(|v| v.capacity() * 4 + 16).sum::<usize>() + self.due.capacity() * 4),
        ]
    }

    pub fn heap_bytes(&self) -> usize {
        let links: usize = self.acct.iter().map(|a| a.links.capacity() * 8).sum();
        links + self.acct.capacity() * std::mem::size_of::<Acct>() + self.names.accounts.heap_bytes()
            + self.names.entities.heap_bytes() + self.names.domains.heap_bytes() + self.dedupe.heap_bytes()
            + self.slots.capacity() * std::mem::size_of::<Held>()
            + self.buckets.values().map(|v| v.capacity() * 4 + 16).sum::<usize>() + self.due.capacity() * 4
    }

    pub fn next_tick(&self) -> Option<i64> {
        self.next_tick
    }
}
