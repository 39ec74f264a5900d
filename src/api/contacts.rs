//! Directory routes (SPEC §5): upsert contacts one by one or in bulk, read one, search.
//! Contact fields are validated and normalised here; matching lives in the store.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, ApiResult, ErrorBody, FieldError};
use super::extract::{ApiPath, JsonObject, QueryMap, paginate, path_id};
use super::fields::{self, Fields};
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

/// One contact to upsert (or `{"contacts": [..]}` with up to 1,000 of them).
#[allow(dead_code)] // documentation of the body
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactInputDoc {
    /// The HIS's patient number; matched first. 1 to 200 characters.
    external_id: Option<String>,
    /// Matched case-insensitively when no externalId matched.
    email: Option<String>,
    /// Matched when neither externalId nor email did; stored as `+` and digits.
    phone: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    /// Merged into the stored attributes; a `null` value removes that attribute.
    #[schema(value_type = Object)]
    attributes: Option<Value>,
}

/// Upsert a contact (matched by externalId, else email, else phone), or up to 1,000 in
/// one all-or-nothing transaction with `{"contacts": [..]}`.
#[utoipa::path(post, path = "/api/directory/contacts/upsert", tag = "contacts",
    request_body = ContactInputDoc,
    responses((status = 200, description = "updated (or the bulk results)", body = UpsertView),
        (status = 201, description = "created", body = UpsertView),
        (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn upsert_contacts(
    State(app): State<AppState>,
    idempotency: Idempotency,
    JsonObject(body): JsonObject,
) -> ApiResult<Answer> {
    if let Some(items) = body.get("contacts") {
        return upsert_bulk(app, idempotency, items).await;
    }
    let input = parse_contact(&body)?;
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

async fn upsert_bulk(app: AppState, idempotency: Idempotency, items: &Value) -> ApiResult<Answer> {
    let items = fields::array(items).map_err(|m| ApiError::field("contacts", m))?;
    if items.is_empty() || items.len() > MAX_BULK {
        return Err(ApiError::field(
            "contacts",
            format!("must have 1 to {MAX_BULK} contacts"),
        ));
    }
    let mut inputs = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let parsed = match item.as_object() {
            Some(object) => parse_contact(object),
            None => Err(ApiError::field("", "must be an object")),
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

/// Names a field of the `i`th contact of a bulk body.
/// A key that already belongs to another contact, as a field error.
fn conflict_error((field, message): contacts::KeyConflict) -> FieldError {
    FieldError::new(field, message)
}

fn item_error(i: usize, error: FieldError) -> FieldError {
    let field = if error.field.is_empty() {
        format!("contacts[{i}]")
    } else {
        format!("contacts[{i}].{}", error.field)
    };
    FieldError::new(field, error.message)
}

/// Reads one contact's fields; every bad field is reported.
fn parse_contact(body: &Map<String, Value>) -> ApiResult<ContactInput> {
    let mut f = Fields::new(body);
    let external_id = f.optional("externalId", external_id);
    let email = f.optional("email", email);
    let phone = f.optional("phone", phone);
    let first_name = f.optional("firstName", fields::text(0, 200));
    let last_name = f.optional("lastName", fields::text(0, 200));
    let attributes = f.optional("attributes", fields::small_object(MAX_ATTRIBUTES_BYTES));
    if let (Some(None), Some(None), Some(None)) = (&external_id, &email, &phone) {
        for field in ["externalId", "email", "phone"] {
            f.error(field, "one of externalId, email or phone is required");
        }
    }
    f.finish()?;
    Ok(ContactInput {
        external_id: external_id.flatten(),
        email: email.flatten(),
        phone: phone.flatten(),
        first_name: first_name.flatten(),
        last_name: last_name.flatten(),
        attributes: attributes.flatten(),
    })
}

fn external_id(value: &Value) -> Result<String, String> {
    let text = fields::string(value)?.trim();
    if text.is_empty() || text.chars().count() > 200 {
        return Err("must be 1 to 200 characters".into());
    }
    Ok(text.to_owned())
}

/// A plausible address: one `@` between a non-empty local part and a domain with a dot,
/// no spaces. Deliverability is the mail gateway's business.
fn email(value: &Value) -> Result<String, String> {
    let text = fields::string(value)?.trim();
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
fn phone(value: &Value) -> Result<String, String> {
    let text = fields::string(value)?.trim();
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
    use serde_json::json;

    #[test]
    fn phones_are_kept_as_plus_and_digits() {
        assert_eq!(phone(&json!("+41 (79) 123-45.67")).unwrap(), "+41791234567");
        assert_eq!(phone(&json!("0791234567")).unwrap(), "0791234567");
        assert!(phone(&json!("call me")).is_err());
        assert!(phone(&json!("+1")).is_err());
    }

    #[test]
    fn emails_need_a_local_part_and_a_domain() {
        assert_eq!(
            email(&json!(" Ada@Example.org ")).unwrap(),
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
            assert!(email(&json!(wrong)).is_err(), "{wrong}");
        }
    }
}
