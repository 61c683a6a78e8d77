//! Per-organization password policy (being written).
