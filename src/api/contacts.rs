//! Directory routes (SPEC §5): upsert contacts one by one or in bulk, read one, search.
//! Contact fields are validated and normalised here ([`input`]); matching lives in the
//! store.

mod input;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use self::input::{ContactBatch, ContactUpsert, parse_contact};
use super::body::{Check, Field};
use super::error::{ApiError, ApiResult, ErrorBody, FieldError};
use super::extract::{ApiPath, Body, QueryMap, paginate, path_id};
use super::idempotency::{Answer, Idempotency};
use super::{AppState, ListOf};
use crate::domain::ContactId;
use crate::domain::time::{format_ms, now_ms};
use crate::store::contacts::{self, Contact, Upserted};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upsert_contacts))
        .routes(routes!(list_contacts))
        .routes(routes!(get_contact))
}

/// Most contacts in one bulk upsert.
pub const MAX_BULK: usize = 1000;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactView {
    id: ContactId,
    external_id: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    #[schema(value_type = Object)]
    attributes: Map<String, Value>,
    /// Invited, but never sent an email or SMS.
    do_not_contact: bool,
    created_at: String,
    updated_at: String,
}

impl From<Contact> for ContactView {
    fn from(c: Contact) -> Self {
        Self {
            id: c.id,
            external_id: c.external_id,
            email: c.email,
            phone: c.phone,
            first_name: c.first_name,
            last_name: c.last_name,
            attributes: c.attributes,
            do_not_contact: c.do_not_contact,
            created_at: format_ms(c.created_at),
            updated_at: format_ms(c.updated_at),
        }
    }
}

/// The outcome of one upsert.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpsertView {
    contact: ContactView,
    /// True when no contact matched and this one was made.
    created: bool,
}

impl From<&Upserted> for UpsertView {
    fn from(u: &Upserted) -> Self {
        Self {
            contact: u.contact.clone().into(),
            created: u.created,
        }
    }
}

/// The bulk outcome: one result per item, in the order sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkUpsertView {
    items: Vec<UpsertView>,
}

/// Upsert a contact (matched by externalId, else email, else phone), or up to 1,000 in
/// one all-or-nothing transaction with `{"contacts": [..]}`.
#[utoipa::path(post, path = "/api/directory/contacts/upsert", tag = "contacts",
    request_body = ContactUpsert,
    responses((status = 200, description = "updated (or the bulk results)", body = UpsertView),
        (status = 201, description = "created", body = UpsertView),
        (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn upsert_contacts(
    State(app): State<AppState>,
    idempotency: Idempotency,
    Body(body): Body<ContactUpsert>,
) -> ApiResult<Answer> {
    let body = match body {
        ContactUpsert::Batch(batch) => return upsert_bulk(app, idempotency, batch).await,
        ContactUpsert::One(body) => body,
    };
    let input = parse_contact(body)?;
    let work = move |c: &rusqlite::Connection| contacts::upsert(c, &input, now_ms());
    let render = |outcome: &Result<Upserted, Vec<contacts::KeyConflict>>| {
        let upserted = outcome.as_ref().map_err(|conflicts| {
            ApiError::Validation(conflicts.iter().cloned().map(conflict_error).collect())
        })?;
        let view = UpsertView::from(upserted);
        if !upserted.created {
            return Ok(Answer::json(StatusCode::OK, &view));
        }
        let location = format!("/api/directory/contacts/{}", upserted.contact.id);
        Ok(Answer::json(StatusCode::CREATED, &view).with_location(location))
    };
    let (_, answer) = idempotency.write(&app.store, work, render).await?;
    Ok(answer)
}

async fn upsert_bulk(
    app: AppState,
    idempotency: Idempotency,
    batch: ContactBatch,
) -> ApiResult<Answer> {
    let mut c = Check::new();
    let items = c.required("contacts", batch.contacts, Ok);
    c.finish()?;
    let items = items.expect("required");
    if items.is_empty() || items.len() > MAX_BULK {
        return Err(ApiError::field(
            "contacts",
            format!("must have 1 to {MAX_BULK} contacts"),
        ));
    }
    let mut inputs = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let parsed = match item {
            Field::Given(body) => parse_contact(body),
            Field::Wrong(message) => Err(ApiError::field("", message)),
            Field::Absent | Field::Null => Err(ApiError::field("", "must be an object")),
        };
        match parsed {
            Ok(input) => inputs.push(input),
            Err(ApiError::Validation(found)) => {
                errors.extend(found.into_iter().map(|e| item_error(i, e)));
            }
            Err(other) => return Err(other),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let work = move |c: &rusqlite::Connection| contacts::upsert_all(c, &inputs, now_ms());
    let render = |outcome: &contacts::BulkOutcome| {
        let done = outcome.as_ref().map_err(|conflicts| {
            ApiError::Validation(
                conflicts
                    .iter()
                    .cloned()
                    .map(|(i, conflict)| item_error(i, conflict_error(conflict)))
                    .collect(),
            )
        })?;
        let items = done.iter().map(UpsertView::from).collect();
        Ok(Answer::json(StatusCode::OK, &BulkUpsertView { items }))
    };
    let (_, answer) = idempotency.write(&app.store, work, render).await?;
    Ok(answer)
}

/// A key that already belongs to another contact, as a field error.
fn conflict_error((field, message): contacts::KeyConflict) -> FieldError {
    FieldError::new(field, message)
}

/// Names a field of the `i`th contact of a bulk body.
fn item_error(i: usize, error: FieldError) -> FieldError {
    let field = if error.field.is_empty() {
        format!("contacts[{i}]")
    } else {
        format!("contacts[{i}].{}", error.field)
    };
    FieldError::new(field, error.message)
}

/// Search contacts.
#[utoipa::path(get, path = "/api/directory/contacts", tag = "contacts",
    params(("q" = Option<String>, Query, description = "part of a name, email, phone or externalId"),
        ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListOf<ContactView>), (status = 422, body = ErrorBody)))]
async fn list_contacts(
    State(app): State<AppState>,
    query: QueryMap,
) -> ApiResult<Json<ListOf<ContactView>>> {
    let page = query.page::<ContactId>()?;
    let q = query
        .0
        .get("q")
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty());
    if q.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::field("q", "must be at most 200 characters"));
    }
    let rows = app
        .store
        .read(move |c| contacts::search(c, q.as_deref(), page.cursor, page.limit + 1))
        .await?;
    let (rows, next) = paginate(rows, page.limit, |c| c.id.to_string());
    Ok(Json(ListOf {
        items: rows.into_iter().map(ContactView::from).collect(),
        next_cursor: next,
    }))
}

/// Get a contact.
#[utoipa::path(get, path = "/api/directory/contacts/{contactId}", tag = "contacts",
    params(("contactId" = String, Path)),
    responses((status = 200, body = ContactView), (status = 404, body = ErrorBody)))]
async fn get_contact(
    State(app): State<AppState>,
    ApiPath(contact): ApiPath<String>,
) -> ApiResult<Json<ContactView>> {
    let id: ContactId = path_id(&contact)?;
    let contact = app.store.read(move |c| contacts::get(c, id)).await?;
    Ok(Json(contact.into()))
}
