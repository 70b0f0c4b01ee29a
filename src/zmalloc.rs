//! Memory accounting, as upstream's `zmalloc.c`: every allocation of the process goes
//! through [`Counting`], which adds the allocator's *usable* size of the block to a
//! counter, so `used_memory` in INFO means what it means upstream.
//!
//! Two allocators can sit underneath, chosen at build time (docs/memory.md, "Allocator"):
//!
//! - **jemalloc 5.3.0** (the default feature `jemalloc`, through tikv-jemallocator):
//!   upstream's default allocator. It also answers the `allocator_*` statistics, MEMORY
//!   MALLOC-STATS and MEMORY PURGE from its own counters, as upstream's jemalloc build, and
//!   a block freed by the lazy free thread costs the event loop nothing.
//! - **libc malloc** (`--no-default-features`, `make MALLOC=libc`): what the reference
//!   server we compare with is built with, so `used_memory` and MEMORY USAGE compare byte
//!   for byte; glibc makes the event loop's mallocs sort what other threads freed.
//!
//! Code that needs the size of one block (MEMORY USAGE, the data types' byte counts) asks
//! [`usable_size`], never libc directly: with jemalloc the pointer belongs to jemalloc.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

#[cfg(feature = "jemalloc")]
use jemalloc::Jemalloc as Inner;
#[cfg(not(feature = "jemalloc"))]
use std::alloc::System as Inner;

/// INFO `mem_allocator`, as upstream's `ZMALLOC_LIB`.
#[cfg(not(feature = "jemalloc"))]
pub const MALLOC_LIB: &str = "libc";
#[cfg(feature = "jemalloc")]
pub const MALLOC_LIB: &str = "jemalloc-5.3.0";

static USED: AtomicUsize = AtomicUsize::new(0);

/// The global allocator: the chosen allocator, counted.
pub struct Counting;

/// The usable size of a live block of the global allocator (`zmalloc_size`).
///
/// # Safety
/// `ptr` must be the start of a live allocation of the global allocator.
#[inline]
pub unsafe fn usable_size(ptr: *const u8) -> usize {
    #[cfg(not(feature = "jemalloc"))]
    {
        libc::malloc_usable_size(ptr as *mut libc::c_void)
    }
    #[cfg(feature = "jemalloc")]
    {
        tikv_jemalloc_sys::malloc_usable_size(ptr as *const libc::c_void)
    }
}

/// jemalloc as a Rust allocator, for jemalloc built with upstream's 8-byte quantum
/// (`.cargo/config.toml`): a plain `malloc` is only 8-byte aligned there (a 24-byte block
/// is one of the 24-byte class), so every request that needs more alignment names it
/// (`MALLOCX_ALIGN`). tikv-jemallocator's own allocator assumes a 16-byte quantum and
/// would hand a 24-byte, 16-aligned request (a hash table's control bytes, read with
/// aligned SSE loads) an 8-aligned block.
#[cfg(feature = "jemalloc")]
mod jemalloc {
    use std::alloc::{GlobalAlloc, Layout};
    use std::os::raw::{c_int, c_void};
    use tikv_jemalloc_sys as je;

    /// The quantum jemalloc is configured with: every block is aligned to it.
    const QUANTUM: usize = 8;

    #[inline]
    fn flags(align: usize) -> c_int {
        if align <= QUANTUM {
            0
        } else {
            je::MALLOCX_ALIGN(align)
        }
    }

    pub struct Jemalloc;

    // SAFETY: each method forwards to the jemalloc call with the same contract, with the
    // layout's alignment passed whenever the quantum does not already guarantee it.
    unsafe impl GlobalAlloc for Jemalloc {
        #[inline]
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            je::mallocx(layout.size(), flags(layout.align())) as *mut u8
        }

        #[inline]
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            je::mallocx(layout.size(), flags(layout.align()) | je::MALLOCX_ZERO) as *mut u8
        }

        #[inline]
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            je::sdallocx(ptr as *mut c_void, layout.size(), flags(layout.align()))
        }

        #[inline]
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            je::rallocx(ptr as *mut c_void, new_size, flags(layout.align())) as *mut u8
        }
    }
}

/// Usable size of a vector's block, 0 when it has none.
#[inline]
pub fn vec_usable<T>(v: &Vec<T>) -> usize {
    if v.capacity() == 0 || std::mem::size_of::<T>() == 0 {
        return 0;
    }
    // SAFETY: a Vec with a non-zero capacity of a sized type owns a live block of the
    // global allocator that starts at its pointer.
    unsafe { usable_size(v.as_ptr() as *const u8) }
}

/// The usable size the global allocator gives a request of `n` bytes (its size class):
/// what a test may expect a block of `n` bytes to cost under either allocator.
#[cfg(test)]
pub fn usable_for(n: usize) -> usize {
    vec_usable(&Vec::<u8>::with_capacity(n.max(1)))
}

