//! Processes by pid, read from `/proc`: is it alive (zombies are not), and is it still the
//! same process (its start time), so a pid recycled after a crash is never mistaken for
//! coderd or Postgres, and never signalled.

use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// A process as recorded in the state file: its pid and its start time (clock ticks after
/// boot, field 22 of `/proc/PID/stat`), which together name one process for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessId {
    /// The pid.
    pub pid: u32,
    /// When it started, in clock ticks after boot.
    pub start: u64,
}

impl ProcessId {
    /// The live process `pid`, with its start time.
    pub fn of(pid: u32) -> Option<ProcessId> {
        let (state, start) = stat(pid)?;
        (!matches!(state, 'Z' | 'X')).then_some(ProcessId { pid, start })
    }

    /// True while this very process (same pid, same start time) is alive.
    pub fn is_alive(&self) -> bool {
        ProcessId::of(self.pid).is_some_and(|now| now.start == self.start)
    }
}

/// True when `pid` is a live process (not a zombie).
pub fn alive(pid: u32) -> bool {
    ProcessId::of(pid).is_some()
}

/// The state letter and start time from `/proc/PID/stat`.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses `/proc/PID/stat`: the name in parentheses may hold spaces and `)`, so fields are
/// counted after the last `)`; the state is field 3 and the start time field 22.
fn parse_stat(text: &str) -> Option<(char, u64)> {
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Sends `signal` to the process group led by `leader` (coderd runs in its own group, so
/// Terraform and the other children it started get the signal too).
pub fn signal_group(leader: ProcessId, signal: Signal) {
    if !leader.is_alive() {
        return;
    }
    let Ok(pid) = i32::try_from(leader.pid) else {
        return;
    };
    if let Err(e) = killpg(Pid::from_raw(pid), signal) {
        tracing::debug!("killpg {pid} {signal}: {e}");
    }
}

/// Waits until `process` is gone, checking every 100 ms for at most `limit`; true if gone.
pub async fn wait_gone(process: ProcessId, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while process.is_alive() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

/// Stops the process group led by `leader` that is not our child (left behind by an `up`
/// that was killed): SIGTERM, then SIGKILL after `grace`.
pub async fn stop_group(leader: ProcessId, grace: Duration) {
    signal_group(leader, Signal::SIGTERM);
    if !wait_gone(leader, grace).await {
        signal_group(leader, Signal::SIGKILL);
        wait_gone(leader, Duration::from_secs(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let line = "4242 (we (ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 \
                    1 0 987654 1000 10 18446744073709551615";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessId::of(std::process::id()).expect("own /proc entry");
        assert!(me.is_alive());
        let recycled = ProcessId {
            start: me.start + 1,
            ..me
        };
        assert!(!recycled.is_alive());
    }
}
