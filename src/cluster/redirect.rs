//! See [`crate::cluster`] for the layout. (Not built yet.)
