//! The kernel's memory allocator: small blocks from size-class pools, large blocks straight from the
//! operating system, the rest from the C library's `malloc`.
//!
//! The kernel's state is mostly small long-lived pieces (an account's link lists and usage, a
//! spilled member list) and a few large tables (the slots per id, the hash indexes); each batch also
//! makes transient buffers.
//!
//! * **Small blocks** (up to `SMALL` bytes, 8-byte alignment at most) come from pools, one free list
//!   per 8-byte size class, carved from mappings of `CARVE` bytes. glibc puts an 8-byte header on
//!   every block and rounds it up to 16 (a 32-byte list takes 48 bytes there, here 32), and the
//!   pieces of many sizes it leaves between long-lived ones fragment its heap. A freed block goes
//!   back to its class's list for the next block of that size (lists of accounts that come and go).
//!   Pool memory is kept for reuse, not given back.
//! * **Large blocks** (`LARGE` bytes or more) are mappings of their own. Through `malloc`, a large
//!   block comes from the heap once glibc's dynamic mmap threshold has risen (it rises to the size of
//!   any mapped block freed, up to 32 MiB), so a freed transient buffer leaves a hole between
//!   long-lived pieces that the heap cannot give back, and a table that grows copies itself and
//!   leaves its old block as another hole. Here a freed large block goes back to the OS at once and
//!   a growing one is moved by the OS (`mremap`), not copied; its pages count only once touched.
//!
//! Everything else goes to `malloc`. `tests/benchmarks/speed.py` measures the whole replay and the
//! memory per live link with this allocator.

#[cfg(target_os = "linux")]
mod imp {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Blocks of this size or more are mapped on their own (glibc's initial mmap threshold).
    pub const LARGE: usize = 128 << 10;
    const PAGE: usize = 4096; // the smallest page size Linux uses; mappings are page-aligned at least this much
    /// Blocks up to this size come from the pools.
    const SMALL: usize = 512;
    const GRAIN: usize = 8;
    const CLASSES: usize = SMALL / GRAIN;
    /// The pools take memory in mappings of this size; a mapping's pages count once touched.
    const CARVE: usize = 4 << 20;

    pub struct KernelAlloc;

    /// Free lists (a freed block holds the address of the next) and the mapping being carved.
    struct Pools {
        free: [*mut u8; CLASSES],
        next: *mut u8,
        left: usize,
    }

    struct Locked {
        busy: AtomicBool,
        pools: std::cell::UnsafeCell<Pools>,
    }

    // The pools are only touched with `busy` held.
    unsafe impl Sync for Locked {}

    static POOLS: Locked = Locked {
        busy: AtomicBool::new(false),
        pools: std::cell::UnsafeCell::new(Pools { free: [std::ptr::null_mut(); CLASSES], next: std::ptr::null_mut(), left: 0 }),
    };

    fn with_pools<R>(f: impl FnOnce(&mut Pools) -> R) -> R {
        while POOLS.busy.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            std::hint::spin_loop();
        }
        let r = f(unsafe { &mut *POOLS.pools.get() });
        POOLS.busy.store(false, Ordering::Release);
        r
    }

    #[inline]
    fn small(layout: &Layout) -> bool {
        layout.size() <= SMALL && layout.align() <= GRAIN && layout.size() > 0
    }

    #[inline]
    fn large(layout: &Layout) -> bool {
        layout.size() >= LARGE && layout.align() <= PAGE
    }

    #[inline]
    fn class(size: usize) -> usize {
        (size + GRAIN - 1) / GRAIN - 1
    }

    unsafe fn map(size: usize) -> *mut u8 {
        let p = libc::mmap(std::ptr::null_mut(), size, libc::PROT_READ | libc::PROT_WRITE,
                           libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        if p == libc::MAP_FAILED { std::ptr::null_mut() } else { p as *mut u8 }
    }

    unsafe fn pool_alloc(size: usize) -> *mut u8 {
        let c = class(size);
        let bytes = (c + 1) * GRAIN;
        with_pools(|p| {
            let head = p.free[c];
            if !head.is_null() {
                p.free[c] = *(head as *mut *mut u8);
                return head;
            }
            if p.left < bytes {
                // the rest of the mapping goes to the free list of the class it fits
                if p.left >= GRAIN {
                    let rest = class(p.left); // p.left is a multiple of GRAIN: the class of exactly that size
                    *(p.next as *mut *mut u8) = p.free[rest];
                    p.free[rest] = p.next;
                }
                let fresh = map(CARVE);
                if fresh.is_null() {
                    return fresh;
                }
                p.next = fresh;
                p.left = CARVE;
            }
            let block = p.next;
            p.next = p.next.add(bytes);
            p.left -= bytes;
            block
        })
    }

    unsafe fn pool_free(ptr: *mut u8, size: usize) {
        let c = class(size);
        with_pools(|p| {
            *(ptr as *mut *mut u8) = p.free[c];
            p.free[c] = ptr;
        })
    }

    unsafe impl GlobalAlloc for KernelAlloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if small(&layout) {
                pool_alloc(layout.size())
            } else if large(&layout) {
                map(layout.size())
            } else {
                System.alloc(layout)
            }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if small(&layout) {
                let p = pool_alloc(layout.size());
                if !p.is_null() {
                    std::ptr::write_bytes(p, 0, layout.size()); // a pooled block may have been used
                }
                p
            } else if large(&layout) {
                map(layout.size()) // fresh anonymous pages are zero
            } else {
                System.alloc_zeroed(layout)
            }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            if small(&layout) {
                pool_free(ptr, layout.size());
            } else if large(&layout) {
                libc::munmap(ptr as *mut libc::c_void, layout.size());
            } else {
                System.dealloc(ptr, layout)
            }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let new = Layout::from_size_align_unchecked(new_size, layout.align());
            if small(&layout) && small(&new) && class(layout.size()) == class(new_size) {
                return ptr;
            }
            let plain = |l: &Layout| !small(l) && !large(l);
            if plain(&layout) && plain(&new) {
                return System.realloc(ptr, layout, new_size);
            }
            if large(&layout) && large(&new) {
                let p = libc::mremap(ptr as *mut libc::c_void, layout.size(), new_size, libc::MREMAP_MAYMOVE);
                return if p == libc::MAP_FAILED { std::ptr::null_mut() } else { p as *mut u8 };
            }
            let p = self.alloc(new);
            if !p.is_null() {
                std::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            p
        }
    }
}

#[cfg(target_os = "linux")]
pub use imp::KernelAlloc;

#[cfg(test)]
mod tests {
    #[test]
    fn blocks_of_every_kind_keep_their_contents_through_growth_and_reuse() {
        // small (pooled), plain and large (mapped) blocks, grown across the kinds, freed and reused
        let mut kept: Vec<Vec<u32>> = Vec::new();
        for round in 0..4u32 {
            for n in [1usize, 3, 7, 16, 31, 100, 127, 128, 129, 1000, 40_000, 70_000] {
                let mut v: Vec<u32> = Vec::new();
                for i in 0..n as u32 {
                    v.push(i ^ round);
                }
                kept.push(v);
            }
            kept.retain(|v| v.len() % 2 == 1 || round % 2 == 0); // free some, keep others
            for v in kept.iter_mut() {
                v.shrink_to_fit();
            }
        }
        for v in &kept {
            let round = v[0];
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32 ^ round));
        }
        let zeroed = vec![0u64; 33];
        assert!(zeroed.iter().all(|&x| x == 0));
    }
}
