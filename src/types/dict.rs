//! Dict (placeholder).
