//! Webhook rows: registration, changes, and the engine's view of who subscribes to what.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Result, StoreError, from_json, to_json};
use crate::domain::time::{Millis, now_ms};
use crate::domain::{
    CustomHeaders, DeliveryOrder, EventType, RetryPolicy, Secret, SigningSecrets, SurveyId,
    WebhookId, WebhookUrl,
};

/// Most webhooks a survey may have.
pub const MAX_PER_SURVEY: i64 = 10;

/// A webhook as stored.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: WebhookId,
    pub survey_id: SurveyId,
    pub name: String,
    /// As registered; parsed again with the current policy before each request.
    pub url: String,
    pub events: Vec<EventType>,
    pub secret: Option<Secret>,
    /// The replaced secret and when it stops signing.
    pub previous_secret: Option<(Secret, Millis)>,
    pub headers: CustomHeaders,
    pub is_active: bool,
    pub retry_policy: RetryPolicy,
    pub consecutive_failures: u32,
    pub disabled_at: Option<Millis>,
    pub disabled_reason: Option<String>,
    pub ordering: DeliveryOrder,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Webhook {
    /// The secrets as stored; which of them sign is decided at send time.
    pub fn signing_secrets(&self) -> SigningSecrets {
        SigningSecrets {
            current: self.secret.clone(),
            previous: self.previous_secret.clone(),
        }
    }
}

/// A webhook to register, already validated.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub survey_id: SurveyId,
    pub name: String,
    pub url: WebhookUrl,
    pub events: Vec<EventType>,
    pub secret: Option<Secret>,
    pub headers: CustomHeaders,
    pub is_active: bool,
    pub retry_policy: RetryPolicy,
    pub ordering: DeliveryOrder,
}

/// A partial update; `None` leaves a field as it is. `secret: Some(None)` removes it.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub name: Option<String>,
    pub url: Option<WebhookUrl>,
    pub events: Option<Vec<EventType>>,
    pub secret: Option<Option<Secret>>,
    pub headers: Option<CustomHeaders>,
    pub is_active: Option<bool>,
    pub retry_policy: Option<RetryPolicy>,
    pub ordering: Option<DeliveryOrder>,
}

const COLUMNS: &str = "id, survey_id, name, url, events, secret, previous_secret, \
    previous_secret_expires_at, headers, is_active, retry_policy, consecutive_failures, \
    disabled_at, disabled_reason, created_at, updated_at, ordering";

fn from_row(row: &Row<'_>) -> rusqlite::Result<(Webhook, [String; 3])> {
    let previous: Option<String> = row.get(6)?;
    let previous_until: Option<Millis> = row.get(7)?;
    Ok((
        Webhook {
            id: row.get(0)?,
            survey_id: row.get(1)?,
            name: row.get(2)?,
            url: row.get(3)?,
            events: Vec::new(),
            secret: row.get::<_, Option<String>>(5)?.map(Secret::from_stored),
            previous_secret: previous
                .zip(previous_until)
                .map(|(s, t)| (Secret::from_stored(s), t)),
            headers: CustomHeaders::default(),
            is_active: row.get(9)?,
            retry_policy: RetryPolicy::default(),
            consecutive_failures: row.get(11)?,
            disabled_at: row.get(12)?,
            disabled_reason: row.get(13)?,
            ordering: row.get(16)?,
            created_at: row.get(14)?,
            updated_at: row.get(15)?,
        },
        [row.get(4)?, row.get(8)?, row.get(10)?],
    ))
}

/// Finishes a row: decodes its JSON columns.
fn decode((mut hook, [events, headers, policy]): (Webhook, [String; 3])) -> Result<Webhook> {
    let names: Vec<String> = from_json(&events)?;
    hook.events = names.iter().filter_map(|n| EventType::parse(n)).collect();
    hook.headers = CustomHeaders::from_stored(from_json(&headers)?);
    hook.retry_policy = RetryPolicy::from_stored(from_json(&policy)?);
    Ok(hook)
}

