//! Python bindings of fraudgraph's kernel (`graph._kernel`). The Python package keeps the policy
//! (scores, severities, alerts, verdicts); the kernel keeps the state on integer ids.

pub mod alloc;
pub mod changes;
pub mod check;
pub mod contract;
pub mod cores;
pub mod damage;
pub mod features;
pub mod graph;
pub mod hashing;
pub mod index;
pub mod intern;
pub mod list;
pub mod members;
pub mod ops;
pub mod ordering;
pub mod owned;
pub mod recompute;
pub mod state;
pub mod weak;
pub mod window;

#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: alloc::KernelAlloc = alloc::KernelAlloc;

use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use rustc_hash::FxHashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::intern::NONE;

fn get<'py, T: FromPyObject<'py>>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<T> {
    match d.get_item(key)? {
        Some(v) => v.extract::<T>(),
        None => Err(PyKeyError::new_err(format!("kernel config needs {key:?}"))),
    }
}

fn whole_seconds(d: &Bound<'_, PyDict>, key: &str) -> PyResult<i64> {
    let v: f64 = get(d, key)?;
    if v <= 0.0 || v.fract() != 0.0 {
        return Err(PyValueError::new_err(format!("{key} must be a positive whole number of seconds, not {v}")));
    }
    Ok(v as i64)
}

// -- stage A ----------------------------------------------------------------------------------------
#[pyclass(module = "graph._kernel")]
struct Window {
    inner: window::Window,
    names: SharedNames,
}

/// Names a window and a graph in one process share (each call moves them into the stage it runs).
type SharedNames = Arc<Mutex<intern::Names>>;

trait HasNames {
    fn names_mut(&mut self) -> &mut intern::Names;
}
impl HasNames for window::Window {
    fn names_mut(&mut self) -> &mut intern::Names {
        &mut self.names
    }
}
impl HasNames for graph::Graph {
    fn names_mut(&mut self) -> &mut intern::Names {
        &mut self.names
    }
}

/// A stage with the shared names moved in for the length of one call, and back out when it ends.
struct Entered<'a, T: HasNames> {
    stage: &'a mut T,
    names: MutexGuard<'a, intern::Names>,
}
impl<'a, T: HasNames> Entered<'a, T> {
    fn new(stage: &'a mut T, names: &'a SharedNames) -> Self {
        let mut names = names.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::swap(stage.names_mut(), &mut *names);
        Entered { stage, names }
    }
}
impl<T: HasNames> Drop for Entered<'_, T> {
    fn drop(&mut self) {
        std::mem::swap(self.stage.names_mut(), &mut *self.names);
    }
}
impl<T: HasNames> std::ops::Deref for Entered<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.stage
    }
}
impl<T: HasNames> std::ops::DerefMut for Entered<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.stage
    }
}

fn opt_str<'a>(item: &'a Bound<'_, PyAny>) -> PyResult<Option<&'a str>> {
    if item.is_none() {
        return Ok(None);
    }
    Ok(Some(item.downcast::<PyString>()?.to_str()?))
}

