//! Integration tests of the database connector: the service in-process on an
//! ephemeral port, called with the generated gRPC client, against the real
//! PostgreSQL, MariaDB and Redis on this machine and SQLite files; the MCP
//! resources and prompts the connector serves beside its tools.

mod caching;
mod demo;
mod differential;
mod health;
mod limits;
mod mcp;
mod privileges;
mod safety;
mod support;
mod tools;
