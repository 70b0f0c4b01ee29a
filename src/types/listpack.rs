//! Listpack (placeholder).