/// One event from the 16 EventColumns fields, in their order (graph/events.py).
fn row_from<'a>(source: u64, f: &'a [Bound<'_, PyAny>]) -> PyResult<window::EventRow<'a>> {
    if f.len() != 16 {
        return Err(PyValueError::new_err("a fallback event has 16 fields"));
    }
    let etype_s = f[1].downcast::<PyString>()?.to_str()?;
    let etype = window::EVENT_TYPES.iter().position(|&t| t == etype_s)
        .ok_or_else(|| PyValueError::new_err(format!("unknown event type {etype_s:?}")))? as u8;
    Ok(window::EventRow {
        source, event_id: f[0].downcast::<PyString>()?.to_str()?, etype,
        account: f[2].downcast::<PyString>()?.to_str()?, ts: f[3].extract()?,
        device: opt_str(&f[4])?, ip: opt_str(&f[5])?, payment: opt_str(&f[6])?, template: opt_str(&f[7])?,
        email_domain: opt_str(&f[8])?, asn: opt_str(&f[9])?, user_agent: opt_str(&f[10])?, country: opt_str(&f[11])?,
        model: opt_str(&f[12])?, requests: opt_u64(&f[13])?, tokens_in: opt_u64(&f[14])?, tokens_out: opt_u64(&f[15])?,
    })
}

fn opt_u64(item: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
    if item.is_none() {
        return Ok(None);
    }
    // the decoder bounds these below (>= 0, >= 1); above u64 they saturate
    Ok(Some(item.extract::<u64>().unwrap_or(u64::MAX)))
}

/// Events `Window.feed_json` decodes and feeds at a time.
const FEED_CHUNK: usize = 256;

/// One chunk of `Window.feed_json`: `items` are its values from index `offset` on.
fn feed_json_chunk(inner: &mut window::Window, items: &[Bound<'_, PyAny>], offset: usize, first_source: u64,
                   fallback: &Bound<'_, PyAny>, wall: Option<f64>) -> PyResult<()> {
    let mut fast: Vec<Option<contract::Decoded>> = Vec::with_capacity(items.len());
    let mut slow: Vec<(usize, Bound<'_, PyTuple>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let raw = item.downcast::<PyBytes>()?.as_bytes();
        match contract::decode(raw) {
            Some(d) => fast.push(Some(d)),
            None => {
                fast.push(None);
                let got = fallback.call1((offset + i,))?;
                if !got.is_none() {
                    slow.push((i, got.downcast_into::<PyTuple>()?));
                }
            }
        }
    }
    let slow_items: Vec<(usize, Vec<Bound<'_, PyAny>>)> = slow.iter().map(|(i, t)| (*i, t.iter().collect())).collect();
    let mut slow_at = slow_items.iter().peekable();
    let mut rows = Vec::with_capacity(items.len());
    for (i, d) in fast.iter().enumerate() {
        let source = first_source + (offset + i) as u64;
        if let Some(d) = d {
            rows.push(window::EventRow {
                source, event_id: &d.event_id, etype: d.etype, account: &d.account, ts: d.ts,
                device: d.device.as_deref(), ip: d.ip.as_deref(), payment: d.payment.as_deref(),
                template: d.template.as_deref(), email_domain: d.email_domain.as_deref(), asn: d.asn.as_deref(),
                user_agent: d.user_agent.as_deref(), country: d.country.as_deref(), model: d.model.as_deref(),
                requests: d.requests, tokens_in: d.tokens_in, tokens_out: d.tokens_out,
            });
        } else if slow_at.peek().map(|(j, _)| *j == i).unwrap_or(false) {
            let (_, f) = slow_at.next().unwrap();
            rows.push(row_from(source, f)?);
        }
    }
    inner.feed(&rows, wall);
    Ok(())
}

#[pymethods]
impl Window {
    #[new]
    fn new(config: &Bound<'_, PyDict>) -> PyResult<Self> {
        let asns: Vec<String> = get(config, "datacenter_asns")?;
        let cfg = window::WindowConfig {
            window: whole_seconds(config, "window_seconds")?,
            tick: whole_seconds(config, "tick_seconds")?,
            lateness: get(config, "allowed_lateness_seconds")?,
            max_skew: get(config, "max_clock_skew_seconds")?,
            skew_sample: get(config, "skew_sample")?,
            datacenter_asns: asns.into_iter().collect::<FxHashSet<String>>(),
            partition: config.get_item("partition")?.map(|v| v.extract()).transpose()?.unwrap_or(0),
        };
        Ok(Window { inner: window::Window::new(cfg), names: Arc::new(Mutex::new(intern::Names::default())) })
    }

    /// Apply a batch given as columns (see graph/events.py:EventColumns.kernel_columns).
    #[pyo3(signature = (columns, wall=None))]
    fn feed(&mut self, columns: &Bound<'_, PyTuple>, wall: Option<f64>) -> PyResult<()> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        if columns.len() != 17 {
            return Err(PyValueError::new_err("feed expects 17 columns"));
        }
        let cols: Vec<Vec<Bound<'_, PyAny>>> = columns.iter()
            .map(|c| c.downcast::<PyList>().map(|l| l.iter().collect()).map_err(PyErr::from))
            .collect::<PyResult<_>>()?;
        let n = cols[0].len();
        if cols.iter().any(|c| c.len() != n) {
            return Err(PyValueError::new_err("columns differ in length"));
        }
        let mut rows = Vec::with_capacity(n);
        for i in 0..n {
            let etype_s = cols[2][i].downcast::<PyString>()?.to_str()?;
            let etype = window::EVENT_TYPES.iter().position(|&t| t == etype_s)
                .ok_or_else(|| PyValueError::new_err(format!("unknown event type {etype_s:?}")))? as u8;
            rows.push(window::EventRow {
                source: cols[0][i].extract()?,
                event_id: cols[1][i].downcast::<PyString>()?.to_str()?,
                etype,
                account: cols[3][i].downcast::<PyString>()?.to_str()?,
                ts: cols[4][i].extract()?,
                device: opt_str(&cols[5][i])?,
                ip: opt_str(&cols[6][i])?,
                payment: opt_str(&cols[7][i])?,
                template: opt_str(&cols[8][i])?,
                email_domain: opt_str(&cols[9][i])?,
                asn: opt_str(&cols[10][i])?,
                user_agent: opt_str(&cols[11][i])?,
                country: opt_str(&cols[12][i])?,
                model: opt_str(&cols[13][i])?,
                requests: opt_u64(&cols[14][i])?,
                tokens_in: opt_u64(&cols[15][i])?,
                tokens_out: opt_u64(&cols[16][i])?,
            });
        }
        inner.feed(&rows, wall);
        Ok(())
    }

    /// Decode and apply JSON values (the `account-events` contract) in one pass. A value the kernel's
    /// strict decoder does not take is handed to `fallback(index)`, which returns the event as a tuple
    /// of the 16 EventColumns fields (the adapter's decoder accepted it) or None (it dead-lettered it).
    /// Each event's source number is `first_source + index`. Values are decoded and applied
    /// `FEED_CHUNK` at a time: should `fallback` raise, the chunks before its value are applied.
    #[pyo3(signature = (values, first_source, fallback, wall=None))]
    fn feed_json(&mut self, values: &Bound<'_, PyList>, first_source: u64, fallback: &Bound<'_, PyAny>,
                 wall: Option<f64>) -> PyResult<()> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        let items: Vec<Bound<'_, PyAny>> = values.iter().collect();
        // Decoded and fed a chunk at a time: the decoded events and rows are then small buffers
        // reused from the C heap, not two large ones mapped and faulted in afresh per feed. The
        // window's batches do not depend on how its input is cut into feeds.
        for start in (0..items.len()).step_by(FEED_CHUNK) {
            let end = (start + FEED_CHUNK).min(items.len());
            feed_json_chunk(inner, &items[start..end], start, first_source, fallback, wall)?;
        }
        Ok(())
    }

    #[pyo3(signature = (wall=None))]
    fn flush(&mut self, wall: Option<f64>) {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.flush(wall);
    }

    fn pop_batch(&mut self) -> Option<Batch> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.pop_batch().map(|b| Batch { inner: Some(b) })
    }

    /// Refused events since the last call: (source, kind, reason); kind 1 clock skew, 2 id conflict.
    fn take_rejected(&mut self) -> Vec<(u64, u8, String)> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        std::mem::take(&mut inner.rejected)
    }

    fn guard_sources(&mut self) -> Vec<u64> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.guard_sources()
    }

    #[getter]
    fn guard_len(&mut self) -> usize {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.guard_len()
    }

    #[getter]
    fn watermark(&mut self) -> f64 {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.watermark()
    }

    #[getter]
    fn next_tick(&mut self) -> Option<i64> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.next_tick()
    }

    fn counters<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        let c = inner.counters;
        let d = PyDict::new(py);
        for (k, v) in [("events", c.events), ("duplicates", c.duplicates), ("late", c.late), ("too_old", c.too_old),
                       ("expired_links", c.expired_links), ("clock_skew", c.clock_skew), ("id_conflict", c.id_conflict)] {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    fn stats<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        let d = PyDict::new(py);
        for (k, v) in inner.stats() {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    fn heap_bytes(&mut self) -> usize {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.heap_bytes()
    }

    fn heap_parts(&mut self) -> Vec<(&'static str, usize)> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.heap_parts()
    }

    #[getter]
    fn held_events(&mut self) -> usize {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.held_events()
    }

    /// The whole window (links, de-duplication, held events, counters, names) as bytes for a
    /// checkpoint (src/state.rs); `Window.from_state` gives it back.
    fn to_state<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let entered = Entered::new(&mut self.inner, &self.names);
        let data = state::encode(state::WINDOW, &*entered).map_err(PyValueError::new_err)?;
        Ok(PyBytes::new(py, &data))
    }

    /// A window from `to_state`'s bytes; ValueError (`incompatible: ...` / `corrupt: ...`) otherwise.
    #[staticmethod]
    fn from_state(data: &[u8]) -> PyResult<Window> {
        let mut inner: window::Window = state::decode(state::WINDOW, data).map_err(PyValueError::new_err)?;
        let mut names = std::mem::take(&mut inner.names);
        names.rebuild_index();
        Ok(Window { inner, names: Arc::new(Mutex::new(names)) })
    }
}

