//! A single-threaded event loop in the shape of Valkey's `ae.c`, built on mio.
//!
//! Valkey's server is one thread that owns all state and multiplexes every socket and timer
//! through `aeEventLoop`. This crate keeps that vocabulary so the server code reads like
//! upstream's:
//!
//! - **File events** are registered per file descriptor with a mask of [`READABLE`],
//!   [`WRITABLE`] and [`BARRIER`], a handler function and an opaque `client_data` word.
//! - **Time events** have an id, a due time and a handler that returns the period in
//!   milliseconds until it should run again, or [`NOMORE`] to be deleted.
//! - **before-sleep / after-sleep** hooks run around the poll call; the server flushes
//!   client output in before-sleep, as `handleClientsWithPendingWrites` does upstream.
//!
//! # Layout
//! The loop is generic over the state type `S` it drives; handlers are plain function
//! pointers taking `(&mut EventLoop<S>, &mut S, ...)`, so no closure captures state and the
//! server struct is borrowed mutably exactly once, by the handler that runs.
//!
//! # Edge-triggered readiness
//! mio delivers readiness edge-triggered (epoll `EPOLLET`). ae's contract upstream is
//! level-triggered. Handlers therefore must read or write until `WouldBlock`, or call
//! [`EventLoop::set_pending`] to be called again on the next turn without a new edge.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::io::RawFd;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

/// No event registered.
pub const NONE: u32 = 0;
/// Fire when the descriptor is readable.
pub const READABLE: u32 = 1;
/// Fire when the descriptor is writable.
pub const WRITABLE: u32 = 2;
/// With WRITABLE: never fire the writable handler after the readable one in the same turn;
/// run the write first (used when the reply must be persisted before it is sent).
pub const BARRIER: u32 = 4;

/// Passed with READABLE to a handler when the peer closed its side (or the descriptor is in
/// error): reading will reach the end, so the handler must read until it does.
pub const READ_CLOSED: u32 = 8;

/// Returned by a time event handler to delete the time event.
pub const NOMORE: i64 = -1;

/// Flags for [`EventLoop::process_events`].
pub const FILE_EVENTS: u32 = 1;
pub const TIME_EVENTS: u32 = 2;
pub const ALL_EVENTS: u32 = FILE_EVENTS | TIME_EVENTS;
pub const DONT_WAIT: u32 = 4;
pub const CALL_BEFORE_SLEEP: u32 = 8;
pub const CALL_AFTER_SLEEP: u32 = 16;

/// Upper bound on the time events run in one loop turn, so a storm of due timers can never
/// starve the file events.
pub const TIME_EVENTS_PER_TURN_MAX: usize = 64;

/// A file event handler: `(loop, state, fd, client_data, mask_fired)`.
pub type FileProc<S> = fn(&mut EventLoop<S>, &mut S, RawFd, usize, u32);
/// A time event handler: returns the next period in ms, or [`NOMORE`].
pub type TimeProc<S> = fn(&mut EventLoop<S>, &mut S, u64) -> i64;
/// A before/after sleep hook.
pub type SleepProc<S> = fn(&mut EventLoop<S>, &mut S);

struct FileEvent<S> {
    mask: u32,
    rfile_proc: Option<FileProc<S>>,
    wfile_proc: Option<FileProc<S>>,
    client_data: usize,
    /// Whether the descriptor is currently registered with the poller.
    registered: bool,
}

impl<S> Clone for FileEvent<S> {
    fn clone(&self) -> Self {
        FileEvent {
            mask: self.mask,
            rfile_proc: self.rfile_proc,
            wfile_proc: self.wfile_proc,
            client_data: self.client_data,
            registered: self.registered,
        }
    }
}

impl<S> FileEvent<S> {
    fn empty() -> Self {
        FileEvent {
            mask: NONE,
            rfile_proc: None,
            wfile_proc: None,
            client_data: 0,
            registered: false,
        }
    }
}

struct TimeEvent<S> {
    id: u64,
    when: Instant,
    proc_: TimeProc<S>,
    deleted: bool,
}

/// The event loop state, as `aeEventLoop`.
pub struct EventLoop<S> {
    poll: Poll,
    events: Events,
    /// Indexed by fd; the capacity is the `setsize` given at creation.
    file_events: Vec<FileEvent<S>>,
    setsize: usize,
    time_events: Vec<TimeEvent<S>>,
    time_event_next_id: u64,
    /// Descriptors whose handlers asked to run again without a new readiness edge.
    pending: BTreeSet<(RawFd, u32)>,
    /// The descriptors to fire: (fd, readable, writable, read_closed). One queue shared
    /// by re-entrant calls (see [`EventLoop::process_events`]): entries before
    /// `ready_pos` have fired.
    ready: Vec<(RawFd, bool, bool, bool)>,
    ready_pos: usize,
    /// How many `process_events` calls are running (more than one when a handler
    /// re-entered the loop).
    depth: u32,
    stop: bool,
    before_sleep: Option<SleepProc<S>>,
    after_sleep: Option<SleepProc<S>>,
}

