//! stream commands (issue 4; being written).

use super::CommandDef;

pub static COMMANDS: &[CommandDef] = &[];
