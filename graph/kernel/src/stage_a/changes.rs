//! What crosses from a partition's window (stage A) to the global graph (stage B): one batch per
//! detection tick, carrying only *changes* — links that appeared or expired, API activity for the
//! lockstep check, closed hours of usage, and account facts. A refresh of a known link does not
//! cross. A batch names its accounts and entities by string (a per-batch string table), so it can
//! travel between processes (`to_bytes` / `from_bytes`) and be applied by any worker.

use crate::store::intern::Interner;
use rustc_hash::FxHashMap;

pub const FORMAT_VERSION: u8 = 2;

/// The strings a batch names, each with the sender's id for it (a cache hint for the receiver) and a
/// stable hash (the receiver's canonical order).
#[derive(Default, Clone, Debug)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct StrTable {
    pub bytes: Vec<u8>,
    pub ends: Vec<u32>,
    pub ids: Vec<u32>,
    pub hashes: Vec<u64>,
}

impl StrTable {
    pub fn push(&mut self, s: &[u8], id: u32) -> u32 {
        self.bytes.extend_from_slice(s);
        self.ends.push(self.bytes.len() as u32);
        self.ids.push(id);
        self.hashes.push(crate::store::hashing::name_hash(s));
        (self.ends.len() - 1) as u32
    }
    /// Shared names (one process): the sender's id and the name's hash, not the name itself.
    pub fn push_id(&mut self, id: u32, hash: u64) -> u32 {
        self.ids.push(id);
        self.hashes.push(hash);
        (self.ids.len() - 1) as u32
    }
    pub fn get(&self, i: u32) -> &str {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        unsafe { std::str::from_utf8_unchecked(&self.bytes[start..self.ends[i] as usize]) }
    }
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

#[derive(Default, Clone, Debug)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ChangeBatch {
    /// The tick boundary this batch closes: its changes are everything up to event time `tick_end`.
    pub tick_end: i64,
    pub watermark: f64,
    pub partition: u32,
    /// the receiver shares the sender's names: tables hold ids only, each retained until applied
    pub shared: bool,
    pub accounts: StrTable,
    pub entities: StrTable, // "d:", "p:", "i:", "t:" + value
    pub domains: StrTable,
    pub adds: Vec<(u32, u32, u32)>,     // account, entity, event time (s)
    pub removes: Vec<(u32, u32)>,       // account, entity
    pub activity: Vec<(u32, u32, u32)>, // account, template entity, minute
    pub usage: Vec<(u32, u32, u32, u64)>, // account, hour, API exchanges, output tokens
    pub signups: Vec<(u32, u32)>,       // account, event time
    pub domain_facts: Vec<(u32, u32)>,  // account, domain
    pub datacenter: Vec<(u32, u32)>,    // account, hour of API use from a datacenter ASN
}

impl ChangeBatch {
    pub fn is_empty(&self) -> bool {
        self.adds.is_empty() && self.removes.is_empty() && self.activity.is_empty() && self.usage.is_empty()
            && self.signups.is_empty() && self.domain_facts.is_empty() && self.datacenter.is_empty()
    }

    pub fn changes(&self) -> usize {
        self.adds.len() + self.removes.len() + self.activity.len() + self.usage.len() + self.signups.len()
            + self.domain_facts.len() + self.datacenter.len()
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        if self.shared {
            return Err("a batch for a graph in the same process carries ids, not names: it cannot be sent".into());
        }
        Ok(self.encode())
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(64 + self.accounts.bytes.len() + self.entities.bytes.len() + self.changes() * 12));
        w.0.extend_from_slice(b"FGCB");
        w.u8(FORMAT_VERSION);
        w.i64(self.tick_end);
        w.f64(self.watermark);
        w.u32(self.partition);
        for t in [&self.accounts, &self.entities, &self.domains] {
            w.u32(t.ends.len() as u32);
            for e in &t.ends {
                w.u32(*e);
            }
            for &id in &t.ids {
                w.u32(id);
            }
            w.u32(t.bytes.len() as u32);
            w.0.extend_from_slice(&t.bytes);
        }
        w.u32(self.adds.len() as u32);
        for &(a, e, t) in &self.adds {
            w.u32(a);
            w.u32(e);
            w.u32(t);
        }
        w.u32(self.removes.len() as u32);
        for &(a, e) in &self.removes {
            w.u32(a);
            w.u32(e);
        }
        w.u32(self.activity.len() as u32);
        for &(a, e, m) in &self.activity {
            w.u32(a);
            w.u32(e);
            w.u32(m);
        }
        w.u32(self.usage.len() as u32);
        for &(a, h, r, t) in &self.usage {
            w.u32(a);
            w.u32(h);
            w.u32(r);
            w.u64(t);
        }
        for v in [&self.signups, &self.domain_facts, &self.datacenter] {
            w.u32(v.len() as u32);
            for &(a, x) in v.iter() {
                w.u32(a);
                w.u32(x);
            }
        }
        w.0
    }

    pub fn from_bytes(b: &[u8]) -> Result<ChangeBatch, String> {
        let mut r = Reader { b, at: 0 };
        if r.take(4)? != b"FGCB" {
            return Err("not a fraudgraph change batch".into());
        }
        let version = r.u8()?;
        if version != FORMAT_VERSION {
            return Err(format!("change batch format {version}, this version reads {FORMAT_VERSION}"));
        }
        let mut c = ChangeBatch { tick_end: r.i64()?, watermark: r.f64()?, partition: r.u32()?, ..Default::default() };
        for which in 0..3 {
            let n = r.u32()? as usize;
            let mut t = StrTable::default();
            for _ in 0..n {
                t.ends.push(r.u32()?);
            }
            for _ in 0..n {
                t.ids.push(r.u32()?);
            }
            let len = r.u32()? as usize;
            t.bytes = r.take(len)?.to_vec();
            if std::str::from_utf8(&t.bytes).is_err() || t.ends.iter().any(|&e| e as usize > len)
                || t.ends.windows(2).any(|w| w[0] > w[1]) {
                return Err("corrupt string table".into());
            }
            t.hashes = (0..n as u32).map(|i| crate::store::hashing::name_hash(t.get(i).as_bytes())).collect();
            match which {
                0 => c.accounts = t,
                1 => c.entities = t,
                _ => c.domains = t,
            }
        }
        let (na, ne, nd) = (c.accounts.len() as u32, c.entities.len() as u32, c.domains.len() as u32);
        let check = |v: u32, n: u32| if v < n { Ok(v) } else { Err("index out of range".to_string()) };
        for _ in 0..r.u32()? {
            c.adds.push((check(r.u32()?, na)?, check(r.u32()?, ne)?, r.u32()?));
        }
        for _ in 0..r.u32()? {
            c.removes.push((check(r.u32()?, na)?, check(r.u32()?, ne)?));
        }
        for _ in 0..r.u32()? {
            c.activity.push((check(r.u32()?, na)?, check(r.u32()?, ne)?, r.u32()?));
        }
        for _ in 0..r.u32()? {
            c.usage.push((check(r.u32()?, na)?, r.u32()?, r.u32()?, r.u64()?));
        }
        for which in 0..3 {
            let n = r.u32()?;
            for _ in 0..n {
                let a = check(r.u32()?, na)?;
                let x = r.u32()?;
                match which {
                    0 => c.signups.push((a, x)),
                    1 => c.domain_facts.push((a, check(x, nd)?)),
                    _ => c.datacenter.push((a, x)),
                }
            }
        }
        if r.at != b.len() {
            return Err("trailing bytes after the change batch".into());
        }
        Ok(c)
    }
}

