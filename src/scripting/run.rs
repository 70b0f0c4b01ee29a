//! See [`crate::scripting`] for the layout. (Not built yet.)
