//! `coder-airgap inspect`: what a bundle holds.

use crate::out::outln;
use std::path::PathBuf;

use airgap_bundle::escape::{json_for_terminal, Escaped};
use anyhow::Context;
use time::format_description::well_known::Rfc3339;

/// Show a bundle's name, version, sequence, expiry, components and files.
///
/// Without --pubkey only the manifest is read and nothing is verified: the output is
/// labelled UNVERIFIED and every string from the bundle is shown with control characters
/// escaped. With --pubkey the whole bundle is verified first.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle file.
    #[arg(value_name = "BUNDLE.tar.gz")]
    bundle: PathBuf,
    /// Verify with this public key before showing anything.
    #[arg(long, value_name = "PUBFILE")]
    pubkey: Option<PathBuf>,
    /// Print JSON (the manifest plus summary fields) instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `coder-airgap inspect`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (manifest, verified_by) = match &args.pubkey {
        Some(pubkey) => {
            let key = airgap_bundle::PublicKey::from_file(pubkey)?;
            let v = airgap_bundle::verify(&args.bundle, &key, &Default::default(), &())
                .with_context(|| format!("verifying {}", args.bundle.display()))?;
            (v.manifest, Some(v.key_id.to_string()))
        }
        None => (
            airgap_bundle::read_manifest_unverified(&args.bundle)
                .with_context(|| format!("reading {}", args.bundle.display()))?,
            None,
        ),
    };
    let bundle_bytes = std::fs::metadata(&args.bundle)
        .map(|m| m.len())
        .unwrap_or(0);
    if args.json {
        let value = serde_json::json!({
            "bundle": args.bundle,
            "bundle_bytes": bundle_bytes,
            "verified": verified_by.is_some(),
            "verified_by_key": verified_by,
            "file_count": manifest.files.len(),
            "total_bytes": manifest.total_bytes(),
            "manifest": manifest,
        });
        let text = serde_json::to_string_pretty(&value)?;
        outln!("{}", json_for_terminal(&text))?;
        return Ok(());
    }
    print_text(&manifest, bundle_bytes, verified_by.as_deref())
}

/// Prints the summary; every string from the manifest goes through [`Escaped`], since
/// without --pubkey nothing vouches for it.
fn print_text(
    m: &airgap_bundle::Manifest,
    bundle_bytes: u64,
    verified_by: Option<&str>,
) -> anyhow::Result<()> {
    let date = |t: time::OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    if verified_by.is_none() {
        outln!("UNVERIFIED: no --pubkey given; everything below is what the bundle claims")?;
    }
    outln!("name        {}", Escaped(&m.name))?;
    outln!("version     {}", Escaped(&m.version))?;
    outln!("sequence    {}", m.sequence)?;
    outln!("platform    {}", Escaped(&m.platform))?;
    outln!("created     {}", date(m.created))?;
    outln!("expires     {}", date(m.expires))?;
    outln!(
        "files       {} ({} bytes unpacked, {} bytes packed)",
        m.files.len(),
        m.total_bytes(),
        bundle_bytes
    )?;
    match verified_by {
        Some(key) => outln!("signature   verified, key {key}")?,
        None => outln!("signature   NOT CHECKED (pass --pubkey to verify)")?,
    }
    if m.components.is_empty() {
        outln!("components  (none recorded)")?;
    }
    let sizes = FileSizes::new(m);
    for (name, c) in &m.components {
        outln!(
            "component   {} {} ({} paths, {} bytes)",
            Escaped(name),
            Escaped(&c.version),
            c.paths.len(),
            sizes.under(&c.paths)
        )?;
    }
    Ok(())
}

/// The manifest's files sorted by path with running size totals, so the bytes under any
/// set of paths take a binary search per path: linear-logarithmic in files and paths,
/// however many components a (hostile) manifest lists.
struct FileSizes<'m> {
    paths: Vec<&'m str>,
    /// `totals[i]` is the size of `paths[..i]` (saturating).
    totals: Vec<u64>,
}

impl<'m> FileSizes<'m> {
    fn new(m: &'m airgap_bundle::Manifest) -> Self {
        let mut files: Vec<(&str, u64)> =
            m.files.iter().map(|f| (f.path.as_str(), f.size)).collect();
        files.sort_unstable();
        let mut totals = Vec::with_capacity(files.len() + 1);
        totals.push(0u64);
        for (_, size) in &files {
            let last = totals.last().copied().unwrap_or(0);
            totals.push(last.saturating_add(*size));
        }
        FileSizes {
            paths: files.into_iter().map(|(p, _)| p).collect(),
            totals,
        }
    }

    /// Bytes of the files that are one of `roots` or below one, each file counted once.
    fn under(&self, roots: &[String]) -> u64 {
        // Each root covers the sorted range [root, root + "/" ..= root + "/\u{10ffff}"]:
        // the file itself, then everything starting with "root/". Overlapping ranges
        // (a root inside another) are merged before summing.
        let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(roots.len() * 2);
        for root in roots {
            let exact = self.paths.partition_point(|p| *p < root.as_str());
            if self.paths.get(exact) == Some(&root.as_str()) {
                ranges.push((exact, exact + 1));
            }
            let prefix = format!("{root}/");
            let start = self.paths.partition_point(|p| *p < prefix.as_str());
            let end = start + self.paths[start..].partition_point(|p| p.starts_with(&prefix));
            ranges.push((start, end));
        }
        ranges.sort_unstable();
        let mut sum = 0u64;
        let mut covered = 0usize;
        for (start, end) in ranges {
            let start = start.max(covered);
            if end > start {
                sum = sum.saturating_add(self.totals[end] - self.totals[start]);
                covered = end;
            }
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(files: &[(&str, u64)]) -> airgap_bundle::Manifest {
        let json = serde_json::json!({
            "format": 1, "name": "n", "version": "1", "sequence": 1,
            "created": "2026-01-01T00:00:00Z", "expires": "2027-01-01T00:00:00Z",
            "platform": "linux_amd64", "components": {}, "directories": [],
            "files": files.iter().map(|(p, s)| serde_json::json!({
                "path": p, "size": s, "sha256": "0".repeat(64), "mode": 0o644
            })).collect::<Vec<_>>(),
        });
        serde_json::from_value(json).expect("manifest")
    }

    #[test]
    fn sizes_under_paths_count_each_file_once() {
        let m = manifest(&[
            ("bin/coder", 1),
            ("bin/terraform", 2),
            ("postgres/bin/pg_ctl", 4),
            ("postgres/lib/x.so", 8),
            ("postgresql/y", 16),
        ]);
        let sizes = FileSizes::new(&m);
        let roots = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(sizes.under(&roots(&["bin/coder"])), 1);
        assert_eq!(sizes.under(&roots(&["bin"])), 3);
        assert_eq!(sizes.under(&roots(&["postgres"])), 12);
        assert_eq!(
            sizes.under(&roots(&["postgres", "postgres/bin", "postgres"])),
            12
        );
        assert_eq!(sizes.under(&roots(&["nothing", "bin/terraform"])), 2);
    }
}
