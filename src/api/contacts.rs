//! Directory routes (SPEC §5): upsert contacts one by one or in bulk, read one, search.
//! Contact fields are validated and normalised here; matching lives in the store.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::body::{Check, Field, Wire, nested, small_object, text};
use super::error::{ApiError, ApiResult, ErrorBody, FieldError};
use super::extract::{ApiPath, Body, QueryMap, paginate, path_id};
use super::idempotency::{Answer, Idempotency};
use super::{AppState, ListOf};
use crate::domain::ContactId;
use crate::domain::time::{format_ms, now_ms};
use crate::store::contacts::{self, Contact, ContactInput, Upserted};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upsert_contacts))
        .routes(routes!(list_contacts))
        .routes(routes!(get_contact))
}

/// Most contacts in one bulk upsert.
pub const MAX_BULK: usize = 1000;
/// Most bytes of JSON in a contact's attributes.
const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;

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

/// One contact to upsert.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactBody {
    /// The HIS's patient number; matched first. 1 to 200 characters.
    #[serde(default)]
    #[schema(value_type = String)]
    external_id: Field<String>,
    /// Matched case-insensitively when no externalId matched.
    #[serde(default)]
    #[schema(value_type = String)]
    email: Field<String>,
    /// Matched when neither externalId nor email did; stored as `+` and digits.
    #[serde(default)]
    #[schema(value_type = String)]
    phone: Field<String>,
    /// At most 200 characters.
    #[serde(default)]
    #[schema(value_type = String)]
    first_name: Field<String>,
    /// At most 200 characters.
    #[serde(default)]
    #[schema(value_type = String)]
    last_name: Field<String>,
    /// Merged into the stored attributes; a `null` value removes that attribute. At most
    /// 16 KiB of JSON.
    #[serde(default)]
    #[schema(value_type = Object)]
    attributes: Field<Map<String, Value>>,
}

impl Wire for ContactBody {
    fn from_json(value: Value) -> Result<Self, String> {
        nested(value)
    }
}

/// Up to 1,000 contacts, upserted in one all-or-nothing transaction.
#[derive(Deserialize, ToSchema)]
pub struct ContactBatch {
    /// 1 to 1,000 contacts, each as in a single upsert.
    #[serde(default)]
    #[schema(value_type = Vec<ContactBody>, required)]
    contacts: Field<Vec<Field<ContactBody>>>,
}

/// One contact, or a batch: a body with `contacts` is a batch (its other fields are
/// ignored), any other body is one contact.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum ContactUpsert {
    Batch(ContactBatch),
    One(ContactBody),
}

impl<'de> Deserialize<'de> for ContactUpsert {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = Map::<String, Value>::deserialize(deserializer)?;
        let batch = object.contains_key("contacts");
        let object = Value::Object(object);
        let read = if batch {
            ContactBatch::deserialize(object).map(Self::Batch)
        } else {
            ContactBody::deserialize(object).map(Self::One)
        };
        read.map_err(serde::de::Error::custom)
    }
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

/// Reads one contact's fields; every bad field is reported.
fn parse_contact(body: ContactBody) -> ApiResult<ContactInput> {
    let mut c = Check::new();
    let no_key = [&body.external_id, &body.email, &body.phone]
        .iter()
        .all(|key| key.is_missing());
    let external_id = c.optional("externalId", body.external_id, external_id);
    let email = c.optional("email", body.email, email);
    let phone = c.optional("phone", body.phone, phone);
    let first_name = c.optional("firstName", body.first_name, text(0, 200));
    let last_name = c.optional("lastName", body.last_name, text(0, 200));
    let attributes = c.optional(
        "attributes",
        body.attributes,
        small_object(MAX_ATTRIBUTES_BYTES),
    );
    if no_key {
        for field in ["externalId", "email", "phone"] {
            c.error(field, "one of externalId, email or phone is required");
        }
    }
    c.finish()?;
    Ok(ContactInput {
        external_id,
        email,
        phone,
        first_name,
        last_name,
        attributes,
    })
}

fn external_id(text: String) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > 200 {
        return Err("must be 1 to 200 characters".into());
    }
    Ok(text.to_owned())
}

/// A plausible address: one `@` between a non-empty local part and a domain with a dot,
/// no spaces. Deliverability is the mail gateway's business.
fn email(text: String) -> Result<String, String> {
    let text = text.trim();
    let valid = text.len() <= 320
        && !text.contains(char::is_whitespace)
        && text.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(text.to_owned())
    } else {
        Err("is not an email address".into())
    }
}

/// A phone number, kept as an optional `+` and its digits so that `+41 79 123 45 67` and
/// `+41791234567` match; spaces, dashes, dots and parentheses are dropped.
fn phone(text: String) -> Result<String, String> {
    let text = text.trim();
    let (plus, rest) = match text.strip_prefix('+') {
        Some(rest) => ("+", rest),
        None => ("", text),
    };
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err("must be digits, optionally after a +".into()),
        }
    }
    if !(3..=20).contains(&digits.len()) {
        return Err("must have 3 to 20 digits".into());
    }
    Ok(format!("{plus}{digits}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_kept_as_plus_and_digits() {
        assert_eq!(phone("+41 (79) 123-45.67".into()).unwrap(), "+41791234567");
        assert_eq!(phone("0791234567".into()).unwrap(), "0791234567");
        assert!(phone("call me".into()).is_err());
        assert!(phone("+1".into()).is_err());
    }

    #[test]
    fn emails_need_a_local_part_and_a_domain() {
        assert_eq!(
            email(" Ada@Example.org ".into()).unwrap(),
            "Ada@Example.org"
        );
        for wrong in [
            "ada",
            "@example.org",
            "ada@",
            "a b@x.org",
            "ada@x@y.org",
            "ada@org",
        ] {
            assert!(email(wrong.into()).is_err(), "{wrong}");
        }
    }
}
