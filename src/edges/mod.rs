//! Promotion edges (work in progress).
