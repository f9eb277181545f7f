//! `loadgen compare OLD NEW` (in progress in a helper's branch: placeholder).
