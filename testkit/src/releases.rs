//! Stand-in release sites (HashiCorp releases, Coder GitHub releases, Postgres archives).
