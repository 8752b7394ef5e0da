//! Simulation tests: whole sessions driven through the fake system, second by
//! second, with no sleeping.

mod admin;
mod civil;
mod dry_run;
mod exits;
mod identity;
mod kill;
mod recovery;
mod revalidate;
mod summary;
mod wake;
mod witness;
