//! `POST /api/directory/contacts/upsert`, `GET /api/directory/contacts[/{id}]`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{bad_fields, contact};
use crate::common::spawn_app;

#[tokio::test]
async fn an_upsert_creates_a_contact_that_can_be_read_back() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(
            "/api/directory/contacts/upsert",
            json!({"externalId": "P-1", "email": "ada@example.org", "phone": "+41 79 123 45 67",
                   "firstName": "Ada", "lastName": "Lovelace", "attributes": {"ward": "north"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["created"], true);
    let id = body["contact"]["id"].as_str().unwrap();
    assert_eq!(body["contact"]["phone"], "+41791234567");

    let (status, read) = app.get(&format!("/api/directory/contacts/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, body["contact"]);
    assert_eq!(read["attributes"], json!({"ward": "north"}));

    let (status, missing) = app
        .get("/api/directory/contacts/0190f7a8-0000-7000-8000-000000000000")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["error"]["code"], "not_found");
}

#[tokio::test]
async fn upserts_match_by_external_id_then_email_case_insensitively_then_phone() {
    let app = spawn_app().await;
    let by_email = contact(&app, json!({"email": "Grace@Example.org"})).await;
    let (status, again) = app
        .post(
            "/api/directory/contacts/upsert",
            json!({"email": "grace@EXAMPLE.org", "firstName": "Grace"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["created"], false);
    assert_eq!(again["contact"]["id"], json!(by_email));
    assert_eq!(again["contact"]["firstName"], "Grace");

    let by_phone = contact(&app, json!({"phone": "079 555 01 01"})).await;
    let (_, again) = app
        .post(
            "/api/directory/contacts/upsert",
            json!({"phone": "0795550101", "externalId": "P-7"}),
        )
        .await;
    assert_eq!(again["contact"]["id"], json!(by_phone));
    assert_eq!(again["created"], false);

    // The external id wins over the other keys: it now names the contact found by phone.
    let (_, again) = app
        .post(
            "/api/directory/contacts/upsert",
            json!({"externalId": "P-7", "email": "seven@example.org"}),
        )
        .await;
    assert_eq!(again["contact"]["id"], json!(by_phone));
    assert_eq!(again["contact"]["email"], "seven@example.org");
    assert_eq!(again["contact"]["phone"], "0795550101");
}

#[tokio::test]
async fn an_upsert_without_external_id_email_or_phone_is_refused_naming_the_fields() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(
            "/api/directory/contacts/upsert",
            json!({"firstName": "Nobody"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_fields(&body), ["externalId", "email", "phone"]);

    let (status, body) = app
        .post(
            "/api/directory/contacts/upsert",
            json!({"externalId": "", "email": "not-an-address", "phone": "call me", "attributes": []}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        bad_fields(&body),
        ["externalId", "email", "phone", "attributes"]
    );
}

#[tokio::test]
async fn a_key_of_another_contact_is_refused_instead_of_merging_two_patients() {
    let app = spawn_app().await;
    contact(
        &app,
        json!({"externalId": "P-1", "email": "one@example.org"}),
    )
    .await;
    contact(
        &app,
        json!({"externalId": "P-2", "email": "two@example.org"}),
    )
    .await;
    let (status, body) = app
        .post(
            "/api/directory/contacts/upsert",
            json!({"externalId": "P-1", "email": "TWO@example.org"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_fields(&body), ["email"]);

    let (status, body) = app
        .post(
            "/api/directory/contacts/upsert",
            json!({"externalId": "P-3", "email": "one@example.org"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_fields(&body), ["externalId"]);
}

#[tokio::test]
async fn a_bulk_upsert_answers_one_result_per_item_in_order() {
    let app = spawn_app().await;
    let existing = contact(&app, json!({"email": "b@example.org"})).await;
    let (status, body) = app
        .post(
            "/api/directory/contacts/upsert",
            json!({"contacts": [
                {"externalId": "A", "firstName": "First"},
                {"email": "B@example.org", "firstName": "Second"},
                {"phone": "+1 555 0100"},
                {"externalId": "A", "lastName": "Again"}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = body["items"].as_array().unwrap();
    let created: Vec<_> = items.iter().map(|i| i["created"].clone()).collect();
    assert_eq!(
        created,
        [json!(true), json!(false), json!(true), json!(false)]
    );
    assert_eq!(items[1]["contact"]["id"], json!(existing));
    assert_eq!(items[1]["contact"]["firstName"], "Second");
    assert_eq!(items[3]["contact"]["id"], items[0]["contact"]["id"]);
    assert_eq!(items[3]["contact"]["firstName"], "First");
    assert_eq!(items[3]["contact"]["lastName"], "Again");
}

#[tokio::test]
async fn a_bulk_upsert_is_all_or_nothing_and_names_the_bad_items() {
    let app = spawn_app().await;
    contact(&app, json!({"externalId": "X", "email": "x@example.org"})).await;
    let (status, body) = app
        .post(
            "/api/directory/contacts/upsert",
            json!({"contacts": [{"externalId": "NEW-1"}, {"firstName": "keyless"}, {"email": "bad"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields = bad_fields(&body);
    assert!(
        fields.contains(&"contacts[1].email".to_owned()),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"contacts[2].email".to_owned()),
        "{fields:?}"
    );
    assert!(!fields.iter().any(|f| f.starts_with("contacts[0]")));

    // A conflict found while writing rolls back the items before it too.
    let (status, body) = app
        .post(
            "/api/directory/contacts/upsert",
            json!({"contacts": [{"externalId": "NEW-2"}, {"externalId": "NEW-3", "email": "x@example.org"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_fields(&body), ["contacts[1].externalId"]);
    let (_, found) = app.get("/api/directory/contacts?q=NEW-").await;
    assert_eq!(found["items"], json!([]));
}

#[tokio::test]
async fn a_bulk_upsert_takes_one_to_a_thousand_contacts() {
    let app = spawn_app().await;
    let thousand: Vec<Value> = (0..1000)
        .map(|i| json!({"externalId": format!("P{i}")}))
        .collect();
    let (status, body) = app
        .post(
            "/api/directory/contacts/upsert",
            json!({"contacts": thousand}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"].as_array().unwrap().len(), 1000);
    assert_eq!(body["items"][999]["contact"]["externalId"], "P999");

    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"externalId": format!("Q{i}")}))
        .collect();
    for contacts in [json!(too_many), json!([]), json!("P1")] {
        let (status, body) = app
            .post(
                "/api/directory/contacts/upsert",
                json!({"contacts": contacts}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(bad_fields(&body), ["contacts"]);
    }
}

#[tokio::test]
async fn contacts_are_searched_by_name_email_phone_and_external_id_page_by_page() {
    let app = spawn_app().await;
    let ada = contact(
        &app,
        json!({"externalId": "HIS-100", "email": "ada@example.org", "firstName": "Ada", "lastName": "Lovelace"}),
    )
    .await;
    let grace = contact(
        &app,
        json!({"phone": "+41 79 000 11 22", "firstName": "Grace", "lastName": "Hopper"}),
    )
    .await;
    for i in 0..3 {
        contact(&app, json!({"externalId": format!("OTHER-{i}")})).await;
    }
    for (q, expected) in [
        ("lovelace", &ada),
        ("ADA LOVE", &ada),
        ("example.org", &ada),
        ("HIS-1", &ada),
        ("0001122", &grace),
        ("hopp", &grace),
    ] {
        let (status, body) = app
            .get(&format!(
                "/api/directory/contacts?q={}",
                q.replace(' ', "%20")
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
        let ids: Vec<_> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].clone())
            .collect();
        assert_eq!(ids, [json!(expected)], "search {q}");
    }

    let mut seen = Vec::new();
    let mut path = "/api/directory/contacts?limit=2".to_owned();
    loop {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|c| c["id"].as_str().unwrap().to_owned()));
        match body["nextCursor"].as_str() {
            Some(cursor) => path = format!("/api/directory/contacts?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[0], ada);
    let (status, body) = app.get("/api/directory/contacts?limit=201").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_fields(&body), ["limit"]);
}
