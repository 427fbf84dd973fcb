//! The engine: read-only refusals, pruning, the memory limit.
