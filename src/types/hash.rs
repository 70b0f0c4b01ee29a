//! The hash value type (placeholder: being written for issue 3).

use crate::object::Encoding;

/// A hash value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hash {}

impl Hash {
    /// Number of elements.
    pub fn len(&self) -> usize {
        0
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoding OBJECT ENCODING reports.
    pub fn encoding(&self) -> Encoding {
        Encoding::Listpack
    }

    /// Bytes allocated for this value's contents, as the allocator reports them
    /// (MEMORY USAGE).
    pub fn mem_usage(&self) -> usize {
        0
    }
}
