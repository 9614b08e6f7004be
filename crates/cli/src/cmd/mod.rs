//! One module per subcommand.

pub mod devnet;
pub mod job;
pub mod node;
