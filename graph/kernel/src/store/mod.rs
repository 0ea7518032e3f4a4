//! The shared store both stages build on: string interning (`intern`) over hash indexes (`index`),
//! packed lists (`list`, `members`), the allocator (`alloc`) and the hashes (`hashing`).

pub mod alloc;
pub mod hashing;
pub mod index;
pub mod intern;
pub mod list;
pub mod members;