// -- the batch between the stages -------------------------------------------------------------------
#[pyclass(module = "graph._kernel")]
struct Batch {
    inner: Option<changes::ChangeBatch>,
}

impl Batch {
    fn get(&self) -> PyResult<&changes::ChangeBatch> {
        self.inner.as_ref().ok_or_else(|| PyValueError::new_err("this batch was already applied"))
    }
}

#[pymethods]
impl Batch {
    #[getter]
    fn tick_end(&self) -> PyResult<i64> {
        Ok(self.get()?.tick_end)
    }
    #[getter]
    fn watermark(&self) -> PyResult<f64> {
        Ok(self.get()?.watermark)
    }
    #[getter]
    fn partition(&self) -> PyResult<u32> {
        Ok(self.get()?.partition)
    }
    #[getter]
    fn changes(&self) -> PyResult<usize> {
        Ok(self.get()?.changes())
    }
    fn is_empty(&self) -> PyResult<bool> {
        Ok(self.get()?.is_empty())
    }
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.get()?.to_bytes().map_err(PyValueError::new_err)?))
    }
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Batch> {
        changes::ChangeBatch::from_bytes(data).map(|b| Batch { inner: Some(b) }).map_err(PyValueError::new_err)
    }
}

// -- stage B ----------------------------------------------------------------------------------------
#[pyclass(module = "graph._kernel")]
struct Graph {
    inner: graph::Graph,
    names: SharedNames,
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
const KIND_NAMES: [&str; 7] = ["device", "payment", "ip", "template", "lockstep", "owned_template", "unknown"];

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

type TickTuple = (i64, f64, Vec<(u32, &'static str, u32, Option<u32>)>, Vec<u32>, Vec<u32>, Vec<u32>, bool);

#[pymethods]
impl Graph {
    /// With `window`, the graph shares the window's names (one process): batches then carry ids only.
    #[new]
    #[pyo3(signature = (config, window=None))]
    fn new(config: &Bound<'_, PyDict>, window: Option<PyRefMut<'_, Window>>) -> PyResult<Self> {
        let freemail: Vec<String> = get(config, "freemail_domains")?;
        let cfg = graph::GraphConfig {
            window: whole_seconds(config, "window_seconds")?,
            tick: whole_seconds(config, "tick_seconds")?,
            device_max_degree: get(config, "device_max_degree")?,
            payment_max_degree: get(config, "payment_max_degree")?,
            exclusivity_min: get(config, "exclusivity_min")?,
            sync_bucket_seconds: 60,
            sync_min_accounts: get(config, "sync_min_accounts")?,
            sync_min_lift: get(config, "sync_min_lift")?,
            sync_min_overlap: get(config, "sync_min_overlap")?,
            sync_recent_buckets: get::<u32>(config, "sync_recent_buckets")? as usize,
            sync_min_buckets: get(config, "sync_min_buckets")?,
            sync_min_ratio: get(config, "sync_min_ratio")?,
            weak_cover_min: get(config, "weak_cover_min")?,
            weak_min_accounts: get(config, "weak_min_accounts")?,
            weak_purity_min: get(config, "weak_purity_min")?,
            weak_min_entities: get(config, "weak_min_entities")?,
            weak_max_groups: get(config, "weak_max_groups")?,
            track_min_size: get(config, "track_min_size")?,
            hub_copy_overlap: get(config, "hub_copy_overlap")?,
            evidence_limit: get(config, "evidence_limit")?,
            freemail: freemail.into_iter().collect(),
            group_min_accounts: get(config, "group_min_accounts")?,
            device_rotation_min: get(config, "device_rotation_min")?,
            group_captive_min: get(config, "group_captive_min")?,
            group_set_min: get(config, "group_set_min")?,
            template_max_degree: get(config, "template_max_degree")?,
        };
        if cfg.weak_min_entities < 1 || cfg.track_min_size < 2 {
            return Err(PyValueError::new_err("weak_min_entities must be >= 1 and track_min_size >= 2"));
        }
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
            let entered = Entered::new(&mut self.inner, &self.names);
            state::encode(state::GRAPH, &*entered)
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

    /// Apply one tick's batches (one per partition) and detect. Returns
    /// (tick_end, watermark, lineage, changed, touched, gone, worked); lineage rows are
    /// (cluster, kind, size, other cluster or None).
    fn apply(&mut self, batches: Vec<PyRefMut<'_, Batch>>) -> PyResult<TickTuple> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        let mut owned = Vec::with_capacity(batches.len());
        for mut b in batches {
            owned.push(b.inner.take().ok_or_else(|| PyValueError::new_err("this batch was already applied"))?);
        }
        let out = inner.apply(&owned);
        let lineage = out.lineage.iter().map(|&(c, k, s, o)| (c, k.name(), s, opt_id(o))).collect();
        Ok((out.tick_end, out.watermark, lineage, out.changed, out.touched, out.gone, out.worked))
    }

    /// (features, evidence, shared infrastructure, requests, output tokens, newest link time) of a cluster.
    fn features<'py>(&mut self, py: Python<'py>, cluster: u32) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        let Some(f) = inner.features(cluster) else { return Ok(None) };
        let values = PyDict::new(py);
        for (k, v) in &f.values {
            values.set_item(*k, (v * 10_000.0).round() / 10_000.0)?;
        }
        let evidence: Vec<(&str, String, u32, f64, f64)> = f.evidence.into_iter()
            .map(|e| (kind_name(e.kind), e.value, e.members, e.first_seen as f64, e.last_seen as f64)).collect();
        let shared: Vec<(u32, &str, u32, u32, u32)> = f.shared.into_iter()
            .map(|s| (s.cluster, kind_name(s.kind), s.entities, s.here, s.there)).collect();
        let t = PyTuple::new(py, [values.into_any(), evidence.into_pyobject(py)?.into_any(),
                                  shared.into_pyobject(py)?.into_any(), f.requests.into_pyobject(py)?.into_any(),
                                  f.tokens_out.into_pyobject(py)?.into_any(), f.newest.into_pyobject(py)?.into_any()])?;
        Ok(Some(t))
    }

    fn members(&mut self, cluster: u32) -> Vec<String> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        let mut v: Vec<String> = inner.cluster_members(cluster).into_iter()
            .map(|a| inner.acc_str(a).to_owned()).collect();
        v.sort_unstable();
        v
    }

    /// `members`, packed: (where each name ends, i64 little-endian; the names' UTF-8 bytes back to
    /// back). One Python object instead of one per member (`graph/names.py`).
    fn members_packed<'py>(&mut self, py: Python<'py>, cluster: u32) -> (Bound<'py, PyBytes>, Bound<'py, PyBytes>) {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        let mut names: Vec<&str> = inner.cluster_members(cluster).into_iter().map(|a| inner.acc_str(a)).collect();
        names.sort_unstable();
        let (mut ends, mut data) = (Vec::with_capacity(names.len() * 8), Vec::new());
        for name in names {
            data.extend_from_slice(name.as_bytes());
            ends.extend_from_slice(&(data.len() as i64).to_le_bytes());
        }
        (PyBytes::new(py, &ends), PyBytes::new(py, &data))
    }

