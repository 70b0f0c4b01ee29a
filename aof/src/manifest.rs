//! The manifest (`<appendfilename>.manifest` in `appenddirname`): one line per file,
//! `file <name> seq <n> type <b|h|i>`, as upstream's aofLoadManifestFromFile /
//! getAofManifestAsString.

/// The role of a file in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// `b`: the base (an RDB preamble or an AOF).
    Base,
    /// `h`: history, to be deleted once a rewrite has replaced it.
    History,
    /// `i`: incremental AOF, replayed after the base in order.
    Incr,
}

/// One file of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofInfo {
    pub name: String,
    pub seq: u64,
    pub typ: FileType,
}

/// A parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    pub base: Option<AofInfo>,
    pub incrs: Vec<AofInfo>,
    pub history: Vec<AofInfo>,
    /// Highest sequence numbers in use (the next files take +1).
    pub curr_base_seq: u64,
    pub curr_incr_seq: u64,
}

impl Manifest {
    /// Parses a manifest with upstream's rules and error texts (unknown keys are
    /// ignored, a missing name/seq/type or two base files is invalid...).
    pub fn parse(text: &[u8]) -> Result<Manifest, String> {
        let _ = text;
        todo!("aof::manifest::Manifest::parse")
    }

    /// The manifest text, as upstream writes it (base, history, then incrementals).
    pub fn to_bytes(&self) -> Vec<u8> {
        todo!("aof::manifest::Manifest::to_bytes")
    }
}

/// `<appendfilename>.manifest`.
pub fn manifest_name(appendfilename: &str) -> String {
    format!("{appendfilename}.manifest")
}

/// `<appendfilename>.<seq>.base.rdb` (RDB preamble) or `.base.aof`.
pub fn base_name(appendfilename: &str, seq: u64, rdb_preamble: bool) -> String {
    let ext = if rdb_preamble { "rdb" } else { "aof" };
    format!("{appendfilename}.{seq}.base.{ext}")
}

/// `<appendfilename>.<seq>.incr.aof`.
pub fn incr_name(appendfilename: &str, seq: u64) -> String {
    format!("{appendfilename}.{seq}.incr.aof")
}
