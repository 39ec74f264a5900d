//! Reading a JSON object's fields into domain types while collecting every problem, so a
//! 422 lists all bad fields at once.

use serde_json::{Map, Value};

use super::error::{ApiError, FieldError};

pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    pub fn new(object: &'a Map<String, Value>) -> Self {
        Self {
            object,
            errors: Vec::new(),
        }
    }

    pub fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// The raw value of a present field (null counts as present).
    pub fn raw(&self, name: &str) -> Option<&'a Value> {
        self.object.get(name)
    }

    /// Parses a field with `parse` if present and not null. `Some(None)`: absent or null.
    /// `None`: present but invalid (the error is recorded).
    pub fn optional<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&'a Value) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match self.object.get(name) {
            None | Some(Value::Null) => Some(None),
            Some(value) => match parse(value) {
                Ok(parsed) => Some(Some(parsed)),
                Err(message) => {
                    self.error(name, message);
                    None
                }
            },
        }
    }

    /// Like [`Self::optional`], but absence is an error.
    pub fn required<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&'a Value) -> Result<T, String>,
    ) -> Option<T> {
        match self.optional(name, parse) {
            Some(Some(value)) => Some(value),
            Some(None) => {
                self.error(name, "is required");
                None
            }
            None => None,
        }
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
pub fn text(min: usize, max: usize) -> impl Fn(&Value) -> Result<String, String> {
    move |value| {
        let text = value.as_str().ok_or("must be a string")?;
        let chars = text.chars().count();
        if chars < min || chars > max {
            return Err(format!("must be {min} to {max} characters"));
        }
        Ok(text.to_owned())
    }
}

pub fn string(value: &Value) -> Result<&str, String> {
    value.as_str().ok_or_else(|| "must be a string".to_owned())
}

pub fn boolean(value: &Value) -> Result<bool, String> {
    value
        .as_bool()
        .ok_or_else(|| "must be true or false".to_owned())
}

pub fn object(value: &Value) -> Result<Map<String, Value>, String> {
    value
        .as_object()
        .cloned()
        .ok_or_else(|| "must be an object".to_owned())
}

/// An object of at most `max_bytes` once serialised (embedded data, metadata).
pub fn small_object(max_bytes: usize) -> impl Fn(&Value) -> Result<Map<String, Value>, String> {
    move |value| {
        let map = object(value)?;
        if value.to_string().len() > max_bytes {
            return Err(format!("must be at most {max_bytes} bytes of JSON"));
        }
        Ok(map)
    }
}

pub fn array(value: &Value) -> Result<&Vec<Value>, String> {
    value
        .as_array()
        .ok_or_else(|| "must be an array".to_owned())
}

/// The `embeddedData` and `metadata` objects a response may carry (empty when absent),
/// each at most `max_bytes` of JSON.
pub fn response_context(
    f: &mut Fields<'_>,
    max_bytes: usize,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut read = |name: &str| {
        f.optional(name, small_object(max_bytes))
            .flatten()
            .unwrap_or_default()
    };
    (read("embeddedData"), read("metadata"))
}
