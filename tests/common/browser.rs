//! Headless Chromium (Debian's `chromium`, installed by `.ci/run`) for browser tests,
//! driven over the DevTools protocol by `headless_chrome`.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use headless_chrome::{Browser, LaunchOptions};

/// Where Debian puts Chromium; `HOOKD_TEST_CHROMIUM` overrides it.
fn chromium_path() -> PathBuf {
    std::env::var_os("HOOKD_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Starts a fresh headless browser with its own empty profile and no background traffic.
pub fn launch() -> Browser {
    launch_sized(None)
}

/// [`launch`] with a window of `(width, height)` pixels, for checks of the layout.
pub fn launch_sized(window_size: Option<(u32, u32)>) -> Browser {
    let path = chromium_path();
    assert!(
        path.exists(),
        "browser tests need Chromium at {} (apt-get install chromium)",
        path.display()
    );
    let args: Vec<&OsStr> = [
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ]
    .iter()
    .map(OsStr::new)
    .collect();
    let options = LaunchOptions::default_builder()
        .path(Some(path))
        .headless(true)
        .sandbox(false)
        .args(args)
        .window_size(window_size)
        .idle_browser_timeout(Duration::from_secs(120))
        .build()
        .expect("browser launch options");
    Browser::new(options).expect("Chromium starts")
}
