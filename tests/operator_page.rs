//! The operator page in a real browser (headless Chromium): an operator enters the key, sees
//! a failed delivery, and once the receiver has healed retries it from the page.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{KEY, Receiver, Reply, spawn_app, wait_until};
use headless_chrome::Tab;
use serde_json::json;

/// Long enough for the page's 5-second refresh to come round a few times.
const PAGE_WAIT: Duration = Duration::from_secs(30);

/// Clicks the element; the page redraws itself every few seconds, so a node found just
/// before a redraw may be gone by the click: find it again and retry.
fn click(tab: &Tab, selector: &str) {
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

fn text_of(tab: &Tab, selector: &str) -> String {
    tab.wait_for_element_with_custom_timeout(selector, PAGE_WAIT)
        .unwrap_or_else(|e| panic!("{selector} never appeared: {e}"))
        .get_inner_text()
        .unwrap()
}

fn eval_bool(tab: &Tab, expression: &str) -> bool {
    tab.evaluate(expression, false)
        .unwrap()
        .value
        .and_then(|v| v.as_bool())
        .unwrap_or_else(|| panic!("`{expression}` is not a boolean"))
}

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
        let tab = browser.new_tab().unwrap();
        // A tab in the background gets no rendering, so clicks (which wait for the element
        // to be laid out in view) would stall.
        tab.activate().unwrap();
        tab.navigate_to(&url)
            .unwrap()
            .wait_until_navigated()
            .unwrap();
        tab.wait_for_element("#key-input").unwrap().click().unwrap();
        tab.send_character(KEY).unwrap();
        click(&tab, "#connect");
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