    /// Accounts added to and removed from a cluster in the last applied tick.
    fn deltas(&mut self, cluster: u32) -> (Vec<String>, Vec<String>) {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.deltas.get(&cluster).cloned().unwrap_or_default()
    }

    /// (API exchanges, output tokens) of the cluster's members within the window as of the latest
    /// tick, kept as usage arrives (no walk of the members).
    fn damage(&mut self, cluster: u32) -> Option<(u64, u64)> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.damage(cluster)
    }

    /// Clusters whose damage moved in the last applied tick, sorted.
    fn damage_changed(&mut self) -> Vec<u32> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.damage_changed()
    }

    fn size(&mut self, cluster: u32) -> Option<u32> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.clusters.get(&cluster).map(|c| c.size)
    }

    fn born_at(&mut self, cluster: u32) -> Option<i64> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.clusters.get(&cluster).map(|c| c.born_at)
    }

    fn clusters(&mut self) -> Vec<u32> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        let mut v: Vec<u32> = inner.clusters.keys().copied().collect();
        v.sort_unstable();
        v
    }

    fn cluster_of(&mut self, account: &str) -> Option<u32> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.acc_lookup(account).and_then(|a| opt_id(inner.acct[a as usize].cluster))
    }

    fn strong_entities(&mut self, cluster: u32) -> Vec<String> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.strong_entities(cluster)
    }

    /// An account's live links: (entity type, value, time it appeared).
    fn links_of(&mut self, account: &str) -> Vec<(&'static str, String, u32)> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        sorted_links(inner, account).into_iter().map(|(kind, value, ts)| (kind, value.to_owned(), ts)).collect()
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
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
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
    }

    /// The time of the last applied tick (None before any).
    #[getter]
    fn now(&mut self) -> Option<i64> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        if inner.now == i64::MIN { None } else { Some(inner.now) }
    }

    /// Every live link as (account, entity key), sorted; `derived`: the links the graph derives itself
    /// instead (lockstep cohorts, owned template groups).
    #[pyo3(signature = (derived=false))]
    fn live_links(&mut self, derived: bool) -> Vec<(String, String)> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
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
    }

    /// Inconsistencies between the incremental structures (empty when all holds; tests only).
    fn check(&mut self) -> Vec<String> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.check()
    }

    fn partition(&mut self) -> Vec<Vec<String>> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.partition()
    }

    fn full_partition(&mut self) -> Vec<Vec<String>> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.full_partition()
    }

    /// Binding strong entities (for tests against an independent oracle).
    fn binding_entities(&mut self) -> Vec<String> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        let mut v: Vec<String> = (0..inner.ent.len() as u32)
            .filter(|&e| inner.ent[e as usize].live && inner.ent[e as usize].binding)
            .map(|e| inner.ent_str(e).to_owned()).collect();
        v.sort_unstable();
        v
    }

    fn heap_bytes(&mut self) -> usize {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.heap_bytes()
    }

    fn heap_parts(&mut self) -> Vec<(&'static str, usize)> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
        inner.heap_parts()
    }

    fn stats<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let mut entered = Entered::new(&mut self.inner, &self.names);
        let inner = &mut *entered;
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
    }
}