unsafe impl GlobalAlloc for Counting {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = Inner.alloc(layout);
        if !p.is_null() {
            USED.fetch_add(usable_size(p), Ordering::Relaxed);
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = Inner.alloc_zeroed(layout);
        if !p.is_null() {
            USED.fetch_add(usable_size(p), Ordering::Relaxed);
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        USED.fetch_sub(usable_size(ptr), Ordering::Relaxed);
        Inner.dealloc(ptr, layout)
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = usable_size(ptr);
        let p = Inner.realloc(ptr, layout, new_size);
        if !p.is_null() {
            USED.fetch_sub(old, Ordering::Relaxed);
            USED.fetch_add(usable_size(p), Ordering::Relaxed);
        }
        p
    }
}

/// Bytes currently allocated (usable sizes), as `zmalloc_used_memory`.
pub fn used_memory() -> usize {
    USED.load(Ordering::Relaxed)
}

/// Resident set size in bytes, read from /proc/self/statm, as `zmalloc_get_rss`.
pub fn rss() -> usize {
    let Ok(s) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: usize = s
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    pages * page_size()
}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// Total physical memory, for INFO `total_system_memory`.
pub fn total_system_memory() -> usize {
    // SAFETY: sysconf has no preconditions.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    if pages > 0 {
        pages as usize * page_size()
    } else {
        0
    }
}

/// What the allocator itself reports (upstream's `zmalloc_get_allocator_info`): bytes
/// allocated, active (in pages in use), resident, muzzy, and the bytes lost to
/// fragmentation in partly used small-size pages. libc malloc reports nothing (all
/// zero); the caller then derives the fields from RSS as upstream does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocatorInfo {
    pub allocated: usize,
    pub active: usize,
    pub resident: usize,
    pub muzzy: usize,
    pub frag_smallbins_bytes: usize,
}

#[cfg(not(feature = "jemalloc"))]
pub fn allocator_info() -> AllocatorInfo {
    AllocatorInfo::default()
}

#[cfg(feature = "jemalloc")]
pub fn allocator_info() -> AllocatorInfo {
    use tikv_jemalloc_ctl::{epoch, stats};
    // The statistics are a snapshot taken when the epoch advances.
    let _ = epoch::advance();
    let allocated = stats::allocated::read().unwrap_or(0);
    let active = stats::active::read().unwrap_or(0);
    let resident = stats::resident::read().unwrap_or(0);
    // stats.arenas.<all>.pmuzzy is in pages; 4096 is MALLCTL_ARENAS_ALL.
    // SAFETY: the name is NUL-terminated and the value a size_t.
    let muzzy_pages: usize =
        unsafe { tikv_jemalloc_ctl::raw::read(b"stats.arenas.4096.pmuzzy\0") }.unwrap_or(0);
    AllocatorInfo {
        allocated,
        active,
        resident,
        muzzy: muzzy_pages * page_size(),
        // Upstream sums the free regions of the small bins' slabs; the gap between the
        // active pages and the allocated bytes is the same kind of waste, measured
        // from jemalloc's totals.
        frag_smallbins_bytes: active.saturating_sub(allocated),
    }
}

/// The allocator's statistics report (MEMORY MALLOC-STATS), or None when it has none.
#[cfg(not(feature = "jemalloc"))]
pub fn malloc_stats() -> Option<String> {
    None
}

#[cfg(feature = "jemalloc")]
pub fn malloc_stats() -> Option<String> {
    extern "C" fn write_cb(opaque: *mut libc::c_void, s: *const libc::c_char) {
        // SAFETY: opaque is the &mut String passed below; s is a NUL-terminated string.
        unsafe {
            let out = &mut *(opaque as *mut String);
            out.push_str(&std::ffi::CStr::from_ptr(s).to_string_lossy());
        }
    }
    let mut out = String::new();
    // SAFETY: the callback only appends to `out`, which outlives the call.
    unsafe {
        tikv_jemalloc_sys::malloc_stats_print(
            Some(write_cb),
            &mut out as *mut String as *mut libc::c_void,
            std::ptr::null(),
        );
    }
    Some(out)
}

/// Returns dirty pages to the system (MEMORY PURGE); false on failure.
pub fn purge() -> bool {
    #[cfg(not(feature = "jemalloc"))]
    {
        // Upstream does nothing with libc malloc; glibc's malloc_trim is its equivalent
        // of jemalloc's purge (free pages at the top of the heap and in the arenas).
        // SAFETY: malloc_trim has no preconditions.
        unsafe { libc::malloc_trim(0) };
        true
    }
    #[cfg(feature = "jemalloc")]
    {
        // arena.<MALLCTL_ARENAS_ALL>.purge takes neither an old nor a new value.
        // SAFETY: the name is NUL-terminated; null pointers are what the ctl expects.
        let r = unsafe {
            tikv_jemalloc_sys::mallctl(
                c"arena.4096.purge".as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
        r == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_usable_sizes() {
        let v: Vec<u8> = Vec::with_capacity(1000);
        let u = vec_usable(&v);
        assert!((1000..1100).contains(&u), "usable {u}");
        let e: Vec<u8> = Vec::new();
        assert_eq!(vec_usable(&e), 0);
    }

    #[test]
    fn allocator_info_is_coherent() {
        let i = allocator_info();
        if MALLOC_LIB == "libc" {
            assert_eq!(i, AllocatorInfo::default());
        } else {
            assert!(i.allocated > 0 && i.active >= i.allocated && i.resident >= i.active);
        }
    }
}
