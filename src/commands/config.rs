//! CONFIG GET, SET, RESETSTAT, REWRITE, HELP: the command side of `config.rs`.

use super::CommandDef;

pub static COMMANDS: &[CommandDef] = &[];
