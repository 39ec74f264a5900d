//! Webhook routes (SPEC §3): create, list, get, update, delete.

mod input;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use self::input::{WebhookChanges, WebhookInput, parse_fields};
use super::auth::Caller;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiPath, Body, QueryMap, paginate, path_id};
use super::idempotency::{Answer, Idempotency};
use super::{AppState, ListOf};
use crate::domain::{SurveyId, WebhookId};
use crate::store::audit::Entry;
use crate::store::webhooks::{self, NewWebhook, Webhook};
use crate::store::{audit, surveys};
use crate::views::WebhookView;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
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
    Body(body): Body<WebhookInput>,
) -> ApiResult<Answer> {
    let survey_id = survey_path(&survey)?;
    app.store
        .read(move |c| surveys::require(c, survey_id))
        .await?;
    let patch = parse_fields(body, survey_id, &app.config.network, true)?;
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
    let actor = caller.actor.clone();
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
    params(("surveyId" = String, Path), ("id" = String, Path)), request_body = WebhookChanges,
    responses((status = 200, body = WebhookView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_webhook(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((survey, id)): ApiPath<(String, String)>,
    Body(WebhookChanges(body)): Body<WebhookChanges>,
) -> ApiResult<Json<WebhookView>> {
    let (survey_id, id): (SurveyId, WebhookId) = (survey_path(&survey)?, path_id(&id)?);
    app.store
        .read(move |c| webhooks::get(c, survey_id, id))
        .await?;
    let detail = json!({ "fields": body.sent() });
    let patch = parse_fields(body, survey_id, &app.config.network, false)?;
    let actor = caller.actor.clone();
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
    app.engine.wake(notify.queues().collect());
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
    let actor = caller.actor.clone();
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
