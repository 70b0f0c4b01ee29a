//! The set value type, as upstream's `t_set.c` type layer: three encodings and the rules
//! that move a set between them.
//!
//! - `intset`: every member is an integer (`string2ll` form) and the set has at most
//!   `set-max-intset-entries` members (bounded to 2^30, as upstream, so a huge setting
//!   cannot make the intset grow without limit: CVE-2021-32687).
//! - `listpack`: a small set (at most `set-max-listpack-entries` members of at most
//!   `set-max-listpack-value` bytes), in insertion order.
//! - `hashtable`: everything else; one allocation per member whose payload is the member
//!   itself.
//!
//! Sets only ever move "up" (intset -> listpack -> hashtable, or intset -> hashtable) as
//! members are added, except for the result of SINTERSTORE, which becomes an intset when
//! every member is an integer ([`Set::maybe_convert_to_intset`]).

use crate::object::Encoding;

use crate::types::dict::{self, Dict, WholeKey};
use crate::types::intset::{self, Intset};
use crate::types::listpack::{self, Listpack, LpEntry};
use crate::types::thin::{RawBuf, Small, Thin};

/// Upstream's `LISTPACK_MAX_SAFETY_SIZE`: a listpack never grows past this.
const LISTPACK_MAX_SAFETY_SIZE: usize = listpack::MAX_SAFETY_SIZE;

/// The intset bound whatever `set-max-intset-entries` says (upstream's `intsetMaxEntries`).
const INTSET_MAX_ENTRIES_CAP: usize = 1 << 30;

/// The thresholds of the set encodings, copied from the config before a command takes
/// its value mutably.
#[derive(Clone, Copy, Debug)]
pub struct SetLimits {
    /// `set-max-intset-entries` as configured.
    pub intset_entries: usize,
    /// `set-max-listpack-entries`.
    pub lp_entries: usize,
    /// `set-max-listpack-value`.
    pub lp_value: usize,
}

impl SetLimits {
    pub fn from_config(cfg: &crate::config::Config) -> SetLimits {
        SetLimits {
            intset_entries: cfg.set_max_intset_entries,
            lp_entries: cfg.set_max_listpack_entries,
            lp_value: cfg.set_max_listpack_value,
        }
    }

    /// The intset size at which a set converts to a hashtable (upstream's
    /// `intsetMaxEntries`).
    fn intset_max(&self) -> usize {
        self.intset_entries.min(INTSET_MAX_ENTRIES_CAP)
    }
}

/// A member as stored: integers in intsets (and int-encoded listpack entries) come out
/// as integers, everything else as bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Member<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl Member<'_> {
    /// The member's bytes (integers in decimal).
    pub fn to_vec(self) -> Vec<u8> {
        match self {
            Member::Int(n) => {
                let mut b = crate::reply::itoa_buf();
                crate::reply::fmt_i64(&mut b, n).to_vec()
            }
            Member::Str(s) => s.to_vec(),
        }
    }
}

impl<'a> From<LpEntry<'a>> for Member<'a> {
    fn from(e: LpEntry<'a>) -> Member<'a> {
        match e {
            LpEntry::Int(n) => Member::Int(n),
            LpEntry::Str(s) => Member::Str(s),
        }
    }
}

/// The encodings, owned (`Repr<Intset, Listpack, Box<Dict<WholeKey>>>`) or borrowed.
enum Repr<I, L, D> {
    Intset(I),
    Listpack(L),
    /// The payload of each node is the member itself.
    Dict(D),
}

/// The small encodings behind one pointer: an intset's first u32 is its encoding (2, 4
/// or 8), a listpack's its total bytes (7, or 9 and more), so the first word tells them
/// apart.
#[repr(transparent)]
struct SmallSet {
    b: RawBuf,
}

// SAFETY: transparent over a RawBuf whose first u32 is an intset's encoding or a
// listpack's total, never 0.
unsafe impl Small for SmallSet {}

impl SmallSet {
    #[inline]
    fn is_intset(&self) -> bool {
        matches!(self.b.head_u32(), 2 | 4 | 8)
    }

    #[inline]
    fn get(&self) -> Result<&Intset, &Listpack> {
        // SAFETY: SmallSet, Intset and Listpack are all transparent over a RawBuf, and
        // the first word says which one this block is.
        unsafe {
            if self.is_intset() {
                Ok(&*(self as *const SmallSet as *const Intset))
            } else {
                Err(&*(self as *const SmallSet as *const Listpack))
            }
        }
    }

