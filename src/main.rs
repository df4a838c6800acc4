//! The `kpromo` binary: everything lives in the library so tests and benches can reach it.
fn main() -> std::process::ExitCode {
    kpromo::cli::main()
}
