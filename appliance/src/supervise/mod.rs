//! `up`'s supervisor and what `status` (and `doctor`) read back from it.
//!
//! [`run`] holds the appliance root's single-instance lock ([`running_up`] finds the
//! holder), starts Postgres (embedded, or checks the external server), the provider
//! mirror and `coder server`, restarts whichever dies with backoff, renews the TLS
//! certificates before they expire, reloads when the caller asks (`up` on SIGHUP) and stops
//! everything in reverse order when the caller asks (`up` on SIGTERM or SIGINT). Its
//! progress goes to stderr one line at a time (the journal, under systemd) and to the
//! state file ([`state::State`]); coderd's own output is inherited.

mod backoff;
pub mod certificates;
mod children;
mod coderd;
mod database;
mod error;
pub mod health;
mod lock;
mod mirror;
pub mod posture;
mod process;
mod renew;
mod settings;
mod slot;
pub mod state;
mod supervisor;
#[cfg(test)]
mod tests;

pub use lock::running_up;
pub use process::ProcessId;
pub use renew::prepare_as_root;
pub use supervisor::run;

/// One progress line of `up` on stderr (shown at every verbosity, since it is what an
/// operator reads in the journal).
pub fn say(line: &str) {
    eprintln!("coder-airgap up: {line}");
}
