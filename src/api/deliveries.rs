//! Delivery routes (SPEC §3): test a webhook, list and inspect its deliveries, retry one,
//! replay since a time.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::Caller;
use super::body::{Check, Field};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiPath, Body, QueryMap, paginate, path_id};
use super::idempotency::{Answer, Idempotency};
use super::webhooks::require_webhook;
use super::{AppState, ListOf};
use crate::domain::time::{format_ms, now_ms, parse_rfc3339};
use crate::domain::{DeliveryId, EventType};
use crate::store;
use crate::store::audit::{self, Entry};
use crate::store::deliveries::DeliveryStatus;
use crate::store::delivery_log::{self, Delivery, DeliveryFilter};
use crate::store::repairs;
use crate::views::{AttemptView, DeliveryDetail, DeliveryView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(test_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(retry_delivery))
        .routes(routes!(replay))
}

async fn detail(app: &AppState, id: DeliveryId) -> ApiResult<DeliveryDetail> {
    Ok(app.store.read(move |c| detail_in(c, id)).await?)
}

/// A delivery's detail, read on `conn` (inside a write, it sees that write).
fn detail_in(conn: &rusqlite::Connection, id: DeliveryId) -> store::Result<DeliveryDetail> {
    let delivery = delivery_log::find(conn, id)?.ok_or(store::StoreError::NotFound)?;
    let payload = delivery_log::payload(conn, delivery.event_id)?;
    let attempts = delivery_log::attempts(conn, id)?;
    let payload = payload
        .and_then(|p| serde_json::from_str(&p).ok())
        .unwrap_or(Value::Null);
    Ok(DeliveryDetail {
        delivery: DeliveryView::from(&delivery),
        payload: Some(payload),
        attempts: attempts.iter().map(AttemptView::from).collect(),
    })
}

/// Send a `webhook.test` event now (also to an inactive webhook) and answer with its one
/// attempt. Test deliveries are recorded, never retried.
#[utoipa::path(post, path = "/api/surveys/{surveyId}/webhooks/{id}/test", tag = "deliveries",
    params(("surveyId" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = DeliveryDetail), (status = 404, body = ErrorBody)))]
async fn test_webhook(
    State(app): State<AppState>,
    caller: Caller,
    idempotency: Idempotency,
    ApiPath((survey, id)): ApiPath<(String, String)>,
) -> ApiResult<Answer> {
    let webhook = require_webhook(&app, &survey, &id).await?;
    let keeper = idempotency.keeper();
    // The answer is the recorded attempt: rendered (and kept, with a key) where the attempt
    // is recorded, and audited there with its outcome.
    let answer = app
        .engine
        .send_test(&webhook, move |c, delivery_id| {
            let detail = detail_in(c, delivery_id)?;
            let entry = Entry {
                actor: &caller.actor,
                action: "webhook.tested",
                target_type: "webhook",
                target_id: webhook.id.to_string(),
                detail: json!({"deliveryId": delivery_id, "status": detail.delivery.status}),
            };
            audit::record(c, &entry, now_ms())?;
            let answer = Answer::json(StatusCode::OK, &detail);
            if let Some(keeper) = &keeper {
                keeper.keep(c, &answer)?;
            }
            Ok(answer)
        })
        .await?;
    Ok(answer)
}

/// A webhook's deliveries, newest first, optionally by `status` and `eventType`.
#[utoipa::path(get, path = "/api/surveys/{surveyId}/webhooks/{id}/deliveries", tag = "deliveries",
    params(("surveyId" = String, Path), ("id" = String, Path), ("status" = Option<String>, Query),
        ("eventType" = Option<String>, Query), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListOf<DeliveryView>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_deliveries(
    State(app): State<AppState>,
    ApiPath((survey, id)): ApiPath<(String, String)>,
    query: QueryMap,
) -> ApiResult<Json<ListOf<DeliveryView>>> {
    let webhook = require_webhook(&app, &survey, &id).await?;
    let page = query.page::<DeliveryId>()?;
    let status = match query.0.get("status") {
        None => None,
        Some(text) => Some(DeliveryStatus::parse(text).ok_or_else(|| {
            ApiError::field("status", "must be pending, delivering, succeeded or failed")
        })?),
    };
    let event_type = match query.0.get("eventType") {
        None => None,
        Some(text) => Some(
            EventType::parse(text)
                .ok_or_else(|| ApiError::field("eventType", "is not in the event catalog"))?
                .as_str()
                .to_owned(),
        ),
    };
    let filter = DeliveryFilter {
        webhook_id: Some(webhook.id),
        status,
        event_type,
        before: page.cursor,
    };
    let rows = app
        .store
        .read(move |c| delivery_log::list(c, &filter, page.limit + 1))
        .await?;
    let (rows, next) = paginate(rows, page.limit, |d| d.id.to_string());
    Ok(Json(ListOf {
        items: rows.iter().map(DeliveryView::from).collect(),
        next_cursor: next,
    }))
}

/// One delivery with its payload and attempts.
#[utoipa::path(get, path = "/api/surveys/{surveyId}/webhooks/{id}/deliveries/{deliveryId}", tag = "deliveries",
    params(("surveyId" = String, Path), ("id" = String, Path), ("deliveryId" = String, Path)),
    responses((status = 200, body = DeliveryDetail), (status = 404, body = ErrorBody)))]