    #[inline]
    fn get_mut(&mut self) -> Result<&mut Intset, &mut Listpack> {
        // SAFETY: as `get`.
        unsafe {
            if self.is_intset() {
                Ok(&mut *(self as *mut SmallSet as *mut Intset))
            } else {
                Err(&mut *(self as *mut SmallSet as *mut Listpack))
            }
        }
    }

    fn from_intset(is: Intset) -> SmallSet {
        let is = std::mem::ManuallyDrop::new(is);
        // SAFETY: Intset is transparent over a RawBuf; ownership moves here.
        SmallSet {
            b: unsafe { std::ptr::read(&*is as *const Intset as *const RawBuf) },
        }
    }

    fn from_listpack(lp: Listpack) -> SmallSet {
        let lp = std::mem::ManuallyDrop::new(lp);
        // SAFETY: Listpack is transparent over a RawBuf; ownership moves here.
        SmallSet {
            b: unsafe { std::ptr::read(&*lp as *const Listpack as *const RawBuf) },
        }
    }
}

impl Clone for SmallSet {
    fn clone(&self) -> Self {
        match self.get() {
            Ok(is) => SmallSet::from_intset(is.clone()),
            Err(lp) => SmallSet::from_listpack(lp.clone()),
        }
    }
}

impl PartialEq for SmallSet {
    fn eq(&self, o: &Self) -> bool {
        match (self.get(), o.get()) {
            (Ok(a), Ok(b)) => a == b,
            (Err(a), Err(b)) => a == b,
            _ => false,
        }
    }
}

impl std::fmt::Debug for SmallSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.get() {
            Ok(is) => is.fmt(f),
            Err(lp) => lp.fmt(f),
        }
    }
}

type OwnRepr = Repr<Intset, Listpack, Box<Dict<WholeKey>>>;

/// A set value: one pointer (see [`super::thin`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Set {
    t: Thin<SmallSet, Dict<WholeKey>>,
}

impl Default for Set {
    fn default() -> Self {
        Set::new_intset()
    }
}

/// Decimal digits of `n` with its sign (upstream's `sdigits10`).
fn sdigits10(n: i64) -> usize {
    let mut b = crate::reply::itoa_buf();
    crate::reply::fmt_i64(&mut b, n).len()
}

/// Upper bound of the listpack bytes of `n` copies of the integer `v`
/// (upstream's `lpEstimateBytesRepeatedInteger`).
fn lp_estimate_repeated_int(v: i64, n: usize) -> usize {
    let entry = if (0..=127).contains(&v) {
        1
    } else if (-4096..=4095).contains(&v) {
        2
    } else if (i16::MIN as i64..=i16::MAX as i64).contains(&v) {
        3
    } else if (-(1 << 23)..(1 << 23)).contains(&v) {
        4
    } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
        5
    } else {
        9
    };
    // Header (6) + entries with their 1-byte backlen + end byte.
    n.saturating_mul(entry + 1).saturating_add(7)
}

impl Set {
    fn from_own(r: OwnRepr) -> Set {
        Set {
            t: match r {
                Repr::Intset(is) => Thin::small(SmallSet::from_intset(is)),
                Repr::Listpack(lp) => Thin::small(SmallSet::from_listpack(lp)),
                Repr::Dict(d) => Thin::big(*d),
            },
        }
    }

    fn set_repr(&mut self, r: OwnRepr) {
        *self = Set::from_own(r);
    }

    #[inline]
    fn r(&self) -> Repr<&Intset, &Listpack, &Dict<WholeKey>> {
        match self.t.get() {
            Ok(s) => match s.get() {
                Ok(is) => Repr::Intset(is),
                Err(lp) => Repr::Listpack(lp),
            },
            Err(d) => Repr::Dict(d),
        }
    }

    #[inline]
    fn rm(&mut self) -> Repr<&mut Intset, &mut Listpack, &mut Dict<WholeKey>> {
        match self.t.get_mut() {
            Ok(s) => match s.get_mut() {
                Ok(is) => Repr::Intset(is),
                Err(lp) => Repr::Listpack(lp),
            },
            Err(d) => Repr::Dict(d),
        }
    }

    pub fn new_intset() -> Set {
        Set::from_own(Repr::Intset(Intset::new()))
    }

    pub fn new_listpack() -> Set {
        Set::from_own(Repr::Listpack(Listpack::new()))
    }

    pub fn new_dict(cap: usize) -> Set {
        let mut d = Dict::new();
        if cap > 0 {
            d.expand(cap);
        }
        Set::from_own(Repr::Dict(Box::new(d)))
    }

