//! hud-analyze: read a capture, anywhere, without root.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hud_analyze::summary::Summary;
use hud_format::reader::Capture;

#[derive(Parser)]
#[command(
    name = "hud-analyze",
    version,
    about = "Analyze hud captures: what blocks the Tokio runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// What a capture holds: target, host, duration, threads, event counts, losses.
    Info {
        /// The capture file (`-` for standard input).
        capture: PathBuf,
    },
}

/// Exit codes: 0 fine, 2 usage, 3 missing or unreadable file, 4 not a capture / corrupt / newer.
fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Info { capture } => {
            match open(&capture).and_then(|c| Summary::of(&c).map_err(|e| (4, e.to_string()))) {
                Ok(summary) => {
                    print!("{}", summary.render());
                    ExitCode::SUCCESS
                }
                Err((code, message)) => {
                    eprintln!("hud-analyze: {message}");
                    ExitCode::from(code)
                }
            }
        }
    }
}

fn open(path: &std::path::Path) -> Result<Capture, (u8, String)> {
    let result = if path.as_os_str() == "-" {
        Capture::from_reader(std::io::stdin().lock())
    } else {
        Capture::open(path)
    };
    result.map_err(|e| match e {
        hud_format::Error::Io { .. } => (3, e.to_string()),
        _ => (4, e.to_string()),
    })
}
