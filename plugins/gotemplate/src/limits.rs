//! What one execution may cost. The evaluator ([`crate::exec`]) enforces all three; the
//! functions ([`crate::funcs`]) refuse arguments that would build more than [`MAX_OUTPUT`]
//! (a `repeat` count, a random string's length) before allocating it. Kept apart from both so
//! neither imports the other for a number.

/// Go stops runaway recursion at this depth; so do we, well before the Wasm stack would.
pub const MAX_DEPTH: usize = 1000;
/// A template renders into one Secret value (at most 1 MiB); stop long before memory runs out.
pub const MAX_OUTPUT: usize = 16 << 20;
/// Nodes walked and functions called per execution. The sandbox's deadline stops a runaway
/// template anyway; this stops it sooner, with an error that says what happened.
pub const MAX_STEPS: u64 = 20_000_000;
