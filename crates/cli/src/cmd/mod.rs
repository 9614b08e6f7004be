//! One module per subcommand.

pub mod devnet;
pub mod earnings;
pub mod indexer;
pub mod job;
pub mod node;
