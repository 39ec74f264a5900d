//! The operator page in a real browser (headless Chromium): an operator enters the key, sees
//! a failed delivery, and once the receiver has healed retries it from the page; and at
//! 1400 pixels the page says what each webhook and delivery is doing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::browser::{PAGE_WAIT, click, eval_bool, eval_string, text_of, text_until};
use common::{Gate, KEY, Receiver, Reply, create_key, spawn_app, wait_until};
use headless_chrome::Tab;
use serde_json::json;

/// Opens the page at `url` in a new tab of `browser` and connects with the admin key, as an
/// operator would.
fn connect(browser: &headless_chrome::Browser, url: &str) -> Arc<Tab> {
    connect_with(browser, url, KEY)
}

/// [`connect`] with another key.
fn connect_with(browser: &headless_chrome::Browser, url: &str, key: &str) -> Arc<Tab> {
    let tab = browser.new_tab().unwrap();
    // A tab in the background gets no rendering, so clicks (which wait for the element to
    // be laid out in view) would stall.
    tab.activate().unwrap();
    tab.navigate_to(url)
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    tab.wait_for_element("#key-input").unwrap().click().unwrap();
    tab.send_character(key).unwrap();
    click(&tab, "#connect");
    tab
}

/// How long the server may take to deliver what a test set up.
const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_retries_a_failed_delivery_from_the_page_once_the_receiver_heals() {
    let app = spawn_app().await;
    let receiver = Arc::new(Receiver::scripted(|_, _| Reply::status(500).body("down")).await);
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(
            &survey,
            &receiver.url("/hook"),
            json!({"name": "<b>HIS</b>", "retryPolicy": []}),
        )
        .await;
    app.complete_response(&survey, 2).await;
    wait_until("the delivery failed", Duration::from_secs(15), || async {
        app.deliveries(&survey, &webhook)
            .await
            .first()
            .is_some_and(|d| d["status"] == "failed")
    })
    .await;
    let delivery = app.deliveries(&survey, &webhook).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let url = app.url("/");
    let healer = receiver.clone();
    let (id, hook) = (delivery.clone(), webhook.clone());
    let attempts_text = tokio::task::spawn_blocking(move || {
        let browser = common::browser::launch();
        let tab = connect(&browser, &url);
        let failed_row = format!("#failing tr[data-delivery-id=\"{id}\"][data-status=\"failed\"]");
        let row = text_of(&tab, &failed_row);
        assert!(row.contains("HTTP 500"), "{row}");

        // What the server sent is shown as text, never interpreted as markup.
        let name = text_of(
            &tab,
            &format!("#webhooks tr[data-webhook-id=\"{hook}\"] td"),
        );
        assert!(name.contains("<b>HIS</b>"), "{name}");
        assert!(eval_bool(
            &tab,
            "document.querySelector('#webhooks b') === null"
        ));
        assert!(eval_bool(
            &tab,
            "document.querySelector('#throughput-chart rect.bar.failed') !== null"
        ));
        // The key lives in this tab's session storage only.
        assert!(eval_bool(
            &tab,
            "sessionStorage.getItem('hookd.apiKey') !== null && localStorage.length === 0"
        ));
        healer.set_script(|_, _| Reply::ok());
        click(
            &tab,
            &format!("#failing button.retry[data-delivery-id=\"{id}\"]"),
        );
        tab.wait_for_element_with_custom_timeout(
            &format!("#recent tr[data-delivery-id=\"{id}\"][data-status=\"succeeded\"]"),
            PAGE_WAIT,
        )
        .expect("the page shows the delivery as succeeded");
        click(
            &tab,
            &format!("#recent button.toggle[data-delivery-id=\"{id}\"]"),
        );
        text_of(&tab, &format!("#recent tr[data-attempts-of=\"{id}\"]"))
    })
    .await
    .unwrap();

    assert!(
        attempts_text.contains("#1") && attempts_text.contains("HTTP 500"),
        "{attempts_text}"
    );
    assert!(
        attempts_text.contains("#2") && attempts_text.contains("HTTP 200"),
        "{attempts_text}"
    );
    assert_eq!(receiver.count(), 2);
    let (_, audit) = app.get("/api/admin/audit?limit=1").await;
    assert_eq!(audit["items"][0]["action"], "delivery.retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_viewer_key_the_page_shows_the_queue_and_offers_nothing_that_changes_it() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|_, _| Reply::status(500)).await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(&survey, &receiver.url("/hook"), json!({"retryPolicy": []}))
        .await;
    app.complete_response(&survey, 2).await;
    wait_until("the delivery failed", WAIT, || async {
        app.count_with_status(&survey, &webhook, "failed").await == 1
    })
    .await;
    let path = format!("/api/surveys/{survey}/webhooks/{webhook}");
    let (status, _) = app.patch(&path, json!({"isActive": false})).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let (_, viewer) = create_key(&app, "dashboard", "viewer").await;

    let url = app.url("/");
    let (as_admin, as_viewer, role) = tokio::task::spawn_blocking(move || {
        let browser = common::browser::launch();
        let buttons = "document.querySelectorAll('button.retry, button.enable').length";
        let failed_row = "#failing tr[data-status=\"failed\"]";
        // The same queue with an admin key offers its repairs...
        let tab = connect(&browser, &url);
        text_of(&tab, failed_row);
        let as_admin = eval_string(&tab, &format!("String({buttons})"));
        // ...and with a viewer key shows it all, read only.
        let tab = connect_with(&browser, &url, &viewer);
        text_of(&tab, failed_row);
        text_until(&tab, "#webhooks td.state", |t| t.contains("inactive"));
        let as_viewer = eval_string(&tab, &format!("String({buttons})"));
        (as_admin, as_viewer, text_of(&tab, "#role"))
    })
    .await
    .unwrap();
    // A retry in each list the failed delivery is in, and a re-enable.
    assert_eq!(as_admin, "3", "the admin's page offers its repairs");
    assert_eq!(as_viewer, "0");
    assert!(role.contains("viewer"), "{role}");
}

/// The operators' screens the page is laid out for.
const WINDOW: (u32, u32) = (1400, 900);

/// Scrolls the window (only the window: a table's own scroller stays where the operator
/// would find it) so the element is in view, and answers where it lies against the
/// viewport and against its table's scroll box.
const BUTTON_BOX: &str = r#"(() => {
  const button = document.querySelector(SELECTOR);
  const r0 = button.getBoundingClientRect();
  window.scrollTo(0, window.scrollY + r0.top - 200);
  const r = button.getBoundingClientRect();
  const box = button.closest('.scroll').getBoundingClientRect();
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return JSON.stringify({
    left: r.left, right: r.right, top: r.top, bottom: r.bottom,
    width: window.innerWidth, height: window.innerHeight,
    boxLeft: box.left, boxRight: box.right, hitsButton: hit === button,
  });
})()"#;

