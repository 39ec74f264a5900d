//! Operators' routes (SPEC §6, §7), behind the API key: the queue summary (the same document
//! as `hookd status --json`), the audit log, the deliveries of the last hour minute by
//! minute, and recent deliveries across webhooks with their attempts. Read-only; repairs go through
//! the existing retry and update routes, so they are audited in one place.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::Caller;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{QueryMap, paginate};
use super::{AppState, ListOf};
use crate::domain::time::{Millis, format_ms, now_ms};
use crate::domain::{DeliveryId, WebhookId};
use crate::store::deliveries::DeliveryStatus;
use crate::store::delivery_log::{self, DeliveryFilter};
use crate::store::overview::{self};
use crate::store::{StoreError, audit};
use crate::views::{AttemptView, DeliveryView, QueueView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(queue))
        .routes(routes!(audit_log))
        .routes(routes!(throughput))
        .routes(routes!(recent_deliveries))
}

/// The delivery queue: per webhook its state, deliveries by status, oldest pending age and
/// next attempt; disabled webhooks first. The same document as `hookd status --json`.
#[utoipa::path(get, path = "/api/admin/queue", tag = "admin",
    responses((status = 200, body = QueueView), (status = 401, body = ErrorBody)))]
async fn queue(State(app): State<AppState>) -> ApiResult<Json<QueueView>> {
    let now = now_ms();
    let rows = app
        .store
        .read(move |c| overview::queue_summary(c, now))
        .await?;
    Ok(Json(
        QueueView::new(&rows, now).with_writer(app.store.writer_last_minute()),
    ))
}

/// One admin action.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditView {
    pub id: i64,
    pub at: String,
    /// The key that acted: a stored key's id, `env` for `HOOKD_API_KEY`, `cli` for the
    /// command line.
    pub key_id: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// The audit log, newest first: who (which key) did what, when.
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin",
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListOf<AuditView>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn audit_log(
    State(app): State<AppState>,
    query: QueryMap,
) -> ApiResult<Json<ListOf<AuditView>>> {
    let page = query.page::<i64>()?;
    let rows = app
        .store
        .read(move |c| audit::list(c, page.cursor, page.limit + 1))
        .await?;
    let (rows, next) = paginate(rows, page.limit, |r| r.id.to_string());
    let items = rows
        .into_iter()
        .map(|r| AuditView {
            id: r.id,
            at: format_ms(r.at),
            key_id: r.key_id,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            detail: r.detail,
        })
        .collect();
    Ok(Json(ListOf {
        items,
        next_cursor: next,
    }))
}

/// Deliveries whose latest attempt started in one minute, by outcome; each delivery is
/// counted once, however many attempts it took.
#[derive(Debug, Serialize, ToSchema)]
pub struct MinuteView {
    /// Start of the minute.
    pub minute: String,
    /// Delivered (a 2xx).
    pub succeeded: u64,
    /// Failed so far and to be tried again (or being tried, or paused on a webhook that
    /// is off).
    pub retry: u64,
    /// Failed for good: the retry policy is exhausted.
    pub failed: u64,
}

/// The last 60 minutes (the current one last), every minute present.
#[derive(Debug, Serialize, ToSchema)]
pub struct ThroughputView {
    pub minutes: Vec<MinuteView>,
}

const MINUTE_MS: Millis = 60_000;
const CHART_MINUTES: i64 = 60;

/// Deliveries per minute by outcome over the last hour (the operator page's chart): each
/// delivery once, in the minute of its latest attempt, as that attempt left it.
#[utoipa::path(get, path = "/api/admin/throughput", tag = "admin",
    responses((status = 200, body = ThroughputView), (status = 401, body = ErrorBody)))]
async fn throughput(State(app): State<AppState>) -> ApiResult<Json<ThroughputView>> {
    let current = now_ms() / MINUTE_MS * MINUTE_MS;
    let first = current - (CHART_MINUTES - 1) * MINUTE_MS;
    let rows = app
        .store
        .read(move |c| overview::throughput(c, first))
        .await?;
    let minutes = (0..CHART_MINUTES)
        .map(|i| {
            let minute = first + i * MINUTE_MS;
            let row = rows.iter().find(|r| r.minute == minute);
            MinuteView {
                minute: format_ms(minute),
                succeeded: row.map_or(0, |r| r.succeeded),
                retry: row.map_or(0, |r| r.retry),
                failed: row.map_or(0, |r| r.failed),
            }
        })
        .collect();
    Ok(Json(ThroughputView { minutes }))
}

/// A delivery with its attempts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminDeliveryView {
    #[serde(flatten)]
    pub delivery: DeliveryView,
    pub attempts: Vec<AttemptView>,
}

/// Recent deliveries across every webhook, newest first, with their attempts; optionally
/// by `status` and `webhookId`.
#[utoipa::path(get, path = "/api/admin/deliveries", tag = "admin",
    params(("status" = Option<String>, Query), ("webhookId" = Option<String>, Query),
        ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListOf<AdminDeliveryView>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn recent_deliveries(
    State(app): State<AppState>,
    caller: Caller,
    query: QueryMap,
) -> ApiResult<Json<ListOf<AdminDeliveryView>>> {
    let page = query.page::<DeliveryId>()?;
    let status = match query.0.get("status").filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(DeliveryStatus::parse(text).ok_or_else(|| {
            ApiError::field("status", "must be pending, delivering, succeeded or failed")
        })?),
    };
    let webhook_id = match query.0.get("webhookId").filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(
            text.parse::<WebhookId>()
                .map_err(|_| ApiError::field("webhookId", "is not a webhook id"))?,
        ),
    };
    let filter = DeliveryFilter {
        webhook_id,
        status,
        event_type: None,
        before: page.cursor,
    };
    let (rows, mut attempts) = app
        .store
        .read(move |c| {
            let rows = delivery_log::list(c, &filter, page.limit + 1)?;
            let ids: Vec<DeliveryId> = rows.iter().map(|d| d.id).collect();
            Ok::<_, StoreError>((rows, overview::attempts_of(c, &ids)?))
        })
        .await?;
    let (rows, next) = paginate(rows, page.limit, |d| d.id.to_string());
    let items = rows
        .iter()
        .map(|d| AdminDeliveryView {
            delivery: DeliveryView::from(d),
            attempts: attempts
                .remove(&d.id)
                .unwrap_or_default()
                .iter()
                .map(|a| {
                    let mut attempt = AttemptView::from(a);
                    if !caller.role.sees_patient_data() {
                        attempt.withhold_patient_data();
                    }
                    attempt
                })
                .collect(),
        })
        .collect();
    Ok(Json(ListOf {
        items,
        next_cursor: next,
    }))
}
