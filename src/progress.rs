//! Progress bars shared by long-running subcommands. Hidden when stderr is not a terminal,
//! so logs and CI output stay clean.

use indicatif::{ProgressBar, ProgressStyle};

/// A byte-count progress bar for work over `total` bytes, labelled `what`.
pub fn bytes(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}