fn query(conn: &Connection, filter: &str, params: impl rusqlite::Params) -> Result<Vec<Webhook>> {
    let sql = format!("SELECT {COLUMNS} FROM webhooks {filter}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params, from_row)?;
    rows.map(|row| decode(row?)).collect()
}

fn event_names(events: &[EventType]) -> String {
    to_json(&events.iter().map(|e| e.as_str()).collect::<Vec<_>>())
}

/// Registers a webhook; 409 past [`MAX_PER_SURVEY`], not found for an unknown survey.
pub fn insert(conn: &Connection, new: &NewWebhook) -> Result<Webhook> {
    super::surveys::require(conn, new.survey_id)?;
    let count: i64 = conn.query_row(
        "SELECT count(*) FROM webhooks WHERE survey_id = ?1",
        [new.survey_id],
        |row| row.get(0),
    )?;
    if count >= MAX_PER_SURVEY {
        return Err(StoreError::Conflict {
            code: "limit_exceeded",
            message: format!("a survey has at most {MAX_PER_SURVEY} webhooks"),
        });
    }
    let id = WebhookId::new();
    let now = now_ms();
    conn.prepare_cached(
        "INSERT INTO webhooks (id, survey_id, name, url, events, secret, headers, is_active, \
         retry_policy, created_at, updated_at, ordering) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11)",
    )?
    .execute(params![
        id,
        new.survey_id,
        new.name,
        new.url.as_str(),
        event_names(&new.events),
        new.secret.as_ref().map(Secret::expose),
        to_json(new.headers.as_map()),
        new.is_active,
        to_json(new.retry_policy.delays()),
        now,
        new.ordering.as_str(),
    ])?;
    get(conn, new.survey_id, id)
}

/// The webhook `id` of survey `survey_id`.
pub fn get(conn: &Connection, survey_id: SurveyId, id: WebhookId) -> Result<Webhook> {
    query(
        conn,
        "WHERE id = ?1 AND survey_id = ?2",
        params![id, survey_id],
    )?
    .pop()
    .ok_or(StoreError::NotFound)
}

/// The webhook `id`, whatever its survey.
pub fn find(conn: &Connection, id: WebhookId) -> Result<Option<Webhook>> {
    Ok(query(conn, "WHERE id = ?1", [id])?.pop())
}

/// A survey's webhooks in creation order, after the cursor.
pub fn list(
    conn: &Connection,
    survey_id: SurveyId,
    after: Option<WebhookId>,
    limit: u32,
) -> Result<Vec<Webhook>> {
    super::surveys::require(conn, survey_id)?;
    query(
        conn,
        "WHERE survey_id = ?1 AND id > coalesce(?2, X'') ORDER BY id LIMIT ?3",
        params![survey_id, after, limit],
    )
}

/// Every webhook, for operators.
pub fn list_all(conn: &Connection) -> Result<Vec<Webhook>> {
    query(conn, "ORDER BY id", [])
}

/// The active webhooks: the ones that get a delivery actor.
pub fn list_active(conn: &Connection) -> Result<Vec<Webhook>> {
    query(conn, "WHERE is_active = 1 ORDER BY id", [])
}

/// What a patch did beside changing the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateEffect {
    /// It went from inactive to active: its paused deliveries resume.
    pub resumed: bool,
    /// Its consecutive failures before the change (a re-enable resets them).
    pub failures_before: u32,
}

/// Applies a patch. A changed secret keeps the old one signing for `secret_overlap`
/// milliseconds; a removed secret (`null`) leaves no secret at all. Setting the webhook
/// inactive is an operator's switch-off: it clears a reason hookd had disabled it for, so
/// it collects no more deliveries. Re-enabling resumes its pending deliveries in the order
/// their events were stored, with a fresh retry schedule.
pub fn update(
    conn: &Connection,
    survey_id: SurveyId,
    id: WebhookId,
    patch: &WebhookPatch,
    secret_overlap: Millis,
) -> Result<(Webhook, UpdateEffect)> {
    let before = get(conn, survey_id, id)?;
    let now = now_ms();
    let name = patch.name.clone().unwrap_or_else(|| before.name.clone());
    let url = patch
        .url
        .as_ref()
        .map_or(before.url.clone(), |u| u.as_str().to_owned());
    let events = patch
        .events
        .clone()
        .unwrap_or_else(|| before.events.clone());
    let headers = patch
        .headers
        .clone()
        .unwrap_or_else(|| before.headers.clone());
    let policy = patch
        .retry_policy
        .clone()
        .unwrap_or_else(|| before.retry_policy.clone());
    let ordering = patch.ordering.unwrap_or(before.ordering);
    let (secret, previous) = match &patch.secret {
        Some(None) => (None, None),
        Some(new) if *new != before.secret => {
            let previous = before
                .secret
                .clone()
                .filter(|_| secret_overlap > 0)
                .map(|old| (old, now + secret_overlap));
            (new.clone(), previous)
        }
        _ => (before.secret.clone(), before.previous_secret.clone()),
    };
    let is_active = patch.is_active.unwrap_or(before.is_active);
    let resumed = is_active && !before.is_active;
    let (disabled_at, disabled_reason, failures) = if is_active {
        let failures = if resumed {
            0
        } else {
            before.consecutive_failures
        };
        (None, None, failures)
    } else if patch.is_active == Some(false) {
        (None, None, before.consecutive_failures)
    } else {
        (
            before.disabled_at,
            before.disabled_reason.clone(),
            before.consecutive_failures,
        )
    };
    conn.prepare_cached(
        "UPDATE webhooks SET name = ?2, url = ?3, events = ?4, secret = ?5, previous_secret = ?6, \
         previous_secret_expires_at = ?7, headers = ?8, is_active = ?9, retry_policy = ?10, \
         consecutive_failures = ?11, disabled_at = ?12, disabled_reason = ?13, updated_at = ?14, \
         ordering = ?15, \
         failures_when_disabled = CASE WHEN ?12 IS NULL THEN NULL ELSE failures_when_disabled END \
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        name,
        url,
        event_names(&events),
        secret.as_ref().map(Secret::expose),
        previous.as_ref().map(|(s, _)| s.expose()),
        previous.as_ref().map(|(_, t)| *t),
        to_json(headers.as_map()),
        is_active,
        to_json(policy.delays()),
        failures,
        disabled_at,
        disabled_reason,
        now,
        ordering.as_str(),
    ])?;
    if ordering != before.ordering {
        super::deliveries::change_order(conn, id, ordering)?;
    }
    if resumed {
        super::deliveries::resume_in_event_order(conn, id)?;
    }
    let effect = UpdateEffect {
        resumed,
        failures_before: before.consecutive_failures,
    };
    Ok((get(conn, survey_id, id)?, effect))
}

