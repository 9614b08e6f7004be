//! One module per subcommand.

pub mod devnet;
