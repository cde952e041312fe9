//! Wire types shared by the server and the browser. Serde only, no I/O.

pub mod health;