impl<S> EventLoop<S> {
    /// Creates a loop able to watch descriptors `0..setsize`.
    pub fn new(setsize: usize) -> io::Result<Self> {
        Ok(EventLoop {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            file_events: Vec::new(),
            setsize,
            time_events: Vec::new(),
            time_event_next_id: 0,
            pending: BTreeSet::new(),
            ready: Vec::new(),
            ready_pos: 0,
            depth: 0,
            stop: false,
            before_sleep: None,
            after_sleep: None,
        })
    }

    pub fn setsize(&self) -> usize {
        self.setsize
    }

    /// Grows the descriptor table limit, as `aeResizeSetSize`.
    pub fn resize_setsize(&mut self, setsize: usize) {
        self.setsize = setsize;
    }

    pub fn stop(&mut self) {
        self.stop = true;
    }

    pub fn set_before_sleep_proc(&mut self, p: Option<SleepProc<S>>) {
        self.before_sleep = p;
    }

    pub fn set_after_sleep_proc(&mut self, p: Option<SleepProc<S>>) {
        self.after_sleep = p;
    }

    fn slot(&mut self, fd: RawFd) -> &mut FileEvent<S> {
        let i = fd as usize;
        if self.file_events.len() <= i {
            self.file_events.resize(i + 1, FileEvent::empty());
        }
        &mut self.file_events[i]
    }

