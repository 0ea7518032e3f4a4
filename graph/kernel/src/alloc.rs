//! The kernel's memory allocator: large blocks straight from the operating system, the rest from
//! the C library's `malloc`.
//!
//! The kernel's state is mostly small long-lived pieces (an account's link list, a spilled member
//! list) and a few large tables (the slots per id, the hash indexes), and each batch makes large
//! transient buffers (its changes, the tick's work lists). Through glibc's `malloc`, a large block
//! comes from the same heap as the small long-lived ones once glibc's dynamic mmap threshold has
//! risen (it rises to the size of any mapped block freed, up to 32 MiB), so a freed transient buffer
//! leaves a hole between long-lived pieces that the heap cannot give back, and a table that grows
//! copies itself and leaves its old block as another hole. Here a block of `LARGE` bytes or more is
//! its own mapping: freed, it goes back to the OS at once; grown, the OS moves its pages
//! (`mremap`) instead of copying them. Small blocks keep `malloc`'s speed.
//!
//! Large blocks are few (tables and per-batch buffers, not per-account pieces), so the system calls
//! cost little; `tests/benchmarks/speed.py` measures the whole replay with this allocator.

#[cfg(target_os = "linux")]
mod imp {
    use std::alloc::{GlobalAlloc, Layout, System};

    /// Blocks of this size or more are mapped on their own (glibc's initial mmap threshold).
    pub const LARGE: usize = 128 << 10;
    const PAGE: usize = 4096; // the smallest page size Linux uses; mappings are page-aligned at least this much

    pub struct KernelAlloc;

    #[inline]
    fn large(layout: &Layout) -> bool {
        layout.size() >= LARGE && layout.align() <= PAGE
    }

    unsafe fn map(size: usize) -> *mut u8 {
        let p = libc::mmap(std::ptr::null_mut(), size, libc::PROT_READ | libc::PROT_WRITE,
                           libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        if p == libc::MAP_FAILED { std::ptr::null_mut() } else { p as *mut u8 }
    }

    unsafe impl GlobalAlloc for KernelAlloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if large(&layout) { map(layout.size()) } else { System.alloc(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // fresh anonymous pages are zero
            if large(&layout) { map(layout.size()) } else { System.alloc_zeroed(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            if large(&layout) {
                libc::munmap(ptr as *mut libc::c_void, layout.size());
            } else {
                System.dealloc(ptr, layout)
            }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let new = Layout::from_size_align_unchecked(new_size, layout.align());
            match (large(&layout), large(&new)) {
                (false, false) => System.realloc(ptr, layout, new_size),
                (true, true) => {
                    let p = libc::mremap(ptr as *mut libc::c_void, layout.size(), new_size, libc::MREMAP_MAYMOVE);
                    if p == libc::MAP_FAILED { std::ptr::null_mut() } else { p as *mut u8 }
                }
                _ => {
                    let p = self.alloc(new);
                    if !p.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    p
                }
            }
        }
    }
}

#[cfg(target_os = "linux")]
pub use imp::KernelAlloc;
