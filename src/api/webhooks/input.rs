//! The webhook bodies (SPEC §3): create, and update with any subset of the create fields.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::api::body::{Check, Field, text};
use crate::api::error::ApiResult;
use crate::domain::ssrf::NetworkPolicy;
use crate::domain::{
    CustomHeaders, DeliveryOrder, EventType, RetryPolicy, Secret, SurveyId, WebhookUrl,
};
use crate::store::webhooks::WebhookPatch;

/// The create body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookInput {
    /// If given, must be the survey in the path.
    #[serde(default)]
    #[schema(value_type = String, format = Uuid)]
    survey_id: Field<String>,
    /// 1 to 200 characters.
    #[serde(default)]
    #[schema(value_type = String, required)]
    name: Field<String>,
    /// Absolute https:// URL (http:// with HOOKD_ALLOW_HTTP), at most 2,000 characters.
    #[serde(default)]
    #[schema(value_type = String, required)]
    url: Field<String>,
    /// 1 to 50 distinct names from the event catalog.
    #[serde(default)]
    #[schema(value_type = Vec<String>, required)]
    events: Field<Vec<String>>,
    /// 16 to 500 characters; null removes it on update.
    #[serde(default)]
    #[schema(value_type = String, nullable)]
    secret: Field<String>,
    /// Default true; `active` is accepted as an alias.
    #[serde(default)]
    #[schema(value_type = bool)]
    is_active: Field<bool>,
    /// The alias of `isActive`, read when `isActive` is absent. Not a property of its own
    /// in the document, which names it in `isActive`'s description.
    #[serde(default)]
    #[schema(value_type = bool, ignore)]
    active: Field<bool>,
    /// At most 20 custom request headers.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    headers: Field<BTreeMap<String, String>>,
    /// 0 to 10 delays in seconds, each 1 to 86,400.
    #[serde(default)]
    #[schema(value_type = Vec<i64>)]
    retry_policy: Field<Vec<i64>>,
    /// `concurrent` (default: up to HOOKD_MAX_IN_FLIGHT attempts at once, no order
    /// promised) or `fifo` (one at a time, in the order the events were stored).
    #[serde(default)]
    #[schema(value_type = String)]
    ordering: Field<String>,
}

/// The update body: [`WebhookInput`] with nothing required, read with the same rules.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct WebhookChanges(pub WebhookInput);

impl PartialSchema for WebhookChanges {
    fn schema() -> RefOr<Schema> {
        let mut schema = WebhookInput::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            object.required.clear();
            object.description = Some("Any subset of the create fields.".into());
        }
        schema
    }
}

impl ToSchema for WebhookChanges {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        WebhookInput::schemas(schemas);
    }
}

impl WebhookInput {
    /// The names of the fields sent, for the audit log.
    pub fn sent(&self) -> Vec<&'static str> {
        let fields = [
            ("active", self.active.is_absent()),
            ("events", self.events.is_absent()),
            ("headers", self.headers.is_absent()),
            ("isActive", self.is_active.is_absent()),
            ("name", self.name.is_absent()),
            ("ordering", self.ordering.is_absent()),
            ("retryPolicy", self.retry_policy.is_absent()),
            ("secret", self.secret.is_absent()),
            ("surveyId", self.survey_id.is_absent()),
            ("url", self.url.is_absent()),
        ];
        fields
            .into_iter()
            .filter(|(_, absent)| !absent)
            .map(|(name, _)| name)
            .collect()
    }
}

/// Reads every webhook field sent; on create, the required ones must be there.
pub fn parse_fields(
    body: WebhookInput,
    survey_id: SurveyId,
    policy: &NetworkPolicy,
    creating: bool,
) -> ApiResult<WebhookPatch> {
    let mut c = Check::new();
    if let Some(given) = c.optional("surveyId", body.survey_id, Ok)
        && given.parse::<SurveyId>().ok() != Some(survey_id)
    {
        c.error("surveyId", "must match the survey in the path");
    }
    let mut patch = WebhookPatch::default();
    let parse_url = |text: String| WebhookUrl::parse(&text, policy);
    if creating {
        patch.name = c.required("name", body.name, text(1, 200));
        patch.url = c.required("url", body.url, parse_url);
        patch.events = c.required("events", body.events, parse_events);
    } else {
        let name_is_null = body.name.is_null();
        patch.name = c.optional("name", body.name, text(1, 200));
        patch.url = c.optional("url", body.url, parse_url);
        patch.events = c.optional("events", body.events, parse_events);
        if name_is_null {
            c.error("name", "cannot be null");
        }
    }
    patch.secret = c.nullable("secret", body.secret, |text| Secret::parse(&text));
    // `isActive` wins when both are sent.
    let (active_name, active) = if body.is_active.is_absent() {
        ("active", body.active)
    } else {
        ("isActive", body.is_active)
    };
    patch.is_active = c.optional(active_name, active, Ok);
    patch.headers = c.optional("headers", body.headers, parse_headers);
    patch.retry_policy = c.optional("retryPolicy", body.retry_policy, |delays| {
        RetryPolicy::parse(&delays)
    });
    patch.ordering = c.optional("ordering", body.ordering, |text| {
        DeliveryOrder::parse(&text).ok_or_else(|| "must be `concurrent` or `fifo`".to_owned())
    });
    c.finish()?;
    Ok(patch)
}

fn parse_events(names: Vec<String>) -> Result<Vec<EventType>, String> {
    if names.is_empty() || names.len() > 50 {
        return Err("must list 1 to 50 event types".into());
    }
    let mut seen = HashSet::new();
    names
        .iter()
        .map(|name| {
            let event = EventType::parse_subscribable(name)
                .ok_or_else(|| format!("`{name}` is not in the event catalog"))?;
            if !seen.insert(event) {
                return Err(format!("`{name}` is listed twice"));
            }
            Ok(event)
        })
        .collect()
}

fn parse_headers(pairs: BTreeMap<String, String>) -> Result<CustomHeaders, String> {
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
}
