//! One pointer per collection, as upstream's `robj->ptr`: a small collection is its
//! listpack or intset block and nothing else, a large one is a boxed structure.
//!
//! A key's value is stored in its table entry (`kvstore`), so every byte of a [`Value`]
//! is paid by every key: collections are one pointer each, and the value is 16 bytes.
//!
//! - [`RawBuf`]: a heap byte buffer reached by one pointer; its length is written in its
//!   own bytes (a listpack's or intset's header) and its capacity is the allocator's usable
//!   size, so nothing else is stored.
//! - [`Thin`]: a small encoding (a [`Small`] buffer, whose first 4 bytes are never 0) or a
//!   boxed large one (whose block starts with a 0 marker), told apart by that first word.
//!
//! [`Value`]: crate::object::Value

use std::alloc::{self, Layout};
use std::marker::PhantomData;
use std::ptr::NonNull;

/// A heap byte buffer reached by one pointer (see the module documentation). The owner
/// knows the length; the capacity is the block's usable size.
#[repr(transparent)]
pub struct RawBuf {
    p: NonNull<u8>,
}

// SAFETY: a RawBuf owns its block exclusively (like a Box<[u8]>).
unsafe impl Send for RawBuf {}
// SAFETY: shared access only reads.
unsafe impl Sync for RawBuf {}

impl RawBuf {
    /// Takes over a Vec's block (its capacity must be non-zero).
    pub fn from_vec(v: Vec<u8>) -> RawBuf {
        assert!(v.capacity() > 0);
        let mut v = std::mem::ManuallyDrop::new(v);
        // SAFETY: a Vec with capacity has a non-null block.
        RawBuf {
            p: unsafe { NonNull::new_unchecked(v.as_mut_ptr()) },
        }
    }

    /// A buffer holding a copy of `b` (non-empty).
    pub fn copy_of(b: &[u8]) -> RawBuf {
        let mut v = Vec::with_capacity(b.len().max(1));
        v.extend_from_slice(b);
        RawBuf::from_vec(v)
    }

    #[inline]
    pub fn ptr(&self) -> *mut u8 {
        self.p.as_ptr()
    }

    /// The usable size of the block.
    #[inline]
    pub fn cap(&self) -> usize {
        // SAFETY: the block is live and came from the global allocator.
        unsafe { crate::zmalloc::usable_size(self.p.as_ptr()) }
    }

    /// The first `len` bytes.
    ///
    /// # Safety
    /// `len` must be at most the initialized length the owner knows.
    #[inline]
    pub unsafe fn slice(&self, len: usize) -> &[u8] {
        // SAFETY: per the caller, `len` initialized bytes of a live block.
        unsafe { std::slice::from_raw_parts(self.p.as_ptr(), len) }
    }

    /// The first `len` bytes, mutable.
    ///
    /// # Safety
    /// As [`RawBuf::slice`].
    #[inline]
    pub unsafe fn slice_mut(&mut self, len: usize) -> &mut [u8] {
        // SAFETY: as `slice`, with exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.p.as_ptr(), len) }
    }

    /// Reads the first 4 bytes as a little-endian u32 (the block is at least 4 bytes:
    /// listpack and intset headers are longer).
    #[inline]
    pub fn head_u32(&self) -> u32 {
        // SAFETY: every owner's block starts with a header of at least 4 bytes.
        unsafe { u32::from_le(std::ptr::read_unaligned(self.p.as_ptr() as *const u32)) }
    }

    /// Resizes the block to exactly `n` bytes (n > 0); the first min(old, n) bytes keep.
    pub fn realloc(&mut self, n: usize) {
        let cap = self.cap();
        let layout = Layout::from_size_align(cap, 1).expect("buffer layout");
        // SAFETY: the block came from the global allocator; its usable size is within its
        // size class, which our allocator (src/zmalloc.rs: libc or jemalloc) accepts as the
        // layout's size; n > 0.
        let p = unsafe { alloc::realloc(self.p.as_ptr(), layout, n.max(1)) };
        match NonNull::new(p) {
            Some(p) => self.p = p,
            None => alloc::handle_alloc_error(Layout::from_size_align(n, 1).expect("layout")),
        }
    }

    /// Makes the block at least `n` bytes long.
    #[inline]
    pub fn reserve(&mut self, n: usize) {
        if self.cap() < n {
            self.realloc(n);
        }
    }

    /// The buffer as a Vec of `len` bytes (len at most the usable size).
    pub fn into_vec(self, len: usize) -> Vec<u8> {
        let cap = self.cap();
        let me = std::mem::ManuallyDrop::new(self);
        // SAFETY: the block came from the global allocator with align 1; its usable size
        // is an acceptable capacity (see `realloc`); `len` bytes are initialized.
        unsafe { Vec::from_raw_parts(me.p.as_ptr(), len, cap) }
    }
}

