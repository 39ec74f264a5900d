//! Headless Chromium (Debian's `chromium`, installed by `.ci/run`) for browser tests,
//! driven over the DevTools protocol by `headless_chrome`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::ops::Deref;
use std::path::PathBuf;
use std::time::Duration;

use headless_chrome::{Browser, LaunchOptions, Tab};

/// Where Debian puts Chromium; `HOOKD_TEST_CHROMIUM` overrides it.
fn chromium_path() -> PathBuf {
    std::env::var_os("HOOKD_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// A running browser and the temporary directory it was given as `TMPDIR`.
///
/// Chromium keeps its singleton socket in a directory under `TMPDIR` and removes it only
/// on a clean exit; the browser is killed when dropped, so without a directory of its own
/// every test run would leave one `org.chromium.Chromium.*` behind in `/tmp`. The browser
/// is dropped first (fields drop in order), then the directory.
pub struct TestBrowser {
    browser: Browser,
    _tmp: tempfile::TempDir,
}

impl Deref for TestBrowser {
    type Target = Browser;

    fn deref(&self) -> &Browser {
        &self.browser
    }
}

/// Starts a fresh headless browser with its own empty profile and no background traffic.
pub fn launch() -> TestBrowser {
    launch_sized(None)
}

/// [`launch`] with a window of `(width, height)` pixels, for checks of the layout.
pub fn launch_sized(window_size: Option<(u32, u32)>) -> TestBrowser {
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
    let tmp = tempfile::tempdir().expect("a temporary directory for the browser");
    let envs = HashMap::from([(
        "TMPDIR".to_owned(),
        tmp.path().to_string_lossy().into_owned(),
    )]);
    let options = LaunchOptions::default_builder()
        .path(Some(path))
        .headless(true)
        .sandbox(false)
        .args(args)
        .window_size(window_size)
        .idle_browser_timeout(Duration::from_secs(120))
        .process_envs(Some(envs))
        .build()
        .expect("browser launch options");
    TestBrowser {
        browser: Browser::new(options).expect("Chromium starts"),
        _tmp: tmp,
    }
}

// What a test does on a page that redraws itself every few seconds.

/// Long enough for the page's 5-second refresh to come round a few times.
pub const PAGE_WAIT: Duration = Duration::from_secs(30);

/// Clicks the element; the page redraws itself every few seconds, so a node found just
/// before a redraw may be gone by the click: find it again and retry.
pub fn click(tab: &Tab, selector: &str) {
    let mut tries = 0;
    loop {
        let clicked = tab
            .wait_for_element_with_custom_timeout(selector, PAGE_WAIT)
            .and_then(|element| element.click().map(|_| ()));
        match clicked {
            Ok(()) => return,
            Err(error) if tries < 5 => {
                tries += 1;
                eprintln!("retrying a click on {selector}: {error}");
            }
            Err(error) => panic!("could not click {selector}: {error}"),
        }
    }
}

pub fn text_of(tab: &Tab, selector: &str) -> String {
    tab.wait_for_element_with_custom_timeout(selector, PAGE_WAIT)
        .unwrap_or_else(|e| panic!("{selector} never appeared: {e}"))
        .get_inner_text()
        .unwrap()
}

pub fn eval_bool(tab: &Tab, expression: &str) -> bool {
    tab.evaluate(expression, false)
        .unwrap()
        .value
        .and_then(|v| v.as_bool())
        .unwrap_or_else(|| panic!("`{expression}` is not a boolean"))
}

/// Waits until the element's text passes `check` (the page redraws every few seconds), and
/// returns it; panics with the last text seen.
pub fn text_until(tab: &Tab, selector: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + PAGE_WAIT;
    loop {
        let text = tab
            .wait_for_element_with_custom_timeout(selector, PAGE_WAIT)
            .and_then(|e| e.get_inner_text())
            .unwrap_or_default();
        if check(&text) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{selector} never read as expected; last: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn eval_string(tab: &Tab, expression: &str) -> String {
    match tab.evaluate(expression, false).unwrap().value {
        Some(serde_json::Value::String(s)) => s,
        other => panic!("`{expression}` is not a string: {other:?}"),
    }
}
