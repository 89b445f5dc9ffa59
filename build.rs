//! Stamps the git revision into the binary as `FLASHMART_GIT_REVISION` (read by
//! `flashmart_build_info`). An exported `FLASHMART_GIT_REVISION` wins (container builds have no
//! `.git`); without git or a checkout the revision is `unknown`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=FLASHMART_GIT_REVISION");
    let revision = std::env::var("FLASHMART_GIT_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_owned());
    if let Some(head_log) = git(&["rev-parse", "--git-path", "logs/HEAD"]) {
        // Changes on every commit or checkout; only watched when it exists, else cargo would
        // re-run this script (and rebuild the crate) on every build.
        if std::path::Path::new(&head_log).exists() {
            println!("cargo:rerun-if-changed={head_log}");
        }
    }
    println!("cargo:rustc-env=FLASHMART_GIT_REVISION={revision}");
}

fn git_revision() -> Option<String> {
    git(&["rev-parse", "--short=12", "HEAD"])
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}
