//! What the `esox` command does besides running the controller, as library code the binary
//! and the tests share.

pub mod eso;
pub mod plugin;
