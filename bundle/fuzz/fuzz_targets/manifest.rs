//! Fuzzes the manifest parser and the name checks: any bytes as `manifest.json`. Parsing
//! and checking must never panic; whatever passes must round-trip through `to_bytes`, give
//! a release name that is one plain path segment, and show without raw control
//! characters.
//!
//! Run: `cd bundle/fuzz && cargo +nightly fuzz run manifest corpus/manifest seeds/manifest -- -max_total_time=600`
#![no_main]

use airgap_bundle::escape::{needs_escape, Escaped};
use airgap_bundle::manifest::Manifest;
use airgap_bundle::names;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = Manifest::from_bytes(data) else {
        return;
    };
    let _ = manifest.total_bytes();
    let shown = Escaped(&manifest.version).to_string();
    assert!(!shown.chars().any(|c| c != '\\' && needs_escape(c)));
    let bytes = manifest.to_bytes().expect("a parsed manifest serialises");
    let again = Manifest::from_bytes(&bytes).expect("a serialised manifest parses");
    assert_eq!(again, manifest, "round trip changed the manifest");
    if let Ok(name) = names::release_name(&manifest) {
        assert!(!name.contains('/') && name != "." && name != "..");
        assert!(!name.starts_with('.'));
        assert!(name.len() <= 2 * names::MAX_NAME_BYTES);
        names::check_name("release name", &name).expect("a release name is a name");
        for c in manifest.components.values() {
            for p in &c.paths {
                assert!(!p.starts_with('/') && !p.split('/').any(|s| s == ".." || s == "."));
            }
        }
    }
});
