//! See the module docs in the parent (work in progress).
