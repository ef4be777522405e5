//! placeholder: filled in by the postgres work.