/// The kernel's strict JSON decoder on one value: the 16 EventColumns fields, or None where it defers
/// to the adapter's decoder (for the differential test against it).
#[pyfunction]
fn fast_decode<'py>(py: Python<'py>, raw: &[u8]) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let Some(d) = contract::decode(raw) else { return Ok(None) };
    let s = |v: &Option<std::borrow::Cow<'_, str>>| v.as_deref().map(str::to_owned);
    let fields: Vec<PyObject> = vec![
        d.event_id.as_ref().into_pyobject(py)?.into_any().unbind(),
        window::EVENT_TYPES[d.etype as usize].into_pyobject(py)?.into_any().unbind(),
        d.account.as_ref().into_pyobject(py)?.into_any().unbind(),
        d.ts.into_pyobject(py)?.into_any().unbind(),
        s(&d.device).into_pyobject(py)?.into_any().unbind(),
        s(&d.ip).into_pyobject(py)?.into_any().unbind(),
        s(&d.payment).into_pyobject(py)?.into_any().unbind(),
        s(&d.template).into_pyobject(py)?.into_any().unbind(),
        s(&d.email_domain).into_pyobject(py)?.into_any().unbind(),
        s(&d.asn).into_pyobject(py)?.into_any().unbind(),
        s(&d.user_agent).into_pyobject(py)?.into_any().unbind(),
        s(&d.country).into_pyobject(py)?.into_any().unbind(),
        s(&d.model).into_pyobject(py)?.into_any().unbind(),
        d.requests.into_pyobject(py)?.into_any().unbind(),
        d.tokens_in.into_pyobject(py)?.into_any().unbind(),
        d.tokens_out.into_pyobject(py)?.into_any().unbind(),
    ];
    Ok(Some(PyTuple::new(py, fields)?))
}

#[pymodule]
fn _kernel(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fast_decode, m)?)?;
    m.add_class::<Window>()?;
    m.add_class::<Batch>()?;
    m.add_class::<Graph>()?;
    m.add("FORMAT_VERSION", changes::FORMAT_VERSION)?;
    m.add("LINK_KINDS", KIND_NAMES.to_vec())?;
    m.add("STATE_FORMAT", format!("{}-{:016x}", state::STATE_VERSION, state::layout()))?;
    Ok(())
}
