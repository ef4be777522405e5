//! The network flags of every command that downloads (`sync`, `mirror sync`): one
//! declaration, flattened into each, and one conversion to the mirror crate's
//! [`FetchOptions`]. Defaults come from [`FetchOptions::default`], so `--help` shows
//! what an unset flag means.

use std::path::PathBuf;
use std::time::Duration;

use airgap_mirror::fetch::FetchOptions;

/// Transfer tuning and trust, shared by the commands that download.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Network options")]
pub struct FetchArgs {
    /// Extra PEM CA certificates to trust (internal CA, TLS-inspecting proxy,
    /// Artifactory).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Parallel transfers (metadata requests and downloads in flight at once).
    #[arg(long, value_name = "N", default_value_t = FetchOptions::default().concurrency)]
    pub concurrency: usize,
    /// Extra attempts after a retryable failure (5xx, 408, 429, connection or body
    /// errors), with exponential backoff.
    #[arg(long, value_name = "N", default_value_t = FetchOptions::default().retries)]
    pub retries: u32,
    /// Seconds of silence allowed while reading a response before the transfer is
    /// abandoned (and retried).
    #[arg(long, value_name = "SECONDS", default_value_t = secs(FetchOptions::default().read_timeout))]
    pub read_timeout: u64,
    /// Seconds allowed to connect (TCP and TLS).
    #[arg(long, value_name = "SECONDS", default_value_t = secs(FetchOptions::default().connect_timeout))]
    pub connect_timeout: u64,
    /// Seconds one transfer may take in all, request to last byte.
    #[arg(long, value_name = "SECONDS", default_value_t = secs(FetchOptions::default().deadline))]
    pub deadline: u64,
    /// Fail a transfer when fewer than this many KiB arrive in one --rate-window (a
    /// server dripping bytes never trips the read timeout).
    #[arg(long, value_name = "KIB", default_value_t = FetchOptions::default().min_rate_bytes / 1024)]
    pub min_rate_kib: u64,
    /// Seconds of the minimum-rate window.
    #[arg(long, value_name = "SECONDS", default_value_t = secs(FetchOptions::default().min_rate_window))]
    pub rate_window: u64,
}

/// Whole seconds of a default, for `--help`.
fn secs(d: Duration) -> u64 {
    d.as_secs()
}

/// At least one second: zero would make every transfer fail at once.
fn at_least_a_second(secs: u64) -> Duration {
    Duration::from_secs(secs.max(1))
}

impl FetchArgs {
    /// The fetch options these flags ask for; what they do not cover keeps its default.
    pub fn options(&self) -> FetchOptions {
        FetchOptions {
            concurrency: self.concurrency.max(1),
            retries: self.retries,
            read_timeout: at_least_a_second(self.read_timeout),
            connect_timeout: at_least_a_second(self.connect_timeout),
            deadline: at_least_a_second(self.deadline),
            min_rate_bytes: self.min_rate_kib.saturating_mul(1024),
            min_rate_window: at_least_a_second(self.rate_window),
            extra_ca_file: self.ca_file.clone(),
            ..FetchOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        fetch: FetchArgs,
    }

    fn parse(args: &[&str]) -> FetchOptions {
        let cli = Cli::try_parse_from(std::iter::once("test").chain(args.iter().copied()))
            .expect("flags parse");
        cli.fetch.options()
    }

    #[test]
    fn no_flags_give_the_fetch_defaults() {
        let got = parse(&[]);
        let want = FetchOptions::default();
        assert_eq!(got.concurrency, want.concurrency);
        assert_eq!(got.retries, want.retries);
        assert_eq!(got.read_timeout, want.read_timeout);
        assert_eq!(got.connect_timeout, want.connect_timeout);
        assert_eq!(got.deadline, want.deadline);
        assert_eq!(got.min_rate_bytes, want.min_rate_bytes);
        assert_eq!(got.min_rate_window, want.min_rate_window);
        assert_eq!(got.extra_ca_file, None);
        assert_eq!(
            (want.concurrency, want.retries),
            (8, 4),
            "documented defaults"
        );
    }

    #[test]
    fn every_flag_reaches_its_option() {
        let got = parse(&[
            "--ca-file",
            "/etc/ca.pem",
            "--concurrency",
            "3",
            "--retries",
            "1",
            "--read-timeout",
            "7",
            "--connect-timeout",
            "5",
            "--deadline",
            "90",
            "--min-rate-kib",
            "2",
            "--rate-window",
            "4",
        ]);
        assert_eq!(got.extra_ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!((got.concurrency, got.retries), (3, 1));
        assert_eq!(got.read_timeout, Duration::from_secs(7));
        assert_eq!(got.connect_timeout, Duration::from_secs(5));
        assert_eq!(got.deadline, Duration::from_secs(90));
        assert_eq!(got.min_rate_bytes, 2048);
        assert_eq!(got.min_rate_window, Duration::from_secs(4));
    }

    #[test]
    fn zeros_are_raised_to_the_smallest_working_value() {
        let got = parse(&[
            "--concurrency",
            "0",
            "--read-timeout",
            "0",
            "--deadline",
            "0",
        ]);
        assert_eq!(got.concurrency, 1);
        assert_eq!(got.read_timeout, Duration::from_secs(1));
        assert_eq!(got.deadline, Duration::from_secs(1));
    }
}
