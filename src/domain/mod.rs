//! Domain rules as plain types and functions, testable without a database: values are parsed
//! once at the boundary and are valid from then on.

#![warn(missing_docs)]

pub mod a2a;
pub mod approvals;
pub mod events;
pub mod hierarchy;
pub mod ids;
// Its owner documents it next; until then it is exempt from the lint below.
#[allow(missing_docs)]
pub mod layout;
pub mod people;
pub mod status;
pub mod validation;
pub mod versions;
