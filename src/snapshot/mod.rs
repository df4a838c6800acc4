//! Inventory snapshots and their writers (work in progress).
