//! The test kit's own tests: the stand-in coder behaves like Coder on the surface we use.

mod standin;
mod standin_vars;
