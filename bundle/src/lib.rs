//! The coder-airgap bundle.
