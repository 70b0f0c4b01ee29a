//! The script cache (upstream's `eval.c` `lctx.lua_scripts` and `scriptsLRUAdd`):
//! sha1 -> body, shebang flags and compiled function. Scripts added by SCRIPT LOAD
//! stay until SCRIPT FLUSH; scripts added by EVAL are in an LRU of at most
//! [`LRU_LIST_LENGTH`] entries, the oldest evicted first (INFO `evicted_scripts`).
//! SCRIPT LOAD of a sha an EVAL added takes it out of the LRU.

use std::collections::{BTreeMap, HashMap};

/// Upstream's LRU_LIST_LENGTH.
pub const LRU_LIST_LENGTH: usize = 500;

pub struct Script {
    pub body: Vec<u8>,
    pub func: super::LuaFn,
    /// Shebang flags ([`super::run::sflags`]), EVAL_COMPAT without a shebang.
    pub flags: u64,
    /// The script's stamp in the LRU, if it is evictable (added by EVAL).
    pub lru: Option<u64>,
}

#[derive(Default)]
pub struct ScriptCache {
    map: HashMap<[u8; 40], Script>,
    /// LRU order of the evictable scripts: stamp -> sha.
    lru: BTreeMap<u64, [u8; 40]>,
    next_stamp: u64,
    /// Bytes of bodies and shas, for used_memory_scripts_eval.
    body_bytes: usize,
    /// INFO evicted_scripts.
    pub evicted: u64,
}

/// Per-script overhead counted in used_memory_scripts_eval (dict entry, script
/// struct, LRU node), as an estimate of upstream's evalScriptsMemory.
const SCRIPT_OVERHEAD: usize = 160;

impl ScriptCache {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, sha: &[u8; 40]) -> Option<&Script> {
        self.map.get(sha)
    }

    pub fn contains(&self, sha: &[u8; 40]) -> bool {
        self.map.contains_key(sha)
    }

    /// Adds a script; `evictable` for EVAL. Returns the shas evicted to make room.
    pub fn add(
        &mut self,
        sha: [u8; 40],
        body: Vec<u8>,
        func: super::LuaFn,
        flags: u64,
        evictable: bool,
    ) {
        if let Some(s) = self.map.get_mut(&sha) {
            // SCRIPT LOAD of an EVAL script: it is not evictable any more.
            if !evictable {
                if let Some(st) = s.lru.take() {
                    self.lru.remove(&st);
                }
            }
            return;
        }
        let mut lru = None;
        if evictable {
            while self.lru.len() >= LRU_LIST_LENGTH {
                let Some((_, old)) = self.lru.pop_first() else {
                    break;
                };
                if let Some(s) = self.map.remove(&old) {
                    self.body_bytes -= s.body.len() + 40;
                }
                self.evicted += 1;
            }
            let st = self.next_stamp;
            self.next_stamp += 1;
            self.lru.insert(st, sha);
            lru = Some(st);
        }
        self.body_bytes += body.len() + 40;
        self.map.insert(
            sha,
            Script {
                body,
                func,
                flags,
                lru,
            },
        );
    }

    /// A successful run moves an evictable script to the young end of the LRU.
    pub fn touch(&mut self, sha: &[u8; 40]) {
        let Some(s) = self.map.get_mut(sha) else {
            return;
        };
        if let Some(old) = s.lru {
            let st = self.next_stamp;
            self.next_stamp += 1;
            self.lru.remove(&old);
            self.lru.insert(st, *sha);
            s.lru = Some(st);
        }
    }

    /// SCRIPT FLUSH: drops every script (the evicted count stays).
    pub fn clear(&mut self) {
        self.map.clear();
        self.lru.clear();
        self.body_bytes = 0;
    }

    /// used_memory_scripts_eval.
    pub fn memory(&self) -> usize {
        self.body_bytes + self.map.len() * SCRIPT_OVERHEAD
    }
}
