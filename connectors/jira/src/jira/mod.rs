//! The Jira side of the connector: HTTP ([`client`]), the REST operations the
//! tools need ([`api`]), Jira JSON to tool messages ([`model`]), key syntax
//! ([`keys`]), the project restriction ([`scope`]) and the JQL lexer it relies
//! on ([`jql`]).

pub mod api;
pub mod client;
pub mod jql;
pub mod keys;
pub mod model;
pub mod scope;
