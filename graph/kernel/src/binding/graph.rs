//! Stage B's binding: `Graph` (the global co-occurrence graph), the tick it reports (`Tick`) and a
//! cluster's measurements (`Measured`).

use crate::binding::config::GraphArgs;
use crate::binding::names::{enter, SharedNames};
use crate::binding::window::{Batch, Window};
use crate::stage_b::graph;
use crate::state;
use crate::store::intern::{self, NONE};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::sync::{Arc, Mutex};

#[pyclass(module = "graph._kernel")]
pub struct Graph {
    inner: graph::Graph,
    names: SharedNames,
}

impl Graph {
    fn with<R>(&mut self, f: impl FnOnce(&mut graph::Graph) -> R) -> R {
        enter(&mut self.inner, &self.names, f)
    }
}

/// What one applied tick changed (`Graph.apply`).
#[pyclass(module = "graph._kernel", frozen, get_all)]
pub struct Tick {
    tick_end: i64,
    watermark: f64,
    /// (cluster, kind, size, other cluster or None)
    lineage: Vec<(u32, &'static str, u32, Option<u32>)>,
    /// clusters whose membership or evidence changed
    changed: Vec<u32>,
    /// clusters whose members moved (incl. new ones)
    touched: Vec<u32>,
    /// clusters that ceased to exist
    gone: Vec<u32>,
    /// whether the tick changed anything at all
    worked: bool,
}

/// A cluster's measurements (`Graph.features`): what the policy scores.
#[pyclass(module = "graph._kernel", frozen)]
pub struct Measured {
    values: Vec<(&'static str, f64)>,
    /// (entity type, value, members sharing it, first seen, last seen)
    #[pyo3(get)]
    evidence: Vec<(&'static str, String, u32, f64, f64)>,
    /// (other cluster, entity type, shared entities, accounts here, accounts there)
    #[pyo3(get)]
    shared: Vec<(u32, &'static str, u32, u32, u32)>,
    /// API exchanges of the members within the window
    #[pyo3(get)]
    requests: u64,
    /// their output tokens
    #[pyo3(get)]
    tokens_out: u64,
    /// event time of the newest link among the members
    #[pyo3(get)]
    newest: u32,
}

#[pymethods]
impl Measured {
    /// Feature name -> value, rounded to 4 places.
    #[getter]
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.values {
            d.set_item(*k, *v)?;
        }
        Ok(d)
    }
}

/// An account's links as (entity type, value, seen), sorted (none for an unknown account).
fn sorted_links<'g>(g: &'g graph::Graph, account: &str) -> Vec<(&'static str, &'g str, u32)> {
    let Some(a) = g.acc_lookup(account) else { return Vec::new() };
    let mut links: Vec<(&'static str, &str, u32)> = g.acct[a as usize].links.iter().map(|l| {
        let s = g.ent_str(l.ent);
        (kind_name(s.as_bytes()[0]), &s[2..], l.ts)
    }).collect();
    links.sort_unstable();
    links
}

fn opt_id(v: u32) -> Option<u32> {
    if v == NONE {
        None
    } else {
        Some(v)
    }
}

/// Every entity type name `kind_name` gives, "unknown" last.
pub const KIND_NAMES: [&str; 7] = ["device", "payment", "ip", "template", "lockstep", "owned_template", "unknown"];

fn kind_name(k: u8) -> &'static str {
    match k {
        graph::DEVICE => "device",
        graph::PAYMENT => "payment",
        graph::IP => "ip",
        graph::TEMPLATE => "template",
        graph::COHORT => "lockstep",
        graph::OWNED => "owned_template",
        _ => "unknown",
    }
}

