//! The buffer end to end on real files.
