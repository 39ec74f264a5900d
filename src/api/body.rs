//! Request bodies. Each body is one struct, `#[derive(Deserialize, ToSchema)]`: the type
//! that reads a body is the one the OpenAPI document shows, so the two cannot drift apart.
//!
//! Its fields are [`Field`]s, which never fail to deserialize: a value of the wrong JSON
//! type is kept as a message, so that [`Check`] can then turn every field into domain
//! types and report all bad fields in one 422. A body struct follows three rules:
//! - every field is `#[serde(default)]`, so an absent field is [`Field::Absent`], not a
//!   serde error;
//! - every field names its JSON type with `#[schema(value_type = ..)]`, the `T` of its
//!   `Field<T>` (a `Field` has no schema of its own, so forgetting it does not compile);
//! - the fields the parser requires are `#[schema(required)]`, and only those.
//!
//! Unknown fields are ignored. `tests/request_bodies.rs` checks each documented body
//! against the running parser.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{DeserializeOwned, Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::error::{ApiError, FieldError};

/// One field of a body as sent. Not `Debug`: it may hold a secret or a patient's answers.
#[derive(Default)]
pub enum Field<T> {
    #[default]
    Absent,
    Null,
    Given(T),
    /// Present with the wrong JSON type: what it should have been.
    Wrong(String),
}

impl<T: Wire> Field<T> {
    fn read(value: Value) -> Self {
        match value {
            Value::Null => Self::Null,
            value => T::from_json(value).map_or_else(Self::Wrong, Self::Given),
        }
    }
}

impl<T> Field<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    /// Absent or null: nothing was given.
    pub fn is_missing(&self) -> bool {
        matches!(self, Self::Absent | Self::Null)
    }
}

impl<'de, T: Wire> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Self::read)
    }
}

/// A JSON type a field can have.
pub trait Wire: Sized {
    /// The value as this type, or what is wrong with it, said of the field: "must be a
    /// string".
    fn from_json(value: Value) -> Result<Self, String>;
}

impl Wire for String {
    fn from_json(value: Value) -> Result<Self, String> {
        match value {
            Value::String(text) => Ok(text),
            _ => Err("must be a string".into()),
        }
    }
}

impl Wire for bool {
    fn from_json(value: Value) -> Result<Self, String> {
        value
            .as_bool()
            .ok_or_else(|| "must be true or false".into())
    }
}

impl Wire for i64 {
    fn from_json(value: Value) -> Result<Self, String> {
        value
            .as_i64()
            .ok_or_else(|| "must be a whole number".into())
    }
}

/// Any object (embedded data, metadata, answers).
impl Wire for Map<String, Value> {
    fn from_json(value: Value) -> Result<Self, String> {
        match value {
            Value::Object(map) => Ok(map),
            _ => Err("must be an object".into()),
        }
    }
}

/// An array whose items all have type `T`; a bad one is named by its index.
impl<T: Wire> Wire for Vec<T> {
    fn from_json(value: Value) -> Result<Self, String> {
        let Value::Array(items) = value else {
            return Err("must be an array".into());
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| T::from_json(item).map_err(|message| format!("item {i} {message}")))
            .collect()
    }
}

/// An object whose values all have type `T`; a bad one is named by its key.
impl<T: Wire> Wire for BTreeMap<String, T> {
    fn from_json(value: Value) -> Result<Self, String> {
        let Value::Object(map) = value else {
            return Err("must be an object".into());
        };
        map.into_iter()
            .map(|(key, value)| match T::from_json(value) {
                Ok(parsed) => Ok((key, parsed)),
                Err(message) => Err(format!("`{key}` {message}")),
            })
            .collect()
    }
}

/// An item read leniently, as a field is: a list of bodies reports each item's problems.
impl<T: Wire> Wire for Field<T> {
    fn from_json(value: Value) -> Result<Self, String> {
        Ok(Self::read(value))
    }
}

/// A body nested in a body (one contact of a bulk upsert), read from an object.
pub fn nested<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    match value {
        Value::Object(_) => T::deserialize(value).map_err(|e| e.to_string()),
        _ => Err("must be an object".into()),
    }
}

/// An object read as a map, for a body that looks at its keys before it picks its type
/// (the contact upsert). A key sent twice is an error, as it is for a body struct.
pub fn object_once<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Map<String, Value>, D::Error> {
    struct Once;

    impl<'de> Visitor<'de> for Once {
        type Value = Map<String, Value>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
            let mut object = Map::new();
            while let Some((key, value)) = entries.next_entry::<String, Value>()? {
                if object.contains_key(&key) {
                    return Err(A::Error::custom(format_args!("duplicate field `{key}`")));
                }
                object.insert(key, value);
            }
            Ok(object)
        }
    }

    deserializer.deserialize_map(Once)
}