/// Makes one paused delivery look like an attempt that will never report (delivering, its
/// lease run out), and keeps the database's write lock so that hookd cannot settle it
/// while the page is read; `ROLLBACK` on `conn` lets it go. hookd's lease sweep may settle
/// it between the update and the lock; then it is made again.
fn hold_stuck_claim(conn: &rusqlite::Connection, delivery: &str) {
    let delivery: hookd::domain::DeliveryId = delivery.parse().unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    for _ in 0..5 {
        conn.execute(
            "UPDATE deliveries SET status = 'delivering', claim_token = 1, \
             lease_expires_at = 1000 WHERE id = ?1",
            [delivery],
        )
        .unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let still: bool = conn
            .query_row(
                "SELECT status = 'delivering' AND lease_expires_at = 1000 FROM deliveries \
                 WHERE id = ?1",
                [delivery],
                |row| row.get(0),
            )
            .unwrap();
        if still {
            return;
        }
        conn.execute_batch("ROLLBACK").unwrap();
    }
    panic!("hookd settled the stuck claim each time before it could be held");
}

#[tokio::test(flavor = "multi_thread")]
async fn at_1400_pixels_the_page_says_what_each_webhook_and_delivery_is_doing() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = common::test_args(dir.path());
    args.auto_disable_after = Some(2);
    let app = common::spawn_app_with(args, Some(dir)).await;
    let gate = Gate::new();
    let held = gate.clone();
    let archive_failed_once = Arc::new(AtomicBool::new(false));
    let receiver = Receiver::scripted(move |r, _| {
        if r.path.ends_with("/flaky") {
            Reply::status(500).held(&held)
        } else if !archive_failed_once.swap(true, Ordering::SeqCst) {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    })
    .await;
    let survey = app.create_survey().await;
    // A URL as long as a real HIS's: it must not push the buttons out of the card.
    let flaky = app
        .create_webhook(
            &survey,
            &receiver.url("/clinic-his/integrations/v2/inbound/patient-surveys/hookd/flaky"),
            json!({"name": "Clinic HIS (integration)", "retryPolicy": []}),
        )
        .await;
    let archive = app
        .create_webhook(
            &survey,
            &receiver.url("/archive"),
            json!({"name": "Archive", "ordering": "fifo", "retryPolicy": [1]}),
        )
        .await;
    // Three deliveries in flight at once: the first two failures disable the webhook, the
    // third was already sent, still fails, and counts.
    for _ in 0..3 {
        app.complete_response(&survey, 4).await;
    }
    wait_until("three attempts are in flight", WAIT, || async {
        receiver
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/flaky"))
            .count()
            == 3
    })
    .await;
    gate.open();
    wait_until(
        "the webhook is disabled with a streak of 3",
        WAIT,
        || async {
            let (_, queue) = app.get("/api/admin/queue").await;
            queue["webhooks"][0]["webhookId"] == json!(flaky)
                && queue["webhooks"][0]["state"] == "disabled"
                && queue["webhooks"][0]["consecutiveFailures"] == 3
                && queue["webhooks"][0]["failuresWhenDisabled"] == 2
        },
    )
    .await;
    // Two more events: the disabled webhook collects their deliveries, paused.
    for _ in 0..2 {
        app.complete_response(&survey, 5).await;
    }
    wait_until("the archive has every delivery", WAIT, || async {
        app.count_with_status(&survey, &archive, "succeeded").await == 5
    })
    .await;
    let paused: Vec<String> = app
        .deliveries(&survey, &flaky)
        .await
        .iter()
        .filter(|d| d["status"] == "pending")
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paused.len(), 2, "{paused:?}");
    // 8 deliveries were attempted; 9 attempts, since the archive's first one was retried.
    let (_, chart) = app.get("/api/admin/throughput").await;
    let counted: u64 = chart["minutes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| ["succeeded", "retry", "failed"].map(|k| m[k].as_u64().unwrap()))
        .map(|[ok, retry, failed]| ok + retry + failed)
        .sum();
    assert_eq!(counted, 8, "{chart}");

    let url = app.url("/");
    let db = app.data_dir.join("hookd.db");
    let (flaky_id, archive_id) = (flaky.clone(), archive.clone());
    let (waiting, stuck) = (paused[0].clone(), paused[1].clone());
    let screenshot = tokio::task::spawn_blocking(move || {
        let browser = common::browser::launch_sized(Some(WINDOW));
        let tab = connect(&browser, &url);
        let flaky_row = format!("#webhooks tr[data-webhook-id=\"{flaky_id}\"]");
        let archive_row = format!("#webhooks tr[data-webhook-id=\"{archive_id}\"]");

        // Each webhook says how its deliveries go out.
        let order = text_of(&tab, &format!("{archive_row} td.ordering"));
        assert_eq!(order.trim(), "fifo");
        let order = text_of(&tab, &format!("{flaky_row} td.ordering"));
        assert_eq!(order.trim(), "concurrent");

        // A streak past the limit in the reason says why.
        let reason = text_of(&tab, &flaky_row);
        assert!(
            reason.contains("2 consecutive deliveries failed"),
            "{reason}"
        );
        let streak = text_of(&tab, &format!("{flaky_row} td.streak"));
        assert!(
            streak.contains('3') && streak.contains("disabled after 2"),
            "{streak}"
        );

        // A delivery waiting on a webhook that is off is paused, not overdue.
        let next = text_of(&tab, &format!("{flaky_row} td.next"));
        assert_eq!(next.trim(), "paused");
        let row = text_until(
            &tab,
            &format!("#recent tr[data-delivery-id=\"{waiting}\"]"),
            |t| t.contains("pending"),
        );
        assert!(row.contains("paused") && !row.contains("ago"), "{row}");

        // The chart says what it counts, and counts deliveries, not attempts.
        let title = text_of(&tab, "#chart-title");
        assert!(
            title.contains("Deliveries per minute by outcome"),
            "{title}"
        );
        let label = eval_string(
            &tab,
            "document.querySelector('#throughput-chart').getAttribute('aria-label')",
        );
        assert!(label.starts_with("8 deliveries"), "{label}");

        // The Re-enable button is in full view at 1400 pixels, not clipped by its table.
        let selector = format!("{flaky_row} button.enable");
        tab.wait_for_element(&selector).unwrap();
        let js = BUTTON_BOX.replace("SELECTOR", &serde_json::to_string(&selector).unwrap());
        let at: serde_json::Value = serde_json::from_str(&eval_string(&tab, &js)).unwrap();
        let px = |key: &str| at[key].as_f64().unwrap();
        assert!(
            (1300.0..=1400.0).contains(&px("width")),
            "the window is 1400 px wide: {at}"
        );
        assert!(
            px("left") >= px("boxLeft")
                && px("right") <= px("boxRight")
                && px("right") <= px("width")
                && px("top") >= 0.0
                && px("bottom") <= px("height")
                && at["hitsButton"] == true,
            "the Re-enable button is clipped: {at}"
        );

        // The queue panel says what the store's writer is doing, in one line.
        let writer = text_until(&tab, "#writer", |t| t.starts_with("writer: "));
        let (commits, batches) = writer
            .trim_start_matches("writer: ")
            .split_once(" ms commits, ")
            .unwrap_or_else(|| panic!("{writer}"));
        assert!(commits.parse::<f64>().is_ok(), "{writer}");
        assert!(
            batches
                .strip_suffix(" per batch")
                .is_some_and(|n| n.parse::<f64>().is_ok_and(|n| n >= 1.0)),
            "{writer}"
        );

        // A claim past its lease shows in the totals and on its webhook's row.
        let conn = rusqlite::Connection::open(&db).unwrap();
        hold_stuck_claim(&conn, &stuck);
        tab.reload(true, None)
            .unwrap()
            .wait_until_navigated()
            .unwrap();
        let expired = text_until(&tab, "[data-total=\"expired claims\"]", |t| t.trim() == "1");
        assert_eq!(expired.trim(), "1");
        let delivering = text_of(&tab, &format!("{flaky_row} td.delivering"));
        assert!(delivering.contains("1 past lease"), "{delivering}");
        let png = tab
            .capture_screenshot(
                headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption::Png,
                None,
                None,
                true,
            )
            .unwrap();
        conn.execute_batch("ROLLBACK").unwrap();
        png
    })
    .await
    .unwrap();
    // `HOOKD_TEST_SCREENSHOT=page.png` keeps a picture of the page for a look by eye.
    if let Some(path) = std::env::var_os("HOOKD_TEST_SCREENSHOT") {
        std::fs::write(path, screenshot).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_queue_panel_counts_the_emails_queued_failed_and_sent() {
    let smtp = common::SmtpServer::start(common::SmtpTls::None);
    let dir = tempfile::tempdir().unwrap();
    let mut args = common::test_args(dir.path());
    args.smtp_url = Some(smtp.url());
    args.smtp_from = Some("surveys@clinic.example".into());
    args.message_rate_limit = Some(0);
    let app = common::spawn_app_with(args, Some(dir)).await;
    let survey = app.create_survey().await;
    let mut ids = Vec::new();
    for email in ["ok@example.org", "reject@example.org"] {
        let (_, upserted) = app
            .post("/api/directory/contacts/upsert", json!({"email": email}))
            .await;
        ids.push(upserted["contact"]["id"].as_str().unwrap().to_owned());
    }
    let (status, _) = app
        .post(
            &format!("/api/surveys/{survey}/distributions/quick"),
            json!({"contactIds": ids, "channel": "email"}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED);
    let api = &app.api;
    wait_until("one sent, one failed", WAIT, || async move {
        api.get("/api/admin/queue").await.1["messages"]["email"]
            == json!({"queued": 0, "sent": 1, "failed": 1})
    })
    .await;
    let url = app.url("/");
    let line = tokio::task::spawn_blocking(move || {
        let browser = common::browser::launch();
        let tab = connect(&browser, &url);
        text_until(&tab, "#messages", |t| t.starts_with("messages: "))
    })
    .await
    .unwrap();
    assert_eq!(line, "messages: email 0 queued, 1 failed, 1 sent");
}
