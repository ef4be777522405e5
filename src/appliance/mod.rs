//! The installed appliance as files: where everything lives under ROOT, the environment
//! coderd runs with, and the systemd unit. Shared by install, up, status and doctor.

pub mod config;
pub mod env;
pub mod layout;
pub mod posture;
pub mod release;
pub mod rootdir;
pub mod systemd;
