//! Event bodies (SPEC §4), serialised once when the event happens; every attempt and every
//! retry sends these exact bytes.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::time::{Millis, format_ms};
use crate::domain::{ContactId, EventId, EventType, ResponseId, SurveyId, WebhookId};
use crate::store::deliveries::NewEvent;
use crate::store::surveys::Response;
use crate::store::to_json_with_room;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a, D: Serialize> {
    survey_id: SurveyId,
    event_type: &'a str,
    event_id: EventId,
    timestamp: String,
    data: D,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Completed<'a> {
    response_id: ResponseId,
    contact_id: Option<ContactId>,
    completed_at: String,
    answers: &'a Map<String, Value>,
    embedded_data: &'a Map<String, Value>,
    metadata: &'a Map<String, Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Started<'a> {
    response_id: ResponseId,
    contact_id: Option<ContactId>,
    started_at: String,
    embedded_data: &'a Map<String, Value>,
    metadata: &'a Map<String, Value>,
}

fn event<D: Serialize>(
    survey_id: SurveyId,
    event_type: EventType,
    at: Millis,
    data: D,
) -> NewEvent {
    let id = EventId::new();
    let envelope = Envelope {
        survey_id,
        event_type: event_type.as_str(),
        event_id: id,
        timestamp: format_ms(at),
        data,
    };
    NewEvent {
        id,
        survey_id,
        event_type,
        payload: to_json_with_room(&envelope),
        created_at: at,
    }
}

/// `survey.response_completed` for a response that has just completed.
pub fn response_completed(response: &Response, at: Millis) -> NewEvent {
    let data = Completed {
        response_id: response.id,
        contact_id: response.contact_id,
        completed_at: format_ms(response.completed_at.unwrap_or(at)),
        answers: &response.answers,
        embedded_data: &response.embedded_data,
        metadata: &response.metadata,
    };
    event(response.survey_id, EventType::ResponseCompleted, at, data)
}

/// `survey.response_started` for a response saved for the first time.
pub fn response_started(response: &Response, at: Millis) -> NewEvent {
    let data = Started {
        response_id: response.id,
        contact_id: response.contact_id,
        started_at: format_ms(response.started_at),
        embedded_data: &response.embedded_data,
        metadata: &response.metadata,
    };
    event(response.survey_id, EventType::ResponseStarted, at, data)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Test {
    webhook_id: WebhookId,
    message: &'static str,
}

/// `webhook.test` for the test route.
pub fn webhook_test(webhook_id: WebhookId, survey_id: SurveyId, at: Millis) -> NewEvent {
    let data = Test {
        webhook_id,
        message: "This is a test delivery from hookd.",
    };
    event(survey_id, EventType::WebhookTest, at, data)
}