    fn interest(mask: u32) -> Option<Interest> {
        match (mask & READABLE != 0, mask & WRITABLE != 0) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        }
    }

    fn sync_registration(&mut self, fd: RawFd) -> io::Result<()> {
        let (mask, registered) = {
            let fe = self.slot(fd);
            (fe.mask, fe.registered)
        };
        let registry = self.poll.registry();
        match (Self::interest(mask), registered) {
            (Some(i), false) => {
                registry.register(&mut SourceFd(&fd), Token(fd as usize), i)?;
                self.file_events[fd as usize].registered = true;
            }
            (Some(i), true) => {
                registry.reregister(&mut SourceFd(&fd), Token(fd as usize), i)?;
            }
            (None, true) => {
                // The descriptor may already be closed; deregistration errors are harmless.
                let _ = registry.deregister(&mut SourceFd(&fd));
                self.file_events[fd as usize].registered = false;
            }
            (None, false) => {}
        }
        Ok(())
    }

    /// Registers `proc_` for the events in `mask` on `fd`, as `aeCreateFileEvent`.
    pub fn create_file_event(
        &mut self,
        fd: RawFd,
        mask: u32,
        proc_: FileProc<S>,
        client_data: usize,
    ) -> io::Result<()> {
        if fd < 0 || fd as usize >= self.setsize {
            return Err(io::Error::from_raw_os_error(libc_erange()));
        }
        let fe = self.slot(fd);
        let old = fe.mask;
        fe.mask |= mask;
        if mask & READABLE != 0 {
            fe.rfile_proc = Some(proc_);
        }
        if mask & WRITABLE != 0 {
            fe.wfile_proc = Some(proc_);
        }
        fe.client_data = client_data;
        let want_readable_bits = (old ^ fe.mask) & (READABLE | WRITABLE);
        if want_readable_bits != 0 {
            self.sync_registration(fd)?;
        }
        Ok(())
    }

    /// Removes the events in `mask` from `fd`, as `aeDeleteFileEvent`.
    pub fn delete_file_event(&mut self, fd: RawFd, mask: u32) {
        if fd < 0 || fd as usize >= self.file_events.len() {
            return;
        }
        let fe = &mut self.file_events[fd as usize];
        if fe.mask == NONE {
            return;
        }
        let mut mask = mask;
        // Removing WRITABLE always removes the BARRIER too.
        if mask & WRITABLE != 0 {
            mask |= BARRIER;
        }
        let old = fe.mask;
        fe.mask &= !mask;
        if (old ^ fe.mask) & (READABLE | WRITABLE) != 0 {
            let _ = self.sync_registration(fd);
        }
        if mask & READABLE != 0 {
            self.pending.remove(&(fd, READABLE));
        }
        if mask & WRITABLE != 0 {
            self.pending.remove(&(fd, WRITABLE));
        }
    }

    /// The mask currently registered for `fd`.
    pub fn get_file_events(&self, fd: RawFd) -> u32 {
        self.file_events
            .get(fd as usize)
            .map(|f| f.mask)
            .unwrap_or(NONE)
    }

    /// Asks for the handler of `mask` on `fd` to run again in the next turn even though no
    /// new readiness edge arrives (used when a handler stopped early for fairness).
    pub fn set_pending(&mut self, fd: RawFd, mask: u32) {
        self.pending.insert((fd, mask));
    }

    /// Schedules `proc_` to run in `milliseconds`, as `aeCreateTimeEvent`; returns its id.
    pub fn create_time_event(&mut self, milliseconds: u64, proc_: TimeProc<S>) -> u64 {
        let id = self.time_event_next_id;
        self.time_event_next_id += 1;
        self.time_events.push(TimeEvent {
            id,
            when: Instant::now() + Duration::from_millis(milliseconds),
            proc_,
            deleted: false,
        });
        id
    }

    /// Deletes a time event; it will never fire after this returns.
    pub fn delete_time_event(&mut self, id: u64) -> bool {
        for te in self.time_events.iter_mut() {
            if te.id == id && !te.deleted {
                te.deleted = true;
                return true;
            }
        }
        false
    }

    fn nearest_timer(&self) -> Option<Instant> {
        self.time_events
            .iter()
            .filter(|t| !t.deleted)
            .map(|t| t.when)
            .min()
    }

    fn process_time_events(&mut self, state: &mut S) -> usize {
        let now = Instant::now();
        // Take a snapshot of the due ids: events created by handlers in this turn wait for
        // the next one, as upstream (maxId).
        let mut due: Vec<(Instant, u64)> = self
            .time_events
            .iter()
            .filter(|t| !t.deleted && t.when <= now)
            .map(|t| (t.when, t.id))
            .collect();
        due.sort();
        due.truncate(TIME_EVENTS_PER_TURN_MAX);
        let mut processed = 0;
        for (_, id) in due {
            let Some(pos) = self
                .time_events
                .iter()
                .position(|t| t.id == id && !t.deleted)
            else {
                continue;
            };
            let proc_ = self.time_events[pos].proc_;
            let ret = proc_(self, state, id);
            processed += 1;
            if let Some(te) = self.time_events.iter_mut().find(|t| t.id == id) {
                if ret == NOMORE {
                    te.deleted = true;
                } else if !te.deleted {
                    te.when = Instant::now() + Duration::from_millis(ret.max(0) as u64);
                }
            }
        }
        self.time_events.retain(|t| !t.deleted);
        processed
    }

    fn fire(&mut self, state: &mut S, fd: RawFd, readable: bool, writable: bool, closed: bool) {
        let rmask = if closed {
            READABLE | READ_CLOSED
        } else {
            READABLE
        };
        let Some(fe) = self.file_events.get(fd as usize) else {
            return;
        };
        // With BARRIER the writable handler runs first (ae.c's "invert").
        let invert = fe.mask & BARRIER != 0;
        let mut fired_read: Option<usize> = None;
        if !invert && readable && fe.mask & READABLE != 0 {
            if let Some(p) = fe.rfile_proc {
                p(self, state, fd, fe.client_data, rmask);
                fired_read = Some(p as usize);
            }
        }
        // Each handler may have deleted or changed the event: reload it every time.
        if writable {
            if let Some(fe) = self.file_events.get(fd as usize) {
                if fe.mask & WRITABLE != 0 {
                    if let Some(p) = fe.wfile_proc {
                        // Do not call one handler twice for the same turn.
                        if fired_read != Some(p as usize) {
                            p(self, state, fd, fe.client_data, WRITABLE);
                        }
                    }
                }
            }
        }
        if invert && readable {
            if let Some(fe) = self.file_events.get(fd as usize) {
                if fe.mask & READABLE != 0 {
                    if let Some(p) = fe.rfile_proc {
                        p(self, state, fd, fe.client_data, rmask);
                    }
                }
            }
        }
    }

    /// Processes due time events and ready file events once, as `aeProcessEvents`.
    /// Returns the number of events processed.
    ///
    /// # Re-entrance
    /// A handler may call `process_events` again on the same loop (the server does so to
    /// serve clients while a long command or a load runs: `src/busy.rs`, upstream's
    /// `processEventsWhileBlocked`), with the `&mut EventLoop` it was given. The inner
    /// call:
    /// - first fires what the outer turn collected and has not fired yet (the fired
    ///   descriptors go through one queue, `ready`, with a cursor both calls advance),
    ///   so a descriptor that became ready in the same poll as the running handler's is
    ///   not left waiting for the outer turn: its edge will not come again;
    /// - then polls with its own flags (usually `DONT_WAIT`) and fires what it finds;
    /// - leaves the outer turn nothing to fire but what it did not reach.
    ///
    /// The poll buffer is copied into the queue before any handler runs, so no borrow of
    /// it is outstanding across a handler. Handlers must tolerate a readiness that is no
    /// longer true by the time they run (they read until `WouldBlock` anyway).
    pub fn process_events(&mut self, state: &mut S, flags: u32) -> usize {
        let mut processed = 0;
        if flags & (FILE_EVENTS | TIME_EVENTS) == 0 {
            return 0;
        }
        self.depth += 1;
        let unfired = self.ready.len() > self.ready_pos;
        let timeout = if flags & DONT_WAIT != 0 || !self.pending.is_empty() || unfired {
            Some(Duration::ZERO)
        } else if flags & TIME_EVENTS != 0 {
            self.nearest_timer()
                .map(|when| when.saturating_duration_since(Instant::now()))
        } else {
            None
        };
        if flags & CALL_BEFORE_SLEEP != 0 {
            if let Some(p) = self.before_sleep {
                p(self, state);
            }
        }
        // The before-sleep hook may have scheduled pending work: do not block then.
        let timeout = if !self.pending.is_empty() {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        // An interrupted or failed poll is treated as a turn with no file events; the
        // time events still run and the next turn polls again.
        if self.poll.poll(&mut self.events, timeout).is_err() {
            self.events.clear();
        }
        if flags & CALL_AFTER_SLEEP != 0 {
            if let Some(p) = self.after_sleep {
                p(self, state);
            }
        }
        if flags & FILE_EVENTS != 0 {
            let pending = std::mem::take(&mut self.pending);
            let first_new = self.ready_pos;
            for ev in self.events.iter() {
                let fd = ev.token().0 as RawFd;
                let closed = ev.is_read_closed() || ev.is_error();
                let r = ev.is_readable() || closed;
                let w = ev.is_writable() || ev.is_write_closed();
                self.ready.push((fd, r, w, closed));
            }
            for (fd, m) in pending {
                match self.ready[first_new..]
                    .iter_mut()
                    .find(|(f, _, _, _)| *f == fd)
                {
                    Some(e) => {
                        e.1 |= m == READABLE;
                        e.2 |= m == WRITABLE;
                    }
                    None => self.ready.push((fd, m == READABLE, m == WRITABLE, false)),
                }
            }
            // The cursor is shared with re-entrant calls: read it again after each fire.
            while self.ready_pos < self.ready.len() {
                let (fd, r, w, closed) = self.ready[self.ready_pos];
                self.ready_pos += 1;
                self.fire(state, fd, r, w, closed);
                processed += 1;
            }
        }
        self.events.clear();
        if self.depth == 1 {
            // Reuse the list across turns: no allocation per loop turn.
            self.ready.clear();
            self.ready_pos = 0;
        }
        if flags & TIME_EVENTS != 0 {
            processed += self.process_time_events(state);
        }
        self.depth -= 1;
        processed
    }

    /// Whether a `process_events` call is running (a handler is on the stack).
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// Runs until [`EventLoop::stop`] is called, as `aeMain`.
    pub fn main(&mut self, state: &mut S) {
        self.stop = false;
        while !self.stop {
            self.process_events(state, ALL_EVENTS | CALL_BEFORE_SLEEP | CALL_AFTER_SLEEP);
        }
    }
}