/// Turns a body's fields into domain types, collecting every problem.
#[derive(Default)]
pub struct Check {
    errors: Vec<FieldError>,
}

impl Check {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// Parses a field that may be absent or null (`None`, as when it is bad; a bad field
    /// is recorded).
    pub fn optional<T, U>(
        &mut self,
        name: &str,
        field: Field<T>,
        parse: impl FnOnce(T) -> Result<U, String>,
    ) -> Option<U> {
        self.nullable(name, field, parse).flatten()
    }

    /// Like [`Self::optional`], but absence (or null) is an error.
    pub fn required<T, U>(
        &mut self,
        name: &str,
        field: Field<T>,
        parse: impl FnOnce(T) -> Result<U, String>,
    ) -> Option<U> {
        if field.is_missing() {
            self.error(name, "is required");
            return None;
        }
        self.optional(name, field, parse)
    }

    /// A field where null means something (`"secret": null` removes the secret):
    /// `Some(None)` for null, `None` when absent or bad (a bad field is recorded).
    pub fn nullable<T, U>(
        &mut self,
        name: &str,
        field: Field<T>,
        parse: impl FnOnce(T) -> Result<U, String>,
    ) -> Option<Option<U>> {
        let message = match field {
            Field::Absent => return None,
            Field::Null => return Some(None),
            Field::Given(value) => match parse(value) {
                Ok(parsed) => return Some(Some(parsed)),
                Err(message) => message,
            },
            Field::Wrong(message) => message,
        };
        self.error(name, message);
        None
    }

    /// `Ok` when no field was bad.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// A string of `min..=max` characters.
pub fn text(min: usize, max: usize) -> impl Fn(String) -> Result<String, String> {
    move |text| {
        let chars = text.chars().count();
        if chars < min || chars > max {
            return Err(format!("must be {min} to {max} characters"));
        }
        Ok(text)
    }
}

/// An object of at most `max_bytes` once serialised (embedded data, metadata).
pub fn small_object(
    max_bytes: usize,
) -> impl Fn(Map<String, Value>) -> Result<Map<String, Value>, String> {
    move |map| {
        let bytes = serde_json::to_vec(&map).map_or(usize::MAX, |json| json.len());
        if bytes > max_bytes {
            return Err(format!("must be at most {max_bytes} bytes of JSON"));
        }
        Ok(map)
    }
}

/// The `embeddedData` and `metadata` objects a response may carry (empty when absent),
/// each at most `max_bytes` of JSON.
pub fn response_context(
    check: &mut Check,
    embedded_data: Field<Map<String, Value>>,
    metadata: Field<Map<String, Value>>,
    max_bytes: usize,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut read = |name: &str, field| {
        check
            .optional(name, field, small_object(max_bytes))
            .unwrap_or_default()
    };
    (
        read("embeddedData", embedded_data),
        read("metadata", metadata),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        name: Field<String>,
        #[serde(default)]
        ids: Field<Vec<String>>,
        #[serde(default)]
        headers: Field<BTreeMap<String, String>>,
    }

    fn probe(value: Value) -> Probe {
        serde_json::from_value(value).expect("a field never fails")
    }

    #[test]
    fn a_field_tells_absent_null_given_and_wrong_apart() {
        assert!(probe(json!({})).name.is_absent());
        assert!(probe(json!({"name": null})).name.is_null());
        assert!(matches!(probe(json!({"name": "Ada"})).name, Field::Given(n) if n == "Ada"));
        assert!(
            matches!(probe(json!({"name": 7})).name, Field::Wrong(m) if m == "must be a string")
        );
    }

    #[test]
    fn a_bad_item_is_named_by_its_index_or_key() {
        let body = probe(json!({"ids": ["a", 5], "headers": {"X-A": "a", "X-B": 5}}));
        assert!(matches!(body.ids, Field::Wrong(m) if m == "item 1 must be a string"));
        assert!(matches!(body.headers, Field::Wrong(m) if m == "`X-B` must be a string"));
        assert!(
            matches!(probe(json!({"ids": "a"})).ids, Field::Wrong(m) if m == "must be an array")
        );
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let body = probe(json!({"ids": 5}));
        let mut check = Check::new();
        check.required("name", body.name, Ok);
        check.optional("ids", body.ids, Ok);
        check.optional("headers", body.headers, Ok);
        let Err(ApiError::Validation(errors)) = check.finish() else {
            panic!("two fields are bad");
        };
        assert_eq!(
            errors,
            [
                FieldError::new("name", "is required"),
                FieldError::new("ids", "must be an array")
            ]
        );
    }
}
