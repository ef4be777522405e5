//! placeholder: filled in by the sync work.
