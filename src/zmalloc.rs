//! Memory accounting, as upstream's `zmalloc.c` built with libc malloc: every allocation
//! of the process goes through [`Counting`], which adds the allocator's *usable* size
//! (`malloc_usable_size`) to a counter, so `used_memory` in INFO means what it means
//! upstream and the two servers can be compared byte for byte.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static USED: AtomicUsize = AtomicUsize::new(0);

/// The global allocator: the system allocator, counted.
pub struct Counting;

#[inline]
fn usable(ptr: *mut u8) -> usize {
    // SAFETY: ptr was returned by the system allocator and not yet freed.
    unsafe { libc::malloc_usable_size(ptr as *mut libc::c_void) }
}

unsafe impl GlobalAlloc for Counting {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            USED.fetch_add(usable(p), Ordering::Relaxed);
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            USED.fetch_add(usable(p), Ordering::Relaxed);
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        USED.fetch_sub(usable(ptr), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = usable(ptr);
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            USED.fetch_sub(old, Ordering::Relaxed);
            USED.fetch_add(usable(p), Ordering::Relaxed);
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
