//! Every request body the OpenAPI document describes, against the running parser (SPEC
//! §2): a body has one type, so the document cannot drift from what is read. For each
//! body schema: an example with every property is accepted, and so is one with the
//! required properties alone; each required property removed is the one field a 422
//! names; each property sent with the wrong JSON type is the one field a 422 names. So a
//! property documented but not read, a field required but not documented as required, or
//! the reverse, fails here.

mod common;

use std::collections::BTreeSet;

use common::{KEY, Receiver, TestApp, bad_fields, spawn_app, spawn_app_with, test_args};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

/// What the bodies point at: objects made before the bodies are sent.
struct Scene {
    survey: String,
    webhook: String,
    contact: String,
    token: String,
    receiver: Receiver,
}

/// The contact every upsert example matches, so that none of them conflicts with another.
fn contact_keys() -> Value {
    json!({"externalId": "P-1", "email": "ada@example.org", "phone": "+41 79 123 45 67"})
}

impl Scene {
    async fn new(app: &TestApp) -> Self {
        let receiver = Receiver::start().await;
        let survey = app.create_survey().await;
        let webhook = app
            .create_webhook(&survey, &receiver.url("/hook"), json!({}))
            .await;
        let (status, upserted) = app
            .post("/api/directory/contacts/upsert", contact_keys())
            .await;
        assert!(status.is_success(), "{upserted}");
        let contact = upserted["contact"]["id"].as_str().unwrap().to_owned();
        let (status, sent) = app
            .post(
                &format!("/api/surveys/{survey}/distributions/quick"),
                json!({"contactIds": [contact], "channel": "link"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{sent}");
        let token = sent["invitations"][0]["token"].as_str().unwrap().to_owned();
        Self {
            survey,
            webhook,
            contact,
            token,
            receiver,
        }
    }

    /// A valid value for a property whose schema alone cannot make one: which values are
    /// valid is the API's rule, not the schema's. The property itself comes from the schema.
    fn valid(&self, property: &str) -> Option<Value> {
        let keys = contact_keys();
        Some(match property {
            "url" => json!(self.receiver.url("/hook")),
            "events" => json!(["survey.response_completed"]),
            "secret" => json!("a-secret-of-at-least-16-characters"),
            "surveyId" => json!(self.survey),
            "headers" => json!({"X-Ward": "north"}),
            "retryPolicy" => json!([1, 5]),
            "ordering" => json!("fifo"),
            "since" => json!("2020-01-01T00:00:00Z"),
            "questions" => json!([{"id": "stars", "type": "rating", "text": "How was it?"}]),
            // The scene's survey asks `stars`, required.
            "answers" => json!({"stars": {"value": 4}}),
            // A save for later can be sent again; a completion only once.
            "complete" => json!(false),
            "contactIds" => json!([self.contact]),
            "contactId" => json!(self.contact),
            // A channel that sends, so that `message` and `reminders` apply.
            "channel" => json!("email"),
            "message" => json!({"subject": "{{surveyTitle}}", "text": "Answer: {{link}}",
                "html": "<a href=\"{{link}}\">Answer</a>"}),
            "reminders" => json!([3600]),
            "externalId" | "email" | "phone" => keys[property].clone(),
            _ => return None,
        })
    }

    fn path(&self, template: &str) -> String {
        let mut path = template.to_owned();
        for (param, value) in [
            ("{surveyId}", &self.survey),
            ("{id}", &self.webhook),
            ("{token}", &self.token),
        ] {
            path = path.replace(param, value);
        }
        assert!(
            !path.contains('{'),
            "no value for a parameter of {template}"
        );
        path
    }
}

/// Required properties the schema cannot express, by body: a contact needs one of
/// externalId, email or phone.
fn one_of_required(body: &str) -> &'static [&'static str] {
    match body {
        "ContactBody" => &["externalId"],
        _ => &[],
    }
}

/// One body schema of one operation (each alternative of a `oneOf` is one).
struct BodySchema {
    method: Method,
    path: String,
    /// The component's name.
    name: String,
    schema: Value,
    /// Properties that tell this alternative from the others of its `oneOf`: without
    /// one, the body is another alternative rather than this one missing a field.
    discriminators: Vec<String>,
}

fn component<'a>(doc: &'a Value, reference: &Value) -> (String, &'a Value) {
    let reference = reference["$ref"].as_str().expect("a body schema is a $ref");
    let name = reference.trim_start_matches("#/components/schemas/");
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "{reference} is not in the document");
    (name.to_owned(), schema)
}

