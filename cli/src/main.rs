//! `edgepack`: run, check and time ONNX vision models on edgepack's kernels, and package them
//! for edge devices with the packaging API's commands.

mod api;
mod model_cmd;
mod render;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// edgepack: package vision models for edge hardware.
#[derive(Parser)]
#[command(name = "edgepack", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: api::Global,
}

#[derive(Subcommand)]
enum Command {
    /// Run a model (ONNX file or plan file) once; print its outputs and the latency.
    Run(model_cmd::RunArgs),
    /// Compare a model's plan with the float64 reference (and ONNX Runtime outputs).
    Parity(model_cmd::ParityArgs),
    /// Time a model: median and minimum latency.
    Bench(model_cmd::BenchArgs),
    #[command(flatten)]
    Api(api::ApiCommand),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `--help` and `--version` print and exit 0.
        Err(e) if !e.use_stderr() => e.exit(),
        // A command line that does not parse exits 252, as the AWS CLI's usage errors do.
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(252);
        }
    };
    if !matches!(cli.command, Command::Api(_)) {
        default_sigpipe();
    }
    let result = match cli.command {
        Command::Run(a) => model_cmd::run(a),
        Command::Parity(a) => model_cmd::parity(a),
        Command::Bench(a) => model_cmd::bench(a),
        Command::Api(c) => return api::run(c, &cli.global),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edgepack: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Puts SIGPIPE back to the operating system's default for the model commands, whose reports
/// users pipe into `head` or `grep -m1`: a reader that closes the pipe then ends the process
/// quietly, as it ends `cat`, where Rust's ignored SIGPIPE turned the next line printed into a
/// "failed printing to stdout: Broken pipe" panic. The API commands keep Rust's setting: their
/// sockets must report a closed connection as an error to retry, not end the process.
fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: `signal` with a valid signal number and `SIG_DFL` only changes the disposition;
    // no handler runs Rust code. Called before the command starts any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every subcommand's options with the global ones propagated into it: clap's own checks.
    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    /// `bench`'s per-operator breakdown once shared the id `profile` with the API commands'
    /// global AWS `--profile`: `edgepack bench m.onnx --profile` panicked in clap.
    #[test]
    fn bench_breakdown_and_the_aws_profile_parse_together() {
        use clap::Parser;
        let cli = super::Cli::try_parse_from(["edgepack", "bench", "m.onnx", "--breakdown", "--top", "3"]).unwrap();
        assert!(matches!(cli.command, super::Command::Bench(_)));
        let cli = super::Cli::try_parse_from(["edgepack", "list-projects", "--profile", "edge"]).unwrap();
        assert!(matches!(cli.command, super::Command::Api(_)));
    }
}
