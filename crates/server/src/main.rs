//! `leadgen`: parses the command line and hands over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    leadgen::run(leadgen::cli::Cli::parse()).await
}
