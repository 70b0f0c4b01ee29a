//! DEBUG helpers (upstream's `debug.c`): the dataset digest of DEBUG DIGEST and
//! DEBUG DIGEST-VALUE.