/// Re-enables a webhook by id (operators); `NotFound` if it does not exist. `by` says who
/// (`api`, `cli`) in the operations channel's notice; returns the channels notices were
/// queued to.
pub fn enable(
    conn: &Connection,
    id: WebhookId,
    by: &str,
) -> Result<(Webhook, super::notices::Notices)> {
    let hook = find(conn, id)?.ok_or(StoreError::NotFound)?;
    let patch = WebhookPatch {
        is_active: Some(true),
        ..WebhookPatch::default()
    };
    // No secret changes here, so the overlap does not matter.
    let (webhook, effect) = update(conn, hook.survey_id, id, &patch, 0)?;
    let notify = notify_enabled(conn, &webhook, effect, by)?;
    Ok((webhook, notify))
}

/// After an update: the operations channel's notice of a re-enable, if it was one.
pub fn notify_enabled(
    conn: &Connection,
    webhook: &Webhook,
    effect: UpdateEffect,
    by: &str,
) -> Result<super::notices::Notices> {
    if !effect.resumed {
        return Ok(super::notices::Notices::default());
    }
    let mut at_change = webhook.clone();
    at_change.consecutive_failures = effect.failures_before;
    super::notices::webhook_changed(
        conn,
        &at_change,
        super::notices::Change::Enabled,
        by,
        webhook.updated_at,
    )
}

/// Deletes a webhook with its deliveries and attempts (cascade).
pub fn delete(conn: &Connection, survey_id: SurveyId, id: WebhookId) -> Result<()> {
    let deleted = conn
        .prepare_cached("DELETE FROM webhooks WHERE id = ?1 AND survey_id = ?2")?
        .execute(params![id, survey_id])?;
    if deleted == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// Turns a webhook off: it keeps its pending deliveries, paused, until re-enabled.
pub fn disable(conn: &Connection, id: WebhookId, reason: &str, now: Millis) -> Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE webhooks SET is_active = 0, disabled_at = ?2, disabled_reason = ?3, updated_at = ?2, \
             failures_when_disabled = consecutive_failures WHERE id = ?1 AND is_active = 1",
        )?
        .execute(params![id, now, reason])?;
    Ok(changed > 0)
}

/// A webhook that an event is owed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscriber {
    pub id: WebhookId,
    pub ordering: DeliveryOrder,
    /// Active: its actor is woken. Disabled by hookd: the delivery waits, paused.
    pub is_active: bool,
}

/// The webhooks of a survey that get a delivery for `event_type`: the active ones and the
/// ones hookd disabled by itself (which collect paused deliveries until re-enabled), not
/// the ones an operator switched off.
pub fn subscribers(
    conn: &Connection,
    survey_id: SurveyId,
    event_type: EventType,
) -> Result<Vec<Subscriber>> {
    // `events` is a JSON array of names; a quoted name is unique in it. instr(), not LIKE:
    // a LIKE on a bound parameter makes SQLite re-prepare the statement on every call.
    let mut stmt = conn.prepare_cached(
        "SELECT id, ordering, is_active FROM webhooks WHERE survey_id = ?1 \
         AND (is_active = 1 OR disabled_reason IS NOT NULL) \
         AND instr(events, '\"' || ?2 || '\"') > 0 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![survey_id, event_type.as_str()], |row| {
        Ok(Subscriber {
            id: row.get(0)?,
            ordering: row.get(1)?,
            is_active: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Whether a survey has this webhook (for routes nested under a survey).
pub fn exists(conn: &Connection, survey_id: SurveyId, id: WebhookId) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM webhooks WHERE id = ?1 AND survey_id = ?2")?
        .query_row(params![id, survey_id], |_| Ok(()))
        .optional()?
        .is_some())
}
