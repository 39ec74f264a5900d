//! Webhook routes (SPEC §3): create, list, get, update, delete.

use std::collections::{BTreeMap, HashSet};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::Caller;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiPath, JsonObject, QueryMap, paginate, path_id};
use super::fields::{self, Fields};
use super::idempotency::{Answer, Idempotency};
use super::{AppState, ListOf};
use crate::domain::ssrf::NetworkPolicy;
use crate::domain::{
    CustomHeaders, DeliveryOrder, EventType, RetryPolicy, Secret, SurveyId, WebhookId, WebhookUrl,
};
use crate::store::audit::Entry;
use crate::store::webhooks::{self, NewWebhook, Webhook, WebhookPatch};
use crate::store::{audit, surveys};
use crate::views::WebhookView;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
}

/// The create body (every field of it may be sent to update).
#[allow(dead_code)] // documentation of the body; parsing goes through `parse_fields`
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookInput {
    survey_id: Option<SurveyId>,
    /// 1 to 200 characters.
    name: String,
    /// Absolute https:// URL (http:// with HOOKD_ALLOW_HTTP), at most 2,000 characters.
    url: String,
    /// 1 to 50 distinct names from the event catalog.
    events: Vec<String>,
    /// 16 to 500 characters; null removes it on update.
    secret: Option<String>,
    /// Default true; `active` is accepted as an alias.
    is_active: Option<bool>,
    /// At most 20 custom request headers.
    headers: Option<BTreeMap<String, String>>,
    /// 0 to 10 delays in seconds, each 1 to 86,400.
    retry_policy: Option<Vec<u32>>,
    /// `concurrent` (default: up to HOOKD_MAX_IN_FLIGHT attempts at once, no order
    /// promised) or `fifo` (one at a time, in the order the events were stored).
    ordering: Option<String>,
}

fn parse_events(value: &Value) -> Result<Vec<EventType>, String> {
    let names = fields::array(value)?;
    if names.is_empty() || names.len() > 50 {
        return Err("must list 1 to 50 event types".into());
    }
    let mut seen = HashSet::new();
    names
        .iter()
        .map(|name| {
            let name = name.as_str().ok_or("event types are strings")?;
            let event = EventType::parse_subscribable(name)
                .ok_or_else(|| format!("`{name}` is not in the event catalog"))?;
            if !seen.insert(event) {
                return Err(format!("`{name}` is listed twice"));
            }
            Ok(event)
        })
        .collect()
}

fn parse_retry_policy(value: &Value) -> Result<RetryPolicy, String> {
    let delays = fields::array(value)?
        .iter()
        .map(|d| d.as_i64().ok_or("delays are whole numbers of seconds"))
        .collect::<Result<Vec<_>, _>>()?;
    RetryPolicy::parse(&delays)
}

