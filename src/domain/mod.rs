//! Domain rules as plain types and functions, testable without a database: values are parsed
//! once at the boundary and are valid from then on.

pub mod a2a;
pub mod approvals;
pub mod events;
pub mod hierarchy;
pub mod ids;
pub mod layout;
pub mod people;
pub mod status;
pub mod validation;
pub mod versions;
