//! PNG output (todo)
