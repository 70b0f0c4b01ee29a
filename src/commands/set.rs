//! SET commands (being written for issue 3).

use super::CommandDef;

pub static COMMANDS: &[CommandDef] = &[];
