//! What administrators (and each user, for `status`) ask of the engine:
//! the control verbs, the deadlines they set, and re-validation through the
//! directory.

mod admin;
pub(super) mod deadlines;
pub(super) mod revalidate;