    /// A new empty set able to hold `first` and about `size_hint` members (upstream's
    /// `setTypeCreate`). `size_hint` must be bounded by the request's size (argument
    /// count), never by a number the client sent.
    pub fn create(first: &[u8], size_hint: usize, lim: &SetLimits) -> Set {
        if size_hint <= lim.intset_entries && crate::util::parse_i64_strict(first).is_some() {
            return Set::new_intset();
        }
        if size_hint <= lim.lp_entries {
            return Set::new_listpack();
        }
        Set::new_dict(size_hint)
    }

    /// Converts to a hashtable ahead of adding about `size_hint` members if they cannot
    /// fit the current encoding (upstream's `setTypeMaybeConvert`).
    pub fn maybe_convert(&mut self, size_hint: usize, lim: &SetLimits) {
        let convert = match self.r() {
            Repr::Listpack(_) => size_hint > lim.lp_entries,
            Repr::Intset(_) => size_hint > lim.intset_entries,
            Repr::Dict(_) => false,
        };
        if convert {
            self.convert_to_dict(size_hint);
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match self.r() {
            Repr::Intset(is) => is.len(),
            Repr::Listpack(lp) => lp.len(),
            Repr::Dict(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoding OBJECT ENCODING reports.
    pub fn encoding(&self) -> Encoding {
        match self.r() {
            Repr::Intset(_) => Encoding::Intset,
            Repr::Listpack(_) => Encoding::Listpack,
            Repr::Dict(_) => Encoding::Hashtable,
        }
    }

    /// Bytes allocated for this value's contents, as the allocator reports them
    /// (MEMORY USAGE).
    pub fn mem_usage(&self) -> usize {
        match self.r() {
            Repr::Intset(is) => is.mem_usage(),
            Repr::Listpack(lp) => lp.mem_usage(),
            Repr::Dict(d) => d.mem_usage(),
        }
    }

    /// The intset, when intset-encoded (RDB).
    pub fn as_intset(&self) -> Option<&Intset> {
        match self.r() {
            Repr::Intset(is) => Some(is),
            _ => None,
        }
    }

    /// The listpack, when listpack-encoded (RDB).
    pub fn as_listpack(&self) -> Option<&Listpack> {
        match self.r() {
            Repr::Listpack(lp) => Some(lp),
            _ => None,
        }
    }

    /// A set adopting an intset (RDB loading).
    pub fn from_intset(is: Intset) -> Set {
        Set::from_own(Repr::Intset(is))
    }

    /// A set adopting a listpack of unique members (RDB loading).
    pub fn from_listpack(lp: Listpack) -> Set {
        Set::from_own(Repr::Listpack(lp))
    }

    /// Whether the members come out as hashtable strings (for callers that care about
    /// upstream's "came from a hashtable" special cases).
    pub fn is_dict(&self) -> bool {
        matches!(self.r(), Repr::Dict(_))
    }

    /// Converts to a hashtable sized for `cap` members.
    pub fn convert_to_dict(&mut self, cap: usize) {
        if self.is_dict() {
            return;
        }
        let mut d: Dict<WholeKey> = Dict::new();
        d.expand(cap.max(self.len()));
        for m in self.iter() {
            match m {
                Member::Str(s) => {
                    let _ = d.insert(s);
                }
                Member::Int(n) => {
                    let mut b = crate::reply::itoa_buf();
                    let _ = d.insert(crate::reply::fmt_i64(&mut b, n));
                }
            }
        }
        self.set_repr(Repr::Dict(Box::new(d)));
    }

    /// Converts an intset to a listpack (the order is the intset's: ascending).
    fn convert_intset_to_listpack(&mut self) {
        let mut lp = Listpack::new();
        for m in self.iter() {
            match m {
                Member::Int(n) => lp.append_int(n),
                Member::Str(s) => lp.append(s),
            }
        }
        self.set_repr(Repr::Listpack(lp));
    }

    /// Makes the set an intset if every member is an integer and it is small enough
    /// (upstream's `maybeConvertToIntset`; the caller knows the members are integers).
    pub fn maybe_convert_to_intset(&mut self, lim: &SetLimits) {
        if matches!(self.r(), Repr::Intset(_)) || self.len() > lim.intset_max() {
            return;
        }
        let mut is = Intset::new();
        for m in self.iter() {
            let v = match m {
                Member::Int(n) => n,
                Member::Str(s) => match crate::util::parse_i64_strict(s) {
                    Some(n) => n,
                    None => return,
                },
            };
            is.add(v);
        }
        self.set_repr(Repr::Intset(is));
    }

    /// Adds `m`; returns true if it was not a member (upstream's `setTypeAddAux`, with its
    /// encoding conversions).
    pub fn add_member(&mut self, m: Member<'_>, lim: &SetLimits) -> bool {
        match m {
            Member::Int(n) => {
                if let Repr::Intset(is) = self.rm() {
                    let added = is.add(n);
                    if added && is.len() > lim.intset_max() {
                        self.convert_to_dict(0);
                    }
                    return added;
                }
                let mut b = crate::reply::itoa_buf();
                let s = crate::reply::fmt_i64(&mut b, n);
                self.add_str(s, lim)
            }
            Member::Str(s) => self.add_str(s, lim),
        }
    }

    /// Adds the member `s`; returns true if it was not a member.
    pub fn add(&mut self, s: &[u8], lim: &SetLimits) -> bool {
        self.add_str(s, lim)
    }

    fn add_str(&mut self, s: &[u8], lim: &SetLimits) -> bool {
        match self.rm() {
            Repr::Dict(d) => d.insert(s).is_ok(),
            Repr::Listpack(lp) => {
                if lp.first().is_some_and(|p| lp.find(p, s, 0).is_some()) {
                    return false;
                }
                let n = lp.len();
                if n < lim.lp_entries && s.len() <= lim.lp_value && lp.safe_to_add(s.len()) {
                    lp.append(s);
                } else {
                    self.convert_to_dict(n + 1);
                    if let Repr::Dict(d) = self.rm() {
                        let _ = d.insert(s);
                    }
                }
                true
            }
            Repr::Intset(is) => {
                if let Some(v) = crate::util::parse_i64_strict(s) {
                    let added = is.add(v);
                    if added && is.len() > lim.intset_max() {
                        self.convert_to_dict(0);
                    }
                    return added;
                }
                // A string member: the set becomes a listpack if everything fits one,
                // else a hashtable.
                let n = is.len();
                let (mut maxlen, mut totsize) = (0, 0);
                if n > 0 {
                    let (min, max) = (is.min().unwrap_or(0), is.max().unwrap_or(0));
                    maxlen = sdigits10(min).max(sdigits10(max));
                    totsize =
                        lp_estimate_repeated_int(min, n).max(lp_estimate_repeated_int(max, n));
                }
                if n < lim.lp_entries
                    && s.len() <= lim.lp_value
                    && maxlen <= lim.lp_value
                    && totsize.saturating_add(s.len()) <= LISTPACK_MAX_SAFETY_SIZE
                {
                    self.convert_intset_to_listpack();
                    if let Repr::Listpack(lp) = self.rm() {
                        lp.append(s);
                    }
                } else {
                    self.convert_to_dict(n + 1);
                    if let Repr::Dict(d) = self.rm() {
                        let _ = d.insert(s);
                    }
                }
                true
            }
        }
    }

    /// Removes `m`; returns true if it was a member.
    pub fn remove_member(&mut self, m: Member<'_>) -> bool {
        match (m, self.rm()) {
            (Member::Int(n), Repr::Intset(is)) => is.remove(n),
            (Member::Int(n), _) => {
                let mut b = crate::reply::itoa_buf();
                let s = crate::reply::fmt_i64(&mut b, n);
                self.remove(s)
            }
            (Member::Str(s), _) => self.remove(s),
        }
    }

    /// Removes the member `s`; returns true if it was a member.
    pub fn remove(&mut self, s: &[u8]) -> bool {
        match self.rm() {
            Repr::Dict(d) => d.remove(s),
            Repr::Listpack(lp) => match lp.first().and_then(|p| lp.find(p, s, 0)) {
                Some(p) => {
                    lp.delete(p);
                    true
                }
                None => false,
            },
            Repr::Intset(is) => crate::util::parse_i64_strict(s).is_some_and(|v| is.remove(v)),
        }
    }

    /// Whether `m` is a member.
    pub fn contains_member(&self, m: Member<'_>) -> bool {
        match (m, self.r()) {
            (Member::Int(n), Repr::Intset(is)) => is.contains(n),
            (Member::Int(n), _) => {
                let mut b = crate::reply::itoa_buf();
                let s = crate::reply::fmt_i64(&mut b, n);
                self.contains(s)
            }
            (Member::Str(s), _) => self.contains(s),
        }
    }

    /// Whether `s` is a member.
    pub fn contains(&self, s: &[u8]) -> bool {
        match self.r() {
            Repr::Dict(d) => d.get(s).is_some(),
            Repr::Listpack(lp) => lp.first().is_some_and(|p| lp.find(p, s, 0).is_some()),
            Repr::Intset(is) => crate::util::parse_i64_strict(s).is_some_and(|v| is.contains(v)),
        }
    }

    /// The members in upstream's iteration order (intset: ascending; listpack: insertion
    /// order; hashtable: table order).
    pub fn iter(&self) -> SetIter<'_> {
        match self.r() {
            Repr::Intset(is) => SetIter::Intset(is.iter()),
            Repr::Listpack(lp) => SetIter::Listpack(lp.iter()),
            Repr::Dict(d) => SetIter::Dict(d.iter()),
        }
    }

    /// A random member of a non-empty set.
    pub fn random(&self) -> Option<Member<'_>> {
        match self.r() {
            Repr::Intset(is) => is.random().map(Member::Int),
            Repr::Listpack(lp) => {
                let n = lp.len();
                if n == 0 {
                    return None;
                }
                let r = (crate::util::random_u64() % n as u64) as i64;
                lp.seek(r).map(|p| lp.get(p).into())
            }
            Repr::Dict(d) => d.random().map(|n| Member::Str(d.payload(n))),
        }
    }

    /// Removes and returns a random member (as bytes) of a non-empty set.
    pub fn pop_random(&mut self) -> Option<Vec<u8>> {
        let m = self.random()?;
        let owned = m.to_vec();
        match m {
            Member::Int(n) => {
                self.remove_member(Member::Int(n));
            }
            Member::Str(_) => {
                self.remove(&owned);
            }
        }
        Some(owned)
    }

    /// Removes the members at the given ascending positions in iteration order from a
    /// listpack set, calling `f` with each (upstream's SPOP count listpack path).
    /// Returns false (doing nothing) if the set is not a listpack.
    pub fn listpack_remove_sorted_indexes(
        &mut self,
        idx: &[usize],
        f: &mut dyn FnMut(Member<'_>),
    ) -> bool {
        let Repr::Listpack(lp) = self.rm() else {
            return false;
        };
        let mut pos = lp.first();
        let mut i = 0usize;
        let mut want = idx.iter().peekable();
        while let Some(p) = pos {
            let Some(&&w) = want.peek() else { break };
            if w == i {
                f(lp.get(p).into());
                pos = lp.delete(p);
                want.next();
            } else {
                pos = lp.next(p);
            }
            i += 1;
        }
        true
    }

    /// One SSCAN step over a hashtable set (`None` for the small encodings, which are
    /// returned whole by the caller).
    pub fn dict_scan(&self, cursor: u64, f: &mut dyn FnMut(&[u8])) -> Option<u64> {
        match self.r() {
            Repr::Dict(d) => Some(d.scan(cursor, f)),
            _ => None,
        }
    }
}

/// Iterator over a set's members.
pub enum SetIter<'a> {
    Intset(intset::Iter<'a>),
    Listpack(listpack::Iter<'a>),
    Dict(dict::Iter<'a, WholeKey>),
}

impl<'a> Iterator for SetIter<'a> {
    type Item = Member<'a>;

    #[inline]
    fn next(&mut self) -> Option<Member<'a>> {
        match self {
            SetIter::Intset(it) => it.next().map(Member::Int),
            SetIter::Listpack(it) => it.next().map(Member::from),
            SetIter::Dict(it) => it.next().map(Member::Str),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: SetLimits = SetLimits {
        intset_entries: 512,
        lp_entries: 128,
        lp_value: 64,
    };

    #[test]
    fn encodings_move_up() {
        let mut s = Set::create(b"1", 1, &LIM);
        assert_eq!(s.encoding(), Encoding::Intset);
        assert!(s.add(b"3", &LIM));
        assert!(s.add(b"2", &LIM));
        assert!(!s.add(b"2", &LIM));
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![Member::Int(2), Member::Int(3)]
        );
        assert!(s.add(b"a", &LIM));
        assert_eq!(s.encoding(), Encoding::Listpack);
        assert_eq!(
            s.iter().map(|m| m.to_vec()).collect::<Vec<_>>(),
            vec![b"2".to_vec(), b"3".to_vec(), b"a".to_vec()]
        );
        assert!(s.add(&[b'x'; 65], &LIM));
        assert_eq!(s.encoding(), Encoding::Hashtable);
        assert_eq!(s.len(), 4);
        assert!(s.contains(b"2") && s.contains_member(Member::Int(3)));
        assert!(s.remove(b"2") && !s.remove(b"2"));
    }

    #[test]
    fn intset_limit_is_capped() {
        let lim = SetLimits {
            intset_entries: usize::MAX,
            ..LIM
        };
        assert_eq!(lim.intset_max(), 1 << 30);
        let mut s = Set::create(b"1", 1, &lim);
        for i in 0..1000 {
            s.add_member(Member::Int(i), &lim);
        }
        assert_eq!(s.encoding(), Encoding::Intset);
    }
}
