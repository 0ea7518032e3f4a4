//! Stage A's binding: `Window` (one input partition's window), `Batch` (what it hands stage B) and
//! the strict decoder's differential entry `fast_decode`.

use crate::binding::config::WindowArgs;
use crate::binding::names::{enter, SharedNames};
use crate::stage_a::{changes, contract, window};
use crate::state;
use crate::store::intern;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use std::sync::{Arc, Mutex};

#[pyclass(module = "graph._kernel")]
pub struct Window {
    pub(crate) inner: window::Window,
    pub(crate) names: SharedNames,
}

impl Window {
    fn with<R>(&mut self, f: impl FnOnce(&mut window::Window) -> R) -> R {
        enter(&mut self.inner, &self.names, f)
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
const FEED_CHUNK: usize = 1024;

/// One chunk of `Window.feed_json`: `items` are its values from index `offset` on.
fn feed_json_chunk(py: Python<'_>, inner: &mut window::Window, items: &[Bound<'_, PyAny>], offset: usize,
                   first_source: u64, fallback: &Bound<'_, PyAny>, wall: Option<f64>) -> PyResult<()> {
    let raws: Vec<&[u8]> = items.iter()
        .map(|item| item.downcast::<PyBytes>().map(|b| b.as_bytes()).map_err(PyErr::from))
        .collect::<PyResult<_>>()?;
    // The values are immutable bytes the caller's list keeps alive: decoded without the GIL, so the
    // worker's other threads (the Kafka intake) run meanwhile.
    let fast: Vec<Option<contract::Decoded>> = py.allow_threads(|| raws.iter().map(|raw| contract::decode(raw)).collect());
    let mut slow: Vec<(usize, Bound<'_, PyTuple>)> = Vec::new();
    for (i, d) in fast.iter().enumerate() {
        if d.is_none() {
            let got = fallback.call1((offset + i,))?;
            if !got.is_none() {
                slow.push((i, got.downcast_into::<PyTuple>()?));
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
    py.allow_threads(|| inner.feed(&rows, wall));
    Ok(())
}

#[pymethods]
impl Window {
    #[new]
    fn new(config: WindowArgs) -> PyResult<Self> {
        Ok(Window { inner: window::Window::new(config.config()?), names: Arc::new(Mutex::new(intern::Names::default())) })
    }

    /// Apply a batch given as columns (see graph/events.py:EventColumns.kernel_columns).
    #[pyo3(signature = (columns, wall=None))]
    fn feed(&mut self, columns: &Bound<'_, PyTuple>, wall: Option<f64>) -> PyResult<()> {
        self.with(|inner| {
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
        })
    }

    /// Decode and apply JSON values (the `account-events` contract) in one pass. A value the kernel's
    /// strict decoder does not take is handed to `fallback(index)`, which returns the event as a tuple
    /// of the 16 EventColumns fields (the adapter's decoder accepted it) or None (it dead-lettered it).
    /// Each event's source number is `first_source + index`. Values are decoded and applied
    /// `FEED_CHUNK` at a time: should `fallback` raise, the chunks before its value are applied.
    #[pyo3(signature = (values, first_source, fallback, wall=None))]
    fn feed_json(&mut self, values: &Bound<'_, PyList>, first_source: u64, fallback: &Bound<'_, PyAny>,
                 wall: Option<f64>) -> PyResult<()> {
        self.with(|inner| {
            let items: Vec<Bound<'_, PyAny>> = values.iter().collect();
            // Decoded and fed a chunk at a time: the decoded events and rows are then small buffers
            // reused from the C heap, not two large ones mapped and faulted in afresh per feed. The
            // window's batches do not depend on how its input is cut into feeds.
            for start in (0..items.len()).step_by(FEED_CHUNK) {
                let end = (start + FEED_CHUNK).min(items.len());
                feed_json_chunk(values.py(), inner, &items[start..end], start, first_source, fallback, wall)?;
            }
            Ok(())
        })
    }

    #[pyo3(signature = (wall=None))]
    fn flush(&mut self, wall: Option<f64>) {
        self.with(|inner| {
            inner.flush(wall);
        })
    }

    fn pop_batch(&mut self) -> Option<Batch> {
        self.with(|inner| {
            inner.pop_batch().map(|b| Batch { inner: Some(b) })
        })
    }

    /// Refused events since the last call: (source, kind, reason); kind 1 clock skew, 2 id conflict.
    fn take_rejected(&mut self) -> Vec<(u64, u8, String)> {
        self.with(|inner| std::mem::take(&mut inner.rejected))
    }

    fn guard_sources(&mut self) -> Vec<u64> {
        self.with(|inner| inner.guard_sources())
    }

    #[getter]
    fn guard_len(&mut self) -> usize {
        self.with(|inner| inner.guard_len())
    }

    #[getter]
    fn watermark(&mut self) -> f64 {
        self.with(|inner| inner.watermark())
    }

    #[getter]
    fn next_tick(&mut self) -> Option<i64> {
        self.with(|inner| inner.next_tick())
    }

    fn counters<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.with(|inner| {
            let c = inner.counters;
            let d = PyDict::new(py);
            for (k, v) in [("events", c.events), ("duplicates", c.duplicates), ("late", c.late), ("too_old", c.too_old),
                           ("expired_links", c.expired_links), ("clock_skew", c.clock_skew), ("id_conflict", c.id_conflict)] {
                d.set_item(k, v)?;
            }
            Ok(d)
        })
    }

    fn stats<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.with(|inner| {
            let d = PyDict::new(py);
            for (k, v) in inner.stats() {
                d.set_item(k, v)?;
            }
            Ok(d)
        })
    }

    fn heap_bytes(&mut self) -> usize {
        self.with(|inner| inner.heap_bytes())
    }

    fn heap_parts(&mut self) -> Vec<(&'static str, usize)> {
        self.with(|inner| inner.heap_parts())
    }

    #[getter]
    fn held_events(&mut self) -> usize {
        self.with(|inner| inner.held_events())
    }

    /// The whole window (links, de-duplication, held events, counters, names) as bytes for a
    /// checkpoint (src/state.rs); `Window.from_state` gives it back.
    fn to_state<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.with(|inner| state::encode(state::WINDOW, &*inner)).map_err(PyValueError::new_err)?;
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

#[pyclass(module = "graph._kernel")]
pub struct Batch {
    pub(crate) inner: Option<changes::ChangeBatch>,
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

/// The kernel's strict JSON decoder on one value: the 16 EventColumns fields, or None where it defers
/// to the adapter's decoder (for the differential test against it).
#[pyfunction]
pub fn fast_decode<'py>(py: Python<'py>, raw: &[u8]) -> PyResult<Option<Bound<'py, PyTuple>>> {
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