impl Drop for RawBuf {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.cap(), 1).expect("buffer layout");
        // SAFETY: see `realloc`.
        unsafe { alloc::dealloc(self.p.as_ptr(), layout) }
    }
}

/// A small encoding stored as one [`RawBuf`] whose first 4 bytes are never all zero.
///
/// # Safety
/// The type must be `#[repr(transparent)]` over a [`RawBuf`] (so `&Thin` can be read as
/// `&Self`), and its block's first u32 must never be 0.
pub unsafe trait Small: Sized {}

/// The large encoding's block: a 0 marker where a small buffer has a non-zero header.
#[repr(C)]
struct Marked<B> {
    marker: u32,
    v: B,
}

/// A small encoding `S` or a boxed large one `B`, behind one pointer (see the module
/// documentation).
#[repr(transparent)]
pub struct Thin<S: Small, B> {
    p: NonNull<u8>,
    _m: PhantomData<(S, Box<B>)>,
}

// SAFETY: a Thin owns its S or B exclusively.
unsafe impl<S: Small + Send, B: Send> Send for Thin<S, B> {}
// SAFETY: shared access gives out only shared references.
unsafe impl<S: Small + Sync, B: Sync> Sync for Thin<S, B> {}

impl<S: Small, B> Thin<S, B> {
    pub fn small(s: S) -> Self {
        let s = std::mem::ManuallyDrop::new(s);
        // SAFETY: S is a transparent RawBuf (trait contract).
        let p = unsafe { std::ptr::read(&*s as *const S as *const NonNull<u8>) };
        Thin { p, _m: PhantomData }
    }

    pub fn big(b: B) -> Self {
        let bx = Box::new(Marked { marker: 0, v: b });
        // SAFETY: Box::into_raw is never null.
        let p = unsafe { NonNull::new_unchecked(Box::into_raw(bx) as *mut u8) };
        Thin { p, _m: PhantomData }
    }

    #[inline]
    fn is_big(&self) -> bool {
        // SAFETY: both kinds of block start with 4 readable bytes.
        unsafe { std::ptr::read_unaligned(self.p.as_ptr() as *const u32) == 0 }
    }

    #[inline]
    pub fn get(&self) -> Result<&S, &B> {
        if self.is_big() {
            // SAFETY: a 0 marker means a Marked<B> from `big`.
            Err(unsafe { &(*(self.p.as_ptr() as *const Marked<B>)).v })
        } else {
            // SAFETY: otherwise the pointer is S's RawBuf; S is transparent over it.
            Ok(unsafe { &*(self as *const Self as *const S) })
        }
    }

    #[inline]
    pub fn get_mut(&mut self) -> Result<&mut S, &mut B> {
        if self.is_big() {
            // SAFETY: as `get`, exclusively.
            Err(unsafe { &mut (*(self.p.as_ptr() as *mut Marked<B>)).v })
        } else {
            // SAFETY: as `get`; writes through `&mut S` update our pointer.
            Ok(unsafe { &mut *(self as *mut Self as *mut S) })
        }
    }

    pub fn into_inner(self) -> Result<S, B> {
        let me = std::mem::ManuallyDrop::new(self);
        if me.is_big() {
            // SAFETY: from `big`; ownership moves out once.
            let bx = unsafe { Box::from_raw(me.p.as_ptr() as *mut Marked<B>) };
            Err(bx.v)
        } else {
            // SAFETY: S is transparent over the pointer; ownership moves out once.
            Ok(unsafe { std::ptr::read(&*me as *const Self as *const S) })
        }
    }
}

impl<S: Small, B> Drop for Thin<S, B> {
    fn drop(&mut self) {
        let me = Thin::<S, B> {
            p: self.p,
            _m: PhantomData,
        };
        drop(me.into_inner());
    }
}

impl<S: Small + Clone, B: Clone> Clone for Thin<S, B> {
    fn clone(&self) -> Self {
        match self.get() {
            Ok(s) => Thin::small(s.clone()),
            Err(b) => Thin::big(b.clone()),
        }
    }
}

impl<S: Small + PartialEq, B: PartialEq> PartialEq for Thin<S, B> {
    fn eq(&self, o: &Self) -> bool {
        match (self.get(), o.get()) {
            (Ok(a), Ok(b)) => a == b,
            (Err(a), Err(b)) => a == b,
            _ => false,
        }
    }
}

impl<S: Small + std::fmt::Debug, B: std::fmt::Debug> std::fmt::Debug for Thin<S, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.get() {
            Ok(s) => s.fmt(f),
            Err(b) => b.fmt(f),
        }
    }
}
