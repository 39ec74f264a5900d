//! The upsert body (SPEC §5): one contact, or `{"contacts": [..]}`; each contact's fields
//! validated and normalised.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::api::body::{Check, Field, Wire, nested, object_once, small_object, text};
use crate::api::error::ApiResult;
use crate::store::contacts::ContactInput;

/// Most bytes of JSON in a contact's attributes.
const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;

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
    /// When true, invitations are made but no email or SMS is sent (default false;
    /// left out, the stored value stays).
    #[serde(default)]
    #[schema(value_type = bool)]
    do_not_contact: Field<bool>,
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
    pub contacts: Field<Vec<Field<ContactBody>>>,
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
        let object = object_once(deserializer)?;
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

/// Reads one contact's fields; every bad field is reported.
pub fn parse_contact(body: ContactBody) -> ApiResult<ContactInput> {
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
    let do_not_contact = c.optional("doNotContact", body.do_not_contact, Ok);
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
        do_not_contact,
    })
}

fn external_id(text: String) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > 200 {
        return Err("must be 1 to 200 characters".into());
    }
    Ok(text.to_owned())
}

/// An address hookd can send to ([`crate::domain::email::is_address`]), trimmed.
fn email(text: String) -> Result<String, String> {
    let text = text.trim();
    if crate::domain::email::is_address(text) {
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
    fn emails_are_trimmed_and_checked_as_the_mailer_will_take_them() {
        assert_eq!(
            email(" Ada@Example.org ".into()).unwrap(),
            "Ada@Example.org"
        );
        for wrong in ["ada", "ada@org", "a b@x.org", "ada;x@clinic.example"] {
            assert!(email(wrong.into()).is_err(), "{wrong}");
        }
    }
}