/// Reads every webhook field present; on create, the required ones must be there.
fn parse_fields(
    body: &Map<String, Value>,
    survey_id: SurveyId,
    policy: &NetworkPolicy,
    creating: bool,
) -> ApiResult<WebhookPatch> {
    let mut f = Fields::new(body);
    if let Some(Some(given)) = f.optional("surveyId", |v| fields::string(v).map(str::to_owned))
        && given.parse::<SurveyId>().ok() != Some(survey_id)
    {
        f.error("surveyId", "must match the survey in the path");
    }
    let mut patch = WebhookPatch::default();
    let parse_url = |v: &Value| WebhookUrl::parse(fields::string(v)?, policy);
    let parse_secret = |v: &Value| Secret::parse(fields::string(v)?);
    if creating {
        patch.name = f.required("name", fields::text(1, 200));
        patch.url = f.required("url", parse_url);
        patch.events = f.required("events", parse_events);
    } else {
        patch.name = f.optional("name", fields::text(1, 200)).flatten();
        patch.url = f.optional("url", parse_url).flatten();
        patch.events = f.optional("events", parse_events).flatten();
        if f.raw("name").is_some_and(Value::is_null) {
            f.error("name", "cannot be null");
        }
    }
    patch.secret = match f.raw("secret") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(_) => f.optional("secret", parse_secret),
    };
    let active_key = if body.contains_key("isActive") {
        "isActive"
    } else {
        "active"
    };
    patch.is_active = f.optional(active_key, fields::boolean).flatten();
    patch.headers = f
        .optional("headers", |v| {
            let map = fields::object(v)?;
            let pairs = map
                .iter()
                .map(|(k, v)| {
                    v.as_str()
                        .map(|s| (k.clone(), s.to_owned()))
                        .ok_or_else(|| format!("header `{k}` must have a string value"))
                })
                .collect::<Result<BTreeMap<_, _>, _>>()?;
            CustomHeaders::parse(&pairs).map_err(|errors| {
                errors
                    .iter()
                    .map(|(name, message)| {
                        if name.is_empty() {
                            message.clone()
                        } else {
                            format!("`{name}` {message}")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        })
        .flatten();
    patch.retry_policy = f.optional("retryPolicy", parse_retry_policy).flatten();
    patch.ordering = f
        .optional("ordering", |v| {
            DeliveryOrder::parse(fields::string(v)?)
                .ok_or_else(|| "must be `concurrent` or `fifo`".to_owned())
        })
        .flatten();
    f.finish()?;
    Ok(patch)
}

fn survey_path(id: &str) -> ApiResult<SurveyId> {
    path_id(id)
}

/// Register a webhook for a survey.
#[utoipa::path(post, path = "/api/surveys/{surveyId}/webhooks", tag = "webhooks",
    params(("surveyId" = String, Path)), request_body = WebhookInput,
    responses((status = 201, body = WebhookView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_webhook(
    State(app): State<AppState>,
    caller: Caller,
    idempotency: Idempotency,
    ApiPath(survey): ApiPath<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Answer> {
    let survey_id = survey_path(&survey)?;
    app.store
        .read(move |c| surveys::require(c, survey_id))
        .await?;
    let patch = parse_fields(&body, survey_id, &app.config.network, true)?;
    let new = NewWebhook {
        survey_id,
        name: patch.name.expect("required"),
        url: patch.url.expect("required"),
        events: patch.events.expect("required"),
        secret: patch.secret.flatten(),
        headers: patch.headers.unwrap_or_default(),
        is_active: patch.is_active.unwrap_or(true),
        retry_policy: patch.retry_policy.unwrap_or_default(),
        ordering: patch.ordering.unwrap_or_default(),
    };
    let actor = caller.0.clone();
    let work = move |c: &rusqlite::Connection| {
        let webhook = webhooks::insert(c, &new)?;
        let entry = Entry {
            actor: &actor,
            action: "webhook.created",
            target_type: "webhook",
            target_id: webhook.id.to_string(),
            detail: json!({"surveyId": survey_id}),
        };
        audit::record(c, &entry, webhook.created_at)?;
        Ok(webhook)
    };
    let render = move |webhook: &Webhook| {
        let location = format!("/api/surveys/{survey_id}/webhooks/{}", webhook.id);
        Ok(Answer::json(StatusCode::CREATED, &WebhookView::from(webhook)).with_location(location))
    };
    let (webhook, answer) = idempotency.write(&app.store, work, render).await?;
    app.engine.sync(webhook.id).await;
    Ok(answer)
}

/// List a survey's webhooks.
#[utoipa::path(get, path = "/api/surveys/{surveyId}/webhooks", tag = "webhooks",
    params(("surveyId" = String, Path), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListOf<WebhookView>), (status = 404, body = ErrorBody)))]
async fn list_webhooks(
    State(app): State<AppState>,
    ApiPath(survey): ApiPath<String>,
    query: QueryMap,
) -> ApiResult<Json<ListOf<WebhookView>>> {
    let survey_id = survey_path(&survey)?;
    let page = query.page::<WebhookId>()?;
    let rows = app
        .store
        .read(move |c| webhooks::list(c, survey_id, page.cursor, page.limit + 1))
        .await?;
    let (rows, next) = paginate(rows, page.limit, |w| w.id.to_string());
    Ok(Json(ListOf {
        items: rows.iter().map(WebhookView::from).collect(),
        next_cursor: next,
    }))
}

/// Get one webhook.
#[utoipa::path(get, path = "/api/surveys/{surveyId}/webhooks/{id}", tag = "webhooks",
    params(("surveyId" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody)))]
async fn get_webhook(
    State(app): State<AppState>,
    ApiPath((survey, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<WebhookView>> {
    let (survey_id, id) = (survey_path(&survey)?, path_id(&id)?);
    let webhook = app
        .store
        .read(move |c| webhooks::get(c, survey_id, id))
        .await?;
    Ok(Json(WebhookView::from(&webhook)))
}

/// Change any subset of a webhook's fields. `"secret": null` removes the secret;
/// `isActive: true` re-enables an auto-disabled webhook and resumes its deliveries.
#[utoipa::path(patch, path = "/api/surveys/{surveyId}/webhooks/{id}", tag = "webhooks",
    params(("surveyId" = String, Path), ("id" = String, Path)), request_body = WebhookInput,
    responses((status = 200, body = WebhookView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_webhook(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((survey, id)): ApiPath<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<WebhookView>> {
    let (survey_id, id): (SurveyId, WebhookId) = (survey_path(&survey)?, path_id(&id)?);
    app.store
        .read(move |c| webhooks::get(c, survey_id, id))
        .await?;
    let patch = parse_fields(&body, survey_id, &app.config.network, false)?;
    let changed: Vec<&String> = body.keys().collect();
    let detail = json!({ "fields": changed });
    let actor = caller.0.clone();
    let overlap = app.config.secret_overlap_ms();
    let (webhook, resumed, notify) = app
        .store
        .write(move |c| {
            let (webhook, effect) = webhooks::update(c, survey_id, id, &patch, overlap)?;
            let resumed = effect.resumed;
            let notify = webhooks::notify_enabled(c, &webhook, effect, "api")?;
            let action = if resumed {
                "webhook.enabled"
            } else {
                "webhook.updated"
            };
            let entry = Entry {
                actor: &actor,
                action,
                target_type: "webhook",
                target_id: id.to_string(),
                detail: detail.clone(),
            };
            audit::record(c, &entry, webhook.updated_at)?;
            Ok((webhook, resumed, notify))
        })
        .await?;
    if resumed {
        tracing::info!(webhook_id = %id, "webhook re-enabled; resuming its deliveries");
    }
    app.engine.sync(id).await;
    app.engine.wake(notify.into_iter().collect());
    Ok(Json(WebhookView::from(&webhook)))
}

/// Delete a webhook with its pending deliveries and logs; nothing is sent to it after the 204.
#[utoipa::path(delete, path = "/api/surveys/{surveyId}/webhooks/{id}", tag = "webhooks",
    params(("surveyId" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_webhook(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((survey, id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let (survey_id, id): (SurveyId, WebhookId) = (survey_path(&survey)?, path_id(&id)?);
    let actor = caller.0.clone();
    app.store
        .write(move |c| {
            webhooks::delete(c, survey_id, id)?;
            let entry = Entry {
                actor: &actor,
                action: "webhook.deleted",
                target_type: "webhook",
                target_id: id.to_string(),
                detail: json!({}),
            };
            audit::record(c, &entry, crate::domain::time::now_ms())
        })
        .await?;
    app.engine.remove(id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Rejects ids that are not under the survey named in the path.
pub async fn require_webhook(app: &AppState, survey: &str, id: &str) -> ApiResult<Webhook> {
    let (survey_id, id): (SurveyId, WebhookId) = (survey_path(survey)?, path_id(id)?);
    app.store
        .read(move |c| webhooks::get(c, survey_id, id))
        .await
        .map_err(ApiError::from)
}
