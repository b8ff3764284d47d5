//! The Jira side of the connector: HTTP ([`client`]), the REST operations the
//! tools need ([`api`]), Jira JSON to tool messages ([`model`]), key syntax
//! ([`keys`]) and the project restriction ([`scope`]).

pub mod api;
pub mod client;
pub mod keys;
pub mod model;
pub mod scope;
