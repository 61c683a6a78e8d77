use std::process::ExitCode;

fn main() -> ExitCode {
    latchkey::app::main()
}
