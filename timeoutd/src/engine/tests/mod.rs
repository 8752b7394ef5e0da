//! Simulation tests: whole sessions driven through the fake system, second by
//! second, with no sleeping.

mod admin;
mod recovery;
mod wake;
mod witness;
