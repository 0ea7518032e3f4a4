//! The tables stage B's algorithms keep on the graph, apart from the algorithms themselves: the
//! cores (`cores.rs`), the weak edges between them (`weak.rs`) and the operations they form
//! (`ops.rs`). `Graph` (`graph.rs`) owns one of each; each algorithm module adds its behaviour to
//! `Graph`, so nothing here knows the graph and the graph knows no algorithm module.

use rustc_hash::{FxHashMap, FxHashSet};

// -- cores ------------------------------------------------------------------------------------------
#[derive(Default, Clone)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Core {
    pub members: Vec<u32>,
    pub profile: FxHashMap<u32, u32>,
    pub heavy: FxHashSet<u32>,
    pub heavy_size: u32,
    pub op: u32,
    pub cluster: u32, // the members' public cluster at the start of the tick (NONE for a new core)
    pub origin: Vec<(u32, u32)>,
    pub joined: Vec<u32>,
    pub stamp: u32,  // tick in which origin/joined are valid
    pub hstamp: u32, // tick in which the heavy set was queued for a recheck
    pub changed: Vec<u32>, // profile entries changed this tick
    pub live: bool,
}

#[derive(Default)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Cores {
    pub list: Vec<Core>,
    pub free: Vec<u32>,
    /// split-check scratch, reused: the search that reached each account of the checked core, by
    /// its position in the core, as (stamp, search) — a stale stamp is "unseen" — and each entity's
    /// search in a map (a check visits only the binding entities near what was lost; an array over
    /// every entity id would weigh 8 bytes an entity)
    #[serde(skip)]
    pub seen_acct: Vec<(u32, u32)>,
    #[serde(skip)]
    pub seen_stamp: u32,
    #[serde(skip)]
    pub seen_ent: FxHashMap<u32, u32>,
    pub touched: Vec<u32>,    // cores whose membership changed this tick (incl. created and dissolved)
    pub heavy_todo: Vec<u32>, // cores whose heavy set must be rechecked
    pub departed: Vec<u32>,   // accounts that left a core this tick
}

impl Cores {
    pub fn heap_bytes(&self) -> usize {
        let mut n = self.list.capacity() * std::mem::size_of::<Core>()
            + self.seen_acct.capacity() * 8 + crate::store::intern::table_bytes(self.seen_ent.capacity(), 8);
        for c in &self.list {
            n += c.members.capacity() * 4 + c.profile.capacity() * 9 + c.heavy.capacity() * 5 + c.origin.capacity() * 8
                + c.joined.capacity() * 4 + c.changed.capacity() * 4;
        }
        n
    }
    pub fn size(&self, c: u32) -> u32 {
        self.list[c as usize].members.len() as u32
    }
}

// -- weak edges -------------------------------------------------------------------------------------
pub const SINGLE: u32 = 1 << 31; // node id of a loose account: SINGLE | account

#[derive(Default)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Weak {
    pub supports: FxHashMap<u32, Vec<(u32, u32)>>,
    pub supp: FxHashMap<(u32, u32), u32>,
    pub edges: FxHashMap<u32, Vec<u32>>,
    pub edge_changes: Vec<(u32, u32)>,
}

impl Weak {
    pub fn heap_bytes(&self) -> usize {
        self.supports.capacity() * 36 + self.supports.values().map(|v| v.capacity() * 8).sum::<usize>()
            + self.supp.capacity() * 13 + self.edges.capacity() * 29 + self.edges.values().map(|v| v.capacity() * 4).sum::<usize>()
    }

    pub fn neighbours(&self, node: u32) -> &[u32] {
        self.edges.get(&node).map(|v| v.as_slice()).unwrap_or(&[])
    }

    pub fn set_edge(&mut self, x: u32, y: u32, on: bool) {
        for (a, b) in [(x, y), (y, x)] {
            let list = self.edges.entry(a).or_default();
            if on {
                list.push(b);
            } else if let Some(i) = list.iter().position(|&n| n == b) {
                list.swap_remove(i);
            }
            if list.is_empty() {
                self.edges.remove(&a);
            }
        }
        self.edge_changes.push((x, y));
    }
}

// -- operations -------------------------------------------------------------------------------------
#[derive(Default, Clone)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Op {
    pub nodes: Vec<u32>,
    pub size: u32,
    pub cluster: u32,
    pub live: bool,
}

#[derive(Default)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Ops {
    pub list: Vec<Op>,
    pub free: Vec<u32>,
    pub created: Vec<u32>,
    pub old_clusters: Vec<u32>,
    pub dropped: Vec<u32>, // loose accounts that were in an operation and are in none now
    pub stale: Vec<u32>,   // operations that lost a core this tick
}

impl Ops {
    pub fn heap_bytes(&self) -> usize {
        self.list.capacity() * std::mem::size_of::<Op>() + self.list.iter().map(|o| o.nodes.capacity() * 4).sum::<usize>()
    }
}