fn properties(schema: &Value) -> Vec<String> {
    schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn required(schema: &Value) -> Vec<String> {
    schema["required"]
        .as_array()
        .map(|r| r.iter().map(|n| n.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// Every request body of every operation of the document.
fn body_schemas(doc: &Value) -> Vec<BodySchema> {
    let mut bodies = Vec::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let Some(body) = operation.get("requestBody") else {
                continue;
            };
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (name, schema) = component(doc, &body["content"]["application/json"]["schema"]);
            let alternatives: Vec<(String, &Value)> = match schema["oneOf"].as_array() {
                Some(items) => items.iter().map(|item| component(doc, item)).collect(),
                None => vec![(name, schema)],
            };
            for (i, (name, schema)) in alternatives.iter().enumerate() {
                let others: BTreeSet<String> = alternatives
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .flat_map(|(_, (_, other))| properties(other))
                    .collect();
                let discriminators = if alternatives.len() > 1 {
                    required(schema)
                        .into_iter()
                        .filter(|r| !others.contains(r))
                        .collect()
                } else {
                    Vec::new()
                };
                bodies.push(BodySchema {
                    method: method.clone(),
                    path: path.clone(),
                    name: name.clone(),
                    schema: (*schema).clone(),
                    discriminators,
                });
            }
        }
    }
    bodies
}

/// The JSON type a schema documents (`["string", "null"]` is a string).
fn json_type(schema: &Value) -> &str {
    match &schema["type"] {
        Value::String(t) => t,
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap(),
        _ => "object",
    }
}

/// A valid value for a property with this schema.
fn example_value(doc: &Value, scene: &Scene, property: &str, schema: &Value) -> Value {
    if let Some(value) = scene.valid(property) {
        return value;
    }
    if schema.get("$ref").is_some() {
        return example(doc, scene, component(doc, schema).1);
    }
    match json_type(schema) {
        "string" => json!("Example"),
        "boolean" => json!(true),
        "integer" => json!(1),
        "array" => json!([example_value(doc, scene, "", &schema["items"])]),
        "object" if schema.get("properties").is_some() => example(doc, scene, schema),
        "object" => json!({}),
        other => panic!("no example for a `{other}` property `{property}`"),
    }
}

/// An object with every property of `schema`.
fn example(doc: &Value, scene: &Scene, schema: &Value) -> Value {
    let mut body = Map::new();
    for (property, property_schema) in schema["properties"].as_object().unwrap() {
        body.insert(
            property.clone(),
            example_value(doc, scene, property, property_schema),
        );
    }
    Value::Object(body)
}

/// A value of another JSON type than the property's.
fn wrong_type(schema: &Value) -> Value {
    match json_type(schema) {
        "string" => json!(12345),
        _ => json!("not the documented type"),
    }
}

async fn send(
    app: &TestApp,
    body: &BodySchema,
    scene: &Scene,
    sent: &Value,
) -> (StatusCode, Value) {
    app.call(
        body.method.clone(),
        &scene.path(&body.path),
        Some(sent.clone()),
    )
    .await
}

async fn assert_accepted(app: &TestApp, body: &BodySchema, scene: &Scene, sent: Value, what: &str) {
    let (status, answer) = send(app, body, scene, &sent).await;
    assert!(
        status.is_success(),
        "{} {} ({}): {what} was refused: {sent} -> {status} {answer}",
        body.method,
        body.path,
        body.name
    );
}

async fn assert_only_bad(
    app: &TestApp,
    body: &BodySchema,
    scene: &Scene,
    sent: Value,
    field: &str,
    what: &str,
) {
    let (status, answer) = send(app, body, scene, &sent).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")),
        "{} {} ({}): {what}: {sent} -> {answer}",
        body.method,
        body.path,
        body.name
    );
    assert_eq!(
        bad_fields(&answer),
        [field],
        "{} {} ({}): {what}: {sent} -> {answer}",
        body.method,
        body.path,
        body.name
    );
}

#[tokio::test]
async fn every_documented_request_body_is_the_one_the_parser_reads() {
    // A mail server is configured (nothing listens there: the messages wait) so that a
    // distribution by email is accepted.
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.smtp_url = Some("smtp://127.0.0.1:9?tls=none".into());
    args.smtp_from = Some("surveys@clinic.example".into());
    let app = spawn_app_with(args, Some(dir)).await;
    let scene = Scene::new(&app).await;
    let (status, doc) = app.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let bodies = body_schemas(&doc);

    let checked: BTreeSet<String> = bodies
        .iter()
        .map(|b| format!("{} {} {}", b.method, b.path, b.name))
        .collect();
    for expected in [
        "POST /api/surveys SurveyInput",
        "POST /api/surveys/{surveyId}/responses SubmissionInput",
        "POST /api/surveys/{surveyId}/webhooks WebhookInput",
        "PATCH /api/surveys/{surveyId}/webhooks/{id} WebhookChanges",
        "POST /api/surveys/{surveyId}/webhooks/{id}/replay ReplayInput",
        "POST /api/directory/contacts/upsert ContactBody",
        "POST /api/directory/contacts/upsert ContactBatch",
        "POST /api/surveys/{surveyId}/distributions/quick QuickInput",
        "POST /api/surveys/{surveyId}/responses/bulk-status BulkStatusInput",
        "POST /r/{token} SaveInput",
    ] {
        assert!(
            checked.contains(expected),
            "{expected} is not in {checked:#?}"
        );
    }

    for body in &bodies {
        let full = example(&doc, &scene, &body.schema);
        let full = full.as_object().unwrap();
        assert_accepted(&app, body, &scene, json!(full), "every property").await;

        let required = required(&body.schema);
        let minimal: Map<String, Value> = full
            .iter()
            .filter(|(name, _)| {
                required.contains(name) || one_of_required(&body.name).contains(&name.as_str())
            })
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        assert_accepted(
            &app,
            body,
            &scene,
            json!(minimal),
            "the required properties alone",
        )
        .await;

        for name in required.iter().filter(|r| !body.discriminators.contains(r)) {
            let mut without = full.clone();
            without.remove(name);
            let what = format!("without required `{name}`");
            assert_only_bad(&app, body, &scene, json!(without), name, &what).await;
        }

        for (name, schema) in body.schema["properties"].as_object().unwrap() {
            let mut wrong = full.clone();
            wrong.insert(name.clone(), wrong_type(schema));
            let what = format!("`{name}` of the wrong JSON type");
            assert_only_bad(&app, body, &scene, json!(wrong), name, &what).await;
        }
    }
}

#[tokio::test]
async fn a_body_that_is_not_one_object_with_each_field_once_is_refused_as_invalid_json() {
    let app = spawn_app().await;
    let scene = Scene::new(&app).await;
    let (_, doc) = app.get("/api/openapi.json").await;
    for body in body_schemas(&doc) {
        let full = example(&doc, &scene, &body.schema);
        let (name, value) = full.as_object().unwrap().iter().next().unwrap();
        let twice = format!("{{{name:?}: {value}, {name:?}: {value}}}");
        for sent in ["[]", "[1, 2]", "null", "7", "\"text\"", twice.as_str()] {
            let response = app
                .client
                .request(body.method.clone(), app.url(&scene.path(&body.path)))
                .bearer_auth(KEY)
                .header("content-type", "application/json")
                .body(sent.to_owned())
                .send()
                .await
                .unwrap();
            let status = response.status();
            let answer: Value = response.json().await.unwrap();
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_json")),
                "{} {} ({}): {sent} -> {answer}",
                body.method,
                body.path,
                body.name
            );
        }
    }
}
