//! `coder-airgap`: one signed bundle that installs and runs Coder on a network with no
//! internet. The binary composes the library crates (`airgap-bundle`, `airgap-mirror`,
//! `airgap-certs`); every subcommand lives in its own module under `cmd/`.

mod cli;
mod cmd;
mod out;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.verbose);
    match cli.command.run() {
        Ok(()) => ExitCode::SUCCESS,
        // `| head -1`: the reader has what it wanted; not a failure, and nothing to say.
        Err(err) if out::is_closed_stdout(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // One line an operator can act on: the whole context chain, outermost first.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CODER_AIRGAP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