async fn get_delivery(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((survey, id, delivery)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<DeliveryDetail>> {
    let webhook = require_webhook(&app, &survey, &id).await?;
    let delivery_id: DeliveryId = path_id(&delivery)?;
    app.store
        .read(move |c| delivery_log::get(c, webhook.id, delivery_id))
        .await?;
    let mut detail = detail(&app, delivery_id).await?;
    if !caller.role.sees_patient_data() {
        detail.withhold_patient_data();
    }
    Ok(Json(detail))
}

/// Send a finished delivery again now: same delivery id, byte-identical body.
#[utoipa::path(post, path = "/api/surveys/{surveyId}/webhooks/{id}/deliveries/{deliveryId}/retry", tag = "deliveries",
    params(("surveyId" = String, Path), ("id" = String, Path), ("deliveryId" = String, Path)),
    responses((status = 202, body = DeliveryView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn retry_delivery(
    State(app): State<AppState>,
    caller: Caller,
    idempotency: Idempotency,
    ApiPath((survey, id, delivery)): ApiPath<(String, String, String)>,
) -> ApiResult<Answer> {
    let webhook = require_webhook(&app, &survey, &id).await?;
    let delivery_id: DeliveryId = path_id(&delivery)?;
    let actor = caller.actor.clone();
    let work = move |c: &rusqlite::Connection| {
        delivery_log::get(c, webhook.id, delivery_id)?;
        let now = now_ms();
        let retried = repairs::retry(c, delivery_id, now)?;
        let entry = Entry {
            actor: &actor,
            action: "delivery.retried",
            target_type: "delivery",
            target_id: delivery_id.to_string(),
            detail: json!({"webhookId": webhook.id}),
        };
        audit::record(c, &entry, now)?;
        Ok(retried)
    };
    let render = |retried: &Delivery| {
        Ok(Answer::json(
            StatusCode::ACCEPTED,
            &DeliveryView::from(retried),
        ))
    };
    let (_, answer) = idempotency.write(&app.store, work, render).await?;
    app.engine.wake(vec![webhook.id]);
    Ok(answer)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    queued: u64,
}

/// The replay body.
#[derive(Deserialize, ToSchema)]
pub struct ReplayInput {
    /// RFC 3339 time: events stored since then are queued again.
    #[serde(default)]
    #[schema(value_type = String, format = DateTime, required)]
    since: Field<String>,
}

/// Queue every stored event since a time that this webhook subscribes to and has not
/// received (recovery after an outage or an auto-disable).
#[utoipa::path(post, path = "/api/surveys/{surveyId}/webhooks/{id}/replay", tag = "deliveries",
    params(("surveyId" = String, Path), ("id" = String, Path)), request_body = ReplayInput,
    responses((status = 202, body = Queued), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn replay(
    State(app): State<AppState>,
    caller: Caller,
    idempotency: Idempotency,
    ApiPath((survey, id)): ApiPath<(String, String)>,
    Body(body): Body<ReplayInput>,
) -> ApiResult<Answer> {
    let webhook = require_webhook(&app, &survey, &id).await?;
    let mut c = Check::new();
    let since = c.required("since", body.since, |text| {
        parse_rfc3339(&text).ok_or_else(|| "must be an RFC 3339 time".to_owned())
    });
    c.finish()?;
    let since = since.expect("required");
    let actor = caller.actor.clone();
    let webhook_id = webhook.id;
    let work = move |c: &rusqlite::Connection| {
        let now = now_ms();
        let queued = repairs::replay(c, &webhook, since, now)?;
        let entry = Entry {
            actor: &actor,
            action: "webhook.replayed",
            target_type: "webhook",
            target_id: webhook.id.to_string(),
            detail: json!({"since": format_ms(since), "queued": queued}),
        };
        audit::record(c, &entry, now)?;
        Ok(queued)
    };
    let render = |queued: &u64| {
        Ok(Answer::json(
            StatusCode::ACCEPTED,
            &Queued { queued: *queued },
        ))
    };
    let (_, answer) = idempotency.write(&app.store, work, render).await?;
    app.engine.wake(vec![webhook_id]);
    Ok(answer)
}