struct Writer(Vec<u8>);
impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}
impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.at + n > self.b.len() {
            return Err("truncated change batch".into());
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
}

/// Builds a batch from ids of the window's names: each name is copied (or, shared, retained) once per batch.
#[derive(Default)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct BatchBuilder {
    pub batch: ChangeBatch,
    pub shared: bool,
    accounts: FxHashMap<u32, u32>,
    entities: FxHashMap<u32, u32>,
    domains: FxHashMap<u32, u32>,
}

fn add(map: &mut FxHashMap<u32, u32>, table: &mut StrTable, names: &mut Interner, id: u32, shared: bool) -> u32 {
    if let Some(&i) = map.get(&id) {
        return i;
    }
    let i = if shared {
        names.retain(id); // released by the graph once applied
        table.push_id(id, crate::store::hashing::name_hash(names.bytes(id)))
    } else {
        table.push(names.bytes(id), id)
    };
    map.insert(id, i);
    i
}

impl BatchBuilder {
    pub fn account(&mut self, names: &mut Interner, id: u32) -> u32 {
        add(&mut self.accounts, &mut self.batch.accounts, names, id, self.shared)
    }
    pub fn entity(&mut self, names: &mut Interner, id: u32) -> u32 {
        add(&mut self.entities, &mut self.batch.entities, names, id, self.shared)
    }
    pub fn domain(&mut self, names: &mut Interner, id: u32) -> u32 {
        add(&mut self.domains, &mut self.batch.domains, names, id, self.shared)
    }
    pub fn finish(&mut self, tick_end: i64, watermark: f64, partition: u32) -> ChangeBatch {
        let mut b = std::mem::take(&mut self.batch);
        b.tick_end = tick_end;
        b.watermark = watermark;
        b.partition = partition;
        b.shared = self.shared;
        self.accounts.clear();
        self.entities.clear();
        self.domains.clear();
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_survives_the_wire_and_corruption_is_refused() {
        let mut b = BatchBuilder::default();
        let mut names = crate::store::intern::Names::default();
        let (acct, _) = names.accounts.intern("acct");
        let (phone, _) = names.entities.intern("d:phone");
        let (dom, _) = names.domains.intern("x.com");
        let a = b.account(&mut names.accounts, acct);
        let e = b.entity(&mut names.entities, phone);
        let d = b.domain(&mut names.domains, dom);
        b.batch.adds.push((a, e, 100));
        b.batch.removes.push((a, e));
        b.batch.usage.push((a, 3, 40, 1 << 40));
        b.batch.domain_facts.push((a, d));
        let batch = b.finish(120, 60.0, 2);
        let bytes = batch.to_bytes().unwrap();
        let back = ChangeBatch::from_bytes(&bytes).unwrap();
        assert_eq!(back.tick_end, 120);
        assert_eq!(back.accounts.get(0), "acct");
        assert_eq!(back.entities.get(0), "d:phone");
        assert_eq!(back.usage, vec![(0, 3, 40, 1 << 40)]);
        assert!(ChangeBatch::from_bytes(&bytes[..bytes.len() - 3]).is_err());
        let mut bad = bytes.clone();
        bad[4] = 99;
        assert!(ChangeBatch::from_bytes(&bad).unwrap_err().contains("format"));
    }
}
