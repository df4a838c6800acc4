//! The promotion pipeline (work in progress).
