//! Checkpoints: a stage's whole state as bytes (`Window.to_state` / `Graph.to_state` in lib.rs), so
//! a restarted worker restores it and re-reads only the input that came after it.
//!
//! Layout: `FGKS`, the state version (u32 LE), the layout hash (u64 LE), a kind tag (`W` window,
//! `G` graph), then the stage in bincode's compact (varint) encoding. The layout hash is computed by
//! build.rs from the field lists of every serialised struct, so a build whose state would read
//! differently refuses an older snapshot instead of misreading it; `STATE_VERSION` is bumped by hand
//! when the meaning of a field changes without its type changing. Per-process things are not stored:
//! the interners' hash indexes are rebuilt under this process's hasher (`Names::rebuild_index`).

use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

pub const STATE_VERSION: u32 = 4; // 4: lockstep counts arrivals (a template's last minute is kept); 3: owned template groups; 2: strong links carry their kind and a copy of `binding`
include!(concat!(env!("OUT_DIR"), "/layout.rs"));
/// The stored layout's hash: the serialised structs' fields (build.rs) and the stored hashes
/// (`hashing::probe`: a dependency's release that hashes differently changes it too).
pub fn layout() -> u64 {
    LAYOUT ^ crate::store::hashing::probe()
}
pub const WINDOW: u8 = b'W';
pub const GRAPH: u8 = b'G';
const MAGIC: &[u8; 4] = b"FGKS";
const HEADER: usize = 4 + 4 + 8 + 1;

fn options() -> impl Options {
    bincode::DefaultOptions::new()
}

pub fn encode<T: Serialize>(kind: u8, value: &T) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(HEADER + 1024);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&STATE_VERSION.to_le_bytes());
    out.extend_from_slice(&layout().to_le_bytes());
    out.push(kind);
    options().serialize_into(&mut out, value).map_err(|e| format!("could not encode the state: {e}"))?;
    Ok(out)
}

/// The stage in `data`, or why it cannot be read (`incompatible: ...` or `corrupt: ...`).
pub fn decode<T: DeserializeOwned>(kind: u8, data: &[u8]) -> Result<T, String> {
    if data.len() < HEADER || &data[..4] != MAGIC {
        return Err("corrupt: not a fraudgraph kernel state".into());
    }
    let version = u32::from_le_bytes(data[4..8].try_into().unwrap());
    let layout = u64::from_le_bytes(data[8..16].try_into().unwrap());
    if version != STATE_VERSION || layout != self::layout() {
        return Err(format!("incompatible: kernel state version {version} layout {layout:016x}; this build reads \
                            version {STATE_VERSION} layout {:016x}", self::layout()));
    }
    if data[16] != kind {
        return Err(format!("incompatible: a {:?} state where a {:?} state was expected", data[16] as char, kind as char));
    }
    let body = &data[HEADER..];
    let value = options().with_limit(body.len() as u64).deserialize(body)
        .map_err(|e| format!("corrupt: {e}"))?;
    Ok(value)
}
