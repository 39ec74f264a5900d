//! What a distribution by email or SMS refuses before anything is stored, and who is not
//! sent anything (`doNotContact`).

use serde_json::json;

use super::{app_with_channels, bad_fields, contact, distribute, smtp, status_of, try_distribute};
use crate::common::Receiver;

#[tokio::test]
async fn a_contact_without_an_address_for_the_channel_is_named_and_nothing_is_stored() {
    let smtp = smtp();
    let app = app_with_channels(Some(&smtp), None).await;
    let survey = app.create_survey().await;
    let ada = contact(&app, json!({"email": "ada@example.org"})).await;
    let phone_only = contact(&app, json!({"phone": "+41791112233"})).await;
    let (status, body) =
        try_distribute(&app, &survey, &[&ada, &phone_only], "email", json!({})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(bad_fields(&body), ["contactIds[1]"]);
    assert!(
        body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("email address")
    );
    for table in ["distributions", "invitations", "messages", "deliveries"] {
        assert_eq!(app.rows(table), 0, "{table}");
    }
}

#[tokio::test]
async fn templates_must_carry_the_link_and_known_placeholders_and_sms_has_text_only() {
    let smtp = smtp();
    let gateway = Receiver::start().await;
    let app = app_with_channels(Some(&smtp), Some(gateway.url("/sms"))).await;
    let survey = app.create_survey().await;
    let ada = contact(
        &app,
        json!({"email": "ada@example.org", "phone": "+41791112244"}),
    )
    .await;

    let message =
        json!({"text": "Please answer", "html": "<p>{{name}} {{link}}</p>", "subject": 7});
    let (status, body) =
        try_distribute(&app, &survey, &[&ada], "email", json!({"message": message})).await;
    assert_eq!(status, 422, "{body}");
    let details = body["error"]["details"].as_array().unwrap();
    let said = |field: &str| {
        details
            .iter()
            .find(|d| d["field"] == field)
            .map(|d| d["message"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no error for {field}: {body}"))
    };
    assert_eq!(said("message.text"), "must contain {{link}}");
    assert!(said("message.html").starts_with("{{name}} is not a placeholder"));
    assert_eq!(said("message.subject"), "must be a string");

    let (status, body) = try_distribute(
        &app,
        &survey,
        &[&ada],
        "sms",
        json!({"message": {"text": "{{link}}", "html": "<p>{{link}}</p>"}}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(bad_fields(&body), ["message.html"]);

    let (status, body) = try_distribute(
        &app,
        &survey,
        &[&ada],
        "link",
        json!({"message": {"text": "{{link}}"}, "reminders": [60]}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(bad_fields(&body), ["message", "reminders"]);
    assert_eq!(app.rows("invitations"), 0);
}

#[tokio::test]
async fn an_sms_too_long_once_filled_in_is_refused_naming_the_contact() {
    let gateway = Receiver::start().await;
    let app = app_with_channels(None, Some(gateway.url("/sms"))).await;
    let survey = app.create_survey().await;
    let short = contact(&app, json!({"phone": "+41791112255", "firstName": "Al"})).await;
    let long = contact(
        &app,
        json!({"phone": "+41791112266", "firstName": "A".repeat(200)}),
    )
    .await;
    let text = format!("{} {{{{firstName}}}} {{{{link}}}}", "x".repeat(500));
    let (status, body) = try_distribute(
        &app,
        &survey,
        &[&short, &long],
        "sms",
        json!({"message": {"text": text}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(bad_fields(&body), ["message.text"]);
    let message = body["error"]["details"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("contactIds[1]") && message.contains("640"),
        "{message}"
    );
}

#[tokio::test]
async fn reminders_are_at_most_three_increasing_delays_of_up_to_thirty_days() {
    let smtp = smtp();
    let app = app_with_channels(Some(&smtp), None).await;
    let survey = app.create_survey().await;
    let ada = contact(&app, json!({"email": "ada@example.org"})).await;
    for reminders in [
        json!([60, 30]),
        json!([1, 2, 3, 4]),
        json!([0]),
        json!([2_592_001]),
        json!("60"),
    ] {
        let (status, body) = try_distribute(
            &app,
            &survey,
            &[&ada],
            "email",
            json!({"reminders": reminders}),
        )
        .await;
        assert_eq!(status, 422, "{reminders}: {body}");
        assert_eq!(bad_fields(&body), ["reminders"], "{reminders}");
    }
}

#[tokio::test]
async fn a_contact_who_asked_not_to_be_contacted_is_invited_but_sent_nothing() {
    let smtp = smtp();
    let app = app_with_channels(Some(&smtp), None).await;
    let survey = app.create_survey().await;
    let (_, quiet) = app
        .post(
            "/api/directory/contacts/upsert",
            json!({"externalId": "P-9", "email": "quiet@example.org", "doNotContact": true}),
        )
        .await;
    assert_eq!(quiet["contact"]["doNotContact"], true);
    let quiet = quiet["contact"]["id"].as_str().unwrap().to_owned();
    // Left out of a later upsert, the choice stays.
    let (_, again) = app
        .post(
            "/api/directory/contacts/upsert",
            json!({"externalId": "P-9", "firstName": "Q"}),
        )
        .await;
    assert_eq!(again["contact"]["doNotContact"], true);
    let (_, found) = app.get(&format!("/api/directory/contacts/{quiet}")).await;
    assert_eq!(found["doNotContact"], true);
    let (_, listed) = app.get("/api/directory/contacts?q=quiet").await;
    assert_eq!(listed["items"][0]["doNotContact"], true);
    // Without any address at all, such a contact is still invited.
    let no_address = contact(&app, json!({"externalId": "P-10", "doNotContact": true})).await;
    let ada = contact(&app, json!({"email": "ada@example.org"})).await;

    let sent = distribute(
        &app,
        &survey,
        &[&quiet, &no_address, &ada],
        "email",
        json!({"reminders": [3600]}),
    )
    .await;
    let statuses: Vec<&str> = sent["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["messageStatus"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["skipped", "skipped", "queued"]);
    smtp.wait_for(1).await;
    let status = status_of(&app, &survey, &sent).await;
    let kinds: Vec<(String, String)> = status["invitations"][0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap().into(),
                m["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("invitation".into(), "skipped".into()),
            ("reminder".into(), "skipped".into())
        ]
    );
    assert_eq!(smtp.received().len(), 1);
    assert_eq!(smtp.received()[0].rcpt_tos, ["ada@example.org"]);
    let (_, bulk) = app
        .get(&format!(
            "/api/surveys/{survey}/responses/bulk-status?contactIds={quiet},{ada}"
        ))
        .await;
    assert_eq!(bulk["items"][0]["messageStatus"], "skipped");
    assert_eq!(
        app.rows("deliveries"),
        2,
        "jobs only for the contact who may be contacted: the invitation and its reminder"
    );
}

#[tokio::test]
async fn a_contact_who_opts_out_after_the_invitation_gets_no_reminder() {
    let smtp = smtp();
    let app = app_with_channels(Some(&smtp), None).await;
    let survey = app.create_survey().await;
    let ada = contact(
        &app,
        json!({"externalId": "P-20", "email": "ada@example.org"}),
    )
    .await;
    let sent = distribute(
        &app,
        &survey,
        &[&ada],
        "email",
        json!({"reminders": [3600, 7200]}),
    )
    .await;
    smtp.wait_for(1).await;
    super::message_reaches(&app, &survey, &sent, 0, 0, "sent").await;
    let (status, _) = app
        .post(
            "/api/directory/contacts/upsert",
            json!({"externalId": "P-20", "doNotContact": true}),
        )
        .await;
    assert_eq!(status, 200);
    let status = status_of(&app, &survey, &sent).await;
    let statuses: Vec<&str> = status["invitations"][0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["sent", "skipped", "skipped"]);
    assert_eq!(app.rows("deliveries"), 1, "the reminders left the queue");
}
