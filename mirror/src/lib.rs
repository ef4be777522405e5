//! The Terraform provider mirror: registry-protocol sync, mirror layout and hashes, and the
//! network-mirror HTTPS server.
