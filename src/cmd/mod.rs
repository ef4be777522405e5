//! One module per subcommand: its clap arguments (`Args` or `Command`) and its `run`.

pub mod ca;
pub mod inspect;
pub mod keygen;
mod keys;
pub mod mirror;
pub mod pack;
pub mod unpack;
pub mod verify;