fn libc_erange() -> i32 {
    34 // ERANGE, as aeCreateFileEvent upstream.
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::io::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[derive(Default)]
    struct State {
        log: Vec<String>,
        count: u32,
    }

    fn t_a(_: &mut EventLoop<State>, s: &mut State, _: u64) -> i64 {
        s.log.push("a".into());
        NOMORE
    }
    fn t_b(_: &mut EventLoop<State>, s: &mut State, _: u64) -> i64 {
        s.log.push("b".into());
        NOMORE
    }
    fn t_repeat(el: &mut EventLoop<State>, s: &mut State, _: u64) -> i64 {
        s.count += 1;
        if s.count == 3 {
            el.stop();
            NOMORE
        } else {
            1
        }
    }

    #[test]
    fn timers_fire_in_due_order() {
        let mut el = EventLoop::new(1024).unwrap();
        let mut s = State::default();
        el.create_time_event(20, t_b);
        el.create_time_event(5, t_a);
        el.create_time_event(40, t_repeat);
        el.main(&mut s);
        assert_eq!(s.log, vec!["a", "b"]);
        assert_eq!(s.count, 3);
    }

    #[test]
    fn deleted_time_event_never_fires() {
        let mut el = EventLoop::new(1024).unwrap();
        let mut s = State::default();
        let id = el.create_time_event(1, t_a);
        el.create_time_event(10, t_repeat);
        assert!(el.delete_time_event(id));
        assert!(!el.delete_time_event(id));
        el.main(&mut s);
        assert!(s.log.is_empty());
    }

    fn on_read(el: &mut EventLoop<State>, s: &mut State, _fd: RawFd, _: usize, _: u32) {
        s.log.push("r".into());
        el.stop();
    }
    fn on_write(el: &mut EventLoop<State>, s: &mut State, fd: RawFd, _: usize, _: u32) {
        s.log.push("w".into());
        el.delete_file_event(fd, WRITABLE);
        el.stop();
    }

    fn pair() -> (UnixStream, UnixStream) {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.write_all(b"x").unwrap();
        (a, b)
    }

    #[test]
    fn readable_runs_before_writable() {
        let (a, _b) = pair();
        let mut el = EventLoop::new(1024).unwrap();
        let mut s = State::default();
        el.create_file_event(a.as_raw_fd(), READABLE, on_read, 0)
            .unwrap();
        el.create_file_event(a.as_raw_fd(), WRITABLE, on_write, 0)
            .unwrap();
        el.process_events(&mut s, FILE_EVENTS);
        assert_eq!(s.log, vec!["r", "w"]);
    }

    #[test]
    fn barrier_inverts_order() {
        let (a, _b) = pair();
        let mut el = EventLoop::new(1024).unwrap();
        let mut s = State::default();
        el.create_file_event(a.as_raw_fd(), READABLE, on_read, 0)
            .unwrap();
        el.create_file_event(a.as_raw_fd(), WRITABLE | BARRIER, on_write, 0)
            .unwrap();
        el.process_events(&mut s, FILE_EVENTS);
        assert_eq!(s.log, vec!["w", "r"]);
    }

    #[test]
    fn deleted_file_event_does_not_fire() {
        let (mut a, _b) = pair();
        let mut el = EventLoop::new(1024).unwrap();
        let mut s = State::default();
        el.create_file_event(a.as_raw_fd(), READABLE, on_read, 0)
            .unwrap();
        el.delete_file_event(a.as_raw_fd(), READABLE);
        assert_eq!(el.get_file_events(a.as_raw_fd()), NONE);
        el.process_events(&mut s, FILE_EVENTS | DONT_WAIT);
        assert!(s.log.is_empty());
        let mut buf = [0u8; 1];
        assert_eq!(a.read(&mut buf).unwrap(), 1);
    }

    fn on_read_reenter(el: &mut EventLoop<State>, s: &mut State, _fd: RawFd, d: usize, _: u32) {
        s.log.push(format!("r{}", d));
        if s.count == 0 {
            s.count = 1;
            // Re-enter from inside a handler, as the server does while blocked.
            el.process_events(s, FILE_EVENTS | DONT_WAIT);
            s.log.push("back".into());
        }
    }

    #[test]
    fn reentrant_call_fires_what_the_outer_turn_collected_once() {
        let (a1, _b1) = pair();
        let (a2, _b2) = pair();
        let mut el = EventLoop::new(1024).unwrap();
        let mut s = State::default();
        el.create_file_event(a1.as_raw_fd(), READABLE, on_read_reenter, 1)
            .unwrap();
        el.create_file_event(a2.as_raw_fd(), READABLE, on_read_reenter, 2)
            .unwrap();
        // Both are readable in the same poll: the first handler re-enters, the inner
        // call fires the second, and the outer turn fires nothing twice.
        let n = el.process_events(&mut s, FILE_EVENTS | DONT_WAIT);
        assert_eq!(s.log.len(), 3, "{:?}", s.log);
        assert_eq!(s.log[2], "back");
        let mut fired = vec![s.log[0].clone(), s.log[1].clone()];
        fired.sort();
        assert_eq!(fired, vec!["r1", "r2"]);
        assert_eq!(n, 1);
        assert_eq!(el.depth(), 0);
        // Nothing is left queued for the next turn.
        s.log.clear();
        el.process_events(&mut s, FILE_EVENTS | DONT_WAIT);
        assert!(s.log.is_empty(), "{:?}", s.log);
    }

    #[test]
    fn fd_beyond_setsize_is_refused() {
        let (a, _b) = pair();
        let mut el: EventLoop<State> = EventLoop::new(1).unwrap();
        assert!(el
            .create_file_event(a.as_raw_fd(), READABLE, on_read, 0)
            .is_err());
    }
}
