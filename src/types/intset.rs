//! Intset (placeholder).
