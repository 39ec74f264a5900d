//! The patient's page in headless Chromium: a patient opens the link, answers partly,
//! saves for later, finishes with the keyboard and the mouse, sees the thank-you — and
//! the HIS's webhook receives the response.

mod common;

use std::time::{Duration, Instant};

use headless_chrome::Tab;
use reqwest::StatusCode;
use serde_json::json;

use common::{Receiver, browser, spawn_app, wait_until};

/// Polls the page until `check` holds (the browser is driven synchronously).
fn until(what: &str, tab: &Tab, check: impl Fn(&Tab) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check(tab) {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text_of(tab: &Tab, selector: &str) -> String {
    tab.find_element(selector)
        .and_then(|e| e.get_inner_text())
        .unwrap_or_default()
}

fn checked_value(tab: &Tab, name: &str) -> String {
    let expression =
        format!("(document.querySelector('input[name={name}]:checked') || {{}}).value || ''");
    tab.evaluate(&expression, false)
        .unwrap()
        .value
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_patient_completes_the_survey_in_a_browser_and_the_webhook_arrives() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let survey = app.create_survey_of_every_type("Your stay <with us>").await;
    let (_, patient) = app
        .post(
            "/api/directory/contacts/upsert",
            json!({"externalId": "P-1"}),
        )
        .await;
    let patient = patient["contact"]["id"].as_str().unwrap().to_owned();
    let (status, sent) = app
        .post(
            &format!("/api/surveys/{survey}/distributions/quick"),
            json!({"contactIds": [patient], "channel": "link"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = sent["invitations"][0]["token"].as_str().unwrap().to_owned();
    app.create_webhook(
        &survey,
        &receiver.url("/hook"),
        json!({"events": ["survey.response_started", "survey.response_completed"]}),
    )
    .await;

    let url = app.url(&format!("/r/{token}"));
    let gone = app.url(&format!("/r/{}", "A".repeat(43)));
    let (title, thanks, revisit, expired) = tokio::task::spawn_blocking(move || {
        let browser = browser::launch();
        let tab = browser.new_tab().unwrap();
        tab.navigate_to(&url)
            .unwrap()
            .wait_until_navigated()
            .unwrap();
        tab.wait_for_element("#question-4").unwrap();
        let title = text_of(&tab, "#title");

        // The rating by keyboard: focus the first star, then arrow keys move the choice.
        tab.find_element("input[name=q0][value='1']")
            .unwrap()
            .focus()
            .unwrap();
        tab.press_key(" ").unwrap();
        for _ in 0..3 {
            tab.press_key("ArrowRight").unwrap();
        }
        assert_eq!(checked_value(&tab, "q0"), "4");
        tab.find_element("input[name=q1][value=north]")
            .unwrap()
            .click()
            .unwrap();
        tab.find_element("#later").unwrap().click().unwrap();
        until("the save is confirmed", &tab, |t| {
            text_of(t, "#notice").contains("saved")
        });

        tab.find_element("input[name=q2][value=food]")
            .unwrap()
            .click()
            .unwrap();
        tab.find_element("input[name=q3][value='9']")
            .unwrap()
            .click()
            .unwrap();
        tab.find_element("#q4").unwrap().click().unwrap();
        tab.type_str("Kind staff").unwrap();
        tab.find_element("#submit").unwrap().click().unwrap();
        tab.wait_for_element("#outcome").unwrap();
        let thanks = text_of(&tab, "#title");

        tab.navigate_to(&url)
            .unwrap()
            .wait_until_navigated()
            .unwrap();
        tab.wait_for_element("#outcome").unwrap();
        let revisit = text_of(&tab, "#outcome");

        tab.navigate_to(&gone)
            .unwrap()
            .wait_until_navigated()
            .unwrap();
        tab.wait_for_element("#outcome").unwrap();
        let expired = text_of(&tab, "#title");
        (title, thanks, revisit, expired)
    })
    .await
    .unwrap();
    assert_eq!(title, "Your stay <with us>", "survey text is shown as text");
    assert_eq!(thanks, "Thank you");
    assert!(revisit.contains("already completed"), "{revisit}");
    assert!(expired.contains("no longer valid"), "{expired}");

    wait_until(
        "the webhook got both events",
        Duration::from_secs(10),
        || async { receiver.count() >= 2 },
    )
    .await;
    let events: Vec<_> = receiver.requests().iter().map(|r| r.json()).collect();
    assert_eq!(events.len(), 2);
    let completed = events
        .iter()
        .find(|e| e["eventType"] == "survey.response_completed")
        .expect("the completion arrived");
    assert_eq!(completed["data"]["contactId"], json!(patient));
    assert_eq!(
        completed["data"]["answers"],
        json!({"stars": {"value": 4}, "ward": {"choiceIds": ["north"]},
               "topics": {"choiceIds": ["food"]}, "nps": {"value": 9},
               "note": {"value": "Kind staff"}})
    );
    assert!(
        events
            .iter()
            .any(|e| e["eventType"] == "survey.response_started")
    );
}