#[pymethods]
impl Graph {
    /// With `window`, the graph shares the window's names (one process): batches then carry ids only.
    #[new]
    #[pyo3(signature = (config, window=None))]
    fn new(config: GraphArgs, window: Option<PyRefMut<'_, Window>>) -> PyResult<Self> {
        let cfg = config.config()?;
        let names = match window {
            Some(mut w) => {
                if w.inner.next_tick().is_some() {
                    return Err(PyValueError::new_err("share a window's names before it is fed"));
                }
                w.inner.share_names();
                w.names.clone()
            }
            None => Arc::new(Mutex::new(intern::Names::default())),
        };
        let mut inner = graph::Graph::new(cfg);
        if Arc::strong_count(&names) > 1 {
            inner.acc_space.shared = true;
            inner.ent_space.shared = true;
        }
        Ok(Graph { inner, names })
    }

    /// The whole graph as bytes for a checkpoint (src/state.rs). A graph that shares its window's
    /// names stores none of them: they travel in the window's state.
    fn to_state<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let data = if self.inner.acc_space.shared {
            state::encode(state::GRAPH, &self.inner)
        } else {
            self.with(|inner| state::encode(state::GRAPH, &*inner))
        };
        Ok(PyBytes::new(py, &data.map_err(PyValueError::new_err)?))
    }

    /// A graph from `to_state`'s bytes; one that shared its window's names is restored with that
    /// (restored) window.
    #[staticmethod]
    #[pyo3(signature = (data, window=None))]
    fn from_state(data: &[u8], window: Option<PyRef<'_, Window>>) -> PyResult<Graph> {
        let mut inner: graph::Graph = state::decode(state::GRAPH, data).map_err(PyValueError::new_err)?;
        let names = match (inner.acc_space.shared, window) {
            (true, Some(w)) => w.names.clone(),
            (false, None) => {
                let mut names = std::mem::take(&mut inner.names);
                names.rebuild_index();
                Arc::new(Mutex::new(names))
            }
            (true, None) => return Err(PyValueError::new_err("incompatible: this graph shared a window's names; restore it with that window")),
            (false, Some(_)) => return Err(PyValueError::new_err("incompatible: this graph kept names of its own; restore it without a window")),
        };
        Ok(Graph { inner, names })
    }

    /// Apply one tick's batches (one per partition) and detect.
    fn apply(&mut self, py: Python<'_>, batches: Vec<PyRefMut<'_, Batch>>) -> PyResult<Tick> {
        self.with(|inner| {
            let mut owned = Vec::with_capacity(batches.len());
            for mut b in batches {
                owned.push(b.inner.take().ok_or_else(|| PyValueError::new_err("this batch was already applied"))?);
            }
            let out = py.allow_threads(|| inner.apply(&owned));  // Rust only: other threads run meanwhile
            let lineage = out.lineage.iter().map(|&(c, k, s, o)| (c, k.name(), s, opt_id(o))).collect();
            Ok(Tick { tick_end: out.tick_end, watermark: out.watermark, lineage, changed: out.changed,
                      touched: out.touched, gone: out.gone, worked: out.worked })
        })
    }

    /// A cluster's measurements (None for an unknown cluster).
    fn features(&mut self, py: Python<'_>, cluster: u32) -> Option<Measured> {
        self.with(|inner| {
            // Rust only (a walk over the members): replay's stage A runs meanwhile
            let f = py.allow_threads(|| inner.features(cluster))?;
            Some(Measured {
                values: f.values.iter().map(|(k, v)| (*k, (v * 10_000.0).round() / 10_000.0)).collect(),
                evidence: f.evidence.into_iter()
                    .map(|e| (kind_name(e.kind), e.value, e.members, e.first_seen as f64, e.last_seen as f64)).collect(),
                shared: f.shared.into_iter().map(|s| (s.cluster, kind_name(s.kind), s.entities, s.here, s.there)).collect(),
                requests: f.requests,
                tokens_out: f.tokens_out,
                newest: f.newest,
            })
        })
    }

    fn members(&mut self, cluster: u32) -> Vec<String> {
        self.with(|inner| {
            let mut v: Vec<String> = inner.cluster_members(cluster).into_iter()
                .map(|a| inner.acc_str(a).to_owned()).collect();
            v.sort_unstable();
            v
        })
    }

    /// `members`, packed: (where each name ends, i64 little-endian; the names' UTF-8 bytes back to
    /// back). One Python object instead of one per member (`graph/names.py`).
    fn members_packed<'py>(&mut self, py: Python<'py>, cluster: u32) -> (Bound<'py, PyBytes>, Bound<'py, PyBytes>) {
        self.with(|inner| {
            let mut names: Vec<&str> = inner.cluster_members(cluster).into_iter().map(|a| inner.acc_str(a)).collect();
            names.sort_unstable();
            let (mut ends, mut data) = (Vec::with_capacity(names.len() * 8), Vec::new());
            for name in names {
                data.extend_from_slice(name.as_bytes());
                ends.extend_from_slice(&(data.len() as i64).to_le_bytes());
            }
            (PyBytes::new(py, &ends), PyBytes::new(py, &data))
        })
    }

    /// Accounts added to and removed from a cluster in the last applied tick.
    fn deltas(&mut self, cluster: u32) -> (Vec<String>, Vec<String>) {
        self.with(|inner| inner.deltas.get(&cluster).cloned().unwrap_or_default())
    }

    /// (API exchanges, output tokens) of the cluster's members within the window as of the latest
    /// tick, kept as usage arrives (no walk of the members).
    fn damage(&mut self, cluster: u32) -> Option<(u64, u64)> {
        self.with(|inner| inner.damage(cluster))
    }

    /// Clusters whose damage moved in the last applied tick, sorted.
    fn damage_changed(&mut self) -> Vec<u32> {
        self.with(|inner| inner.damage_changed())
    }

    fn size(&mut self, cluster: u32) -> Option<u32> {
        self.with(|inner| inner.clusters.get(&cluster).map(|c| c.size))
    }

    fn born_at(&mut self, cluster: u32) -> Option<i64> {
        self.with(|inner| inner.clusters.get(&cluster).map(|c| c.born_at))
    }

    fn clusters(&mut self) -> Vec<u32> {
        self.with(|inner| {
            let mut v: Vec<u32> = inner.clusters.keys().copied().collect();
            v.sort_unstable();
            v
        })
    }

    fn cluster_of(&mut self, account: &str) -> Option<u32> {
        self.with(|inner| inner.acc_lookup(account).and_then(|a| opt_id(inner.acct[a as usize].cluster)))
    }

    fn strong_entities(&mut self, cluster: u32) -> Vec<String> {
        self.with(|inner| inner.strong_entities(cluster))
    }

    /// An account's live links: (entity type, value, time it appeared).
    fn links_of(&mut self, account: &str) -> Vec<(&'static str, String, u32)> {
        self.with(|inner| sorted_links(inner, account).into_iter().map(|(kind, value, ts)| (kind, value.to_owned(), ts)).collect())
    }

    /// The links of several accounts as little-endian column buffers, each account's links in
    /// `links_of`'s order: what the audit store turns into Arrow arrays without a Python object per
    /// link. Rows go on after `first_account` accounts and `first_byte` value bytes already buffered:
    /// (row -> its account's index, from `first_account`, u32; row -> entity type as an index into
    /// `LINK_KINDS`, u8; where each value ends, from `first_byte`, i64; the values' UTF-8 bytes;
    /// seen as epoch seconds, u32).
    #[allow(clippy::type_complexity)]
    fn links_columns<'py>(&mut self, py: Python<'py>, accounts: Vec<String>, first_account: u32, first_byte: i64)
        -> (Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyBytes>) {
        self.with(|inner| {
            let (mut rows, mut kinds, mut ends, mut data, mut seen) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (i, account) in (first_account..).zip(&accounts) {
                for (kind, value, ts) in sorted_links(inner, account) {
                    rows.extend_from_slice(&i.to_le_bytes());
                    kinds.push(KIND_NAMES.iter().position(|&k| k == kind).unwrap_or(KIND_NAMES.len() - 1) as u8);
                    data.extend_from_slice(value.as_bytes());
                    ends.extend_from_slice(&(first_byte + data.len() as i64).to_le_bytes());
                    seen.extend_from_slice(&ts.to_le_bytes());
                }
            }
            (PyBytes::new(py, &rows), PyBytes::new(py, &kinds), PyBytes::new(py, &ends), PyBytes::new(py, &data),
             PyBytes::new(py, &seen))
        })
    }

    /// The time of the last applied tick (None before any).
    #[getter]
    fn now(&mut self) -> Option<i64> {
        self.with(|inner| {
            if inner.now == i64::MIN { None } else { Some(inner.now) }
        })
    }

    /// Every live link as (account, entity key), sorted; `derived`: the links the graph derives itself
    /// instead (lockstep cohorts, owned template groups).
    #[pyo3(signature = (derived=false))]
    fn live_links(&mut self, derived: bool) -> Vec<(String, String)> {
        self.with(|inner| {
            let g = &*inner;
            let mut v = Vec::with_capacity(g.link_count);
            for (a, acc) in g.acct.iter().enumerate() {
                if !acc.live {
                    continue;
                }
                for l in &acc.links {
                    if graph::is_derived(g.kind(l.ent)) == derived {
                        v.push((g.acc_str(a as u32).to_owned(), g.ent_str(l.ent).to_owned()));
                    }
                }
            }
            v.sort_unstable();
            v
        })
    }

    /// Inconsistencies between the incremental structures (empty when all holds; tests only).
    fn check(&mut self) -> Vec<String> {
        self.with(|inner| inner.check())
    }

    fn partition(&mut self) -> Vec<Vec<String>> {
        self.with(|inner| inner.partition())
    }

    fn full_partition(&mut self) -> Vec<Vec<String>> {
        self.with(|inner| inner.full_partition())
    }

    /// Binding strong entities (for tests against an independent oracle).
    fn binding_entities(&mut self) -> Vec<String> {
        self.with(|inner| {
            let mut v: Vec<String> = (0..inner.ent.len() as u32)
                .filter(|&e| inner.ent[e as usize].live && inner.ent[e as usize].binding)
                .map(|e| inner.ent_str(e).to_owned()).collect();
            v.sort_unstable();
            v
        })
    }

    fn heap_bytes(&mut self) -> usize {
        self.with(|inner| inner.heap_bytes())
    }

    fn heap_parts(&mut self) -> Vec<(&'static str, usize)> {
        self.with(|inner| inner.heap_parts())
    }

    fn stats<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.with(|inner| {
            let g = &*inner;
            let d = PyDict::new(py);
            d.set_item("accounts", g.acc_count())?;
            d.set_item("entities", g.ent_count())?;
            d.set_item("links", g.link_count)?;
            d.set_item("clusters", g.clusters.len())?;
            d.set_item("binding_entities", g.ent.iter().filter(|e| e.live && e.binding).count())?;
            d.set_item("cores", g.cores.list.iter().filter(|c| c.live).count())?;
            d.set_item("weak_edges", g.weak.supp.values().filter(|&&n| n >= g.cfg.weak_min_entities).count())?;
            d.set_item("sync_buckets", g.counters.sync_buckets)?;
            d.set_item("ticks", g.counters.ticks)?;
            d.set_item("changes", g.counters.changes)?;
            d.set_item("unknown_removals", g.counters.unknown_removals)?;
            d.set_item("split_steps", g.counters.split_steps)?;
            d.set_item("owned_flips", g.counters.owned_flips)?;
            d.set_item("owned_templates", g.owned.len())?;
            for (name, ns) in graph::PHASES.iter().zip(g.counters.phase_ns.iter()) {
                d.set_item(format!("seconds_{name}"), *ns as f64 / 1e9)?;
            }
            d.set_item("population_tokens_median", g.population_tokens_median)?;
            Ok(d)
        })
    }
}

