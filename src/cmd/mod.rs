//! One module per subcommand: its clap arguments (`Args` or `Command`) and its `run`.

pub mod ca;
pub mod doctor;
pub mod inspect;
pub mod install;
pub mod keygen;
mod keys;
pub mod mirror;
pub mod pack;
pub mod rollback;
pub mod status;
pub mod sync;
pub mod unpack;
pub mod up;
pub mod verify;
