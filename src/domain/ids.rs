//! Typed ids: a webhook id cannot be passed where a delivery id is expected.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

macro_rules! typed_id {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new id; v7, so ids sort by creation time.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        /// Stored as the UUID's 16 bytes (a BLOB) rather than its 36 characters, in every
        /// row and index that holds it, and bound without formatting a string.
        impl rusqlite::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Blob(
                    self.0.as_bytes(),
                )))
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                <[u8; 16]>::column_result(value).map(|bytes| Self(Uuid::from_bytes(bytes)))
            }
        }
    )*};
}

typed_id! {
    /// A survey.
    SurveyId;
    /// A registered webhook endpoint.
    WebhookId;
    /// An event (stored once, delivered to every subscribed webhook).
    EventId;
    /// One event owed to one webhook.
    DeliveryId;
    /// A patient's response to a survey.
    ResponseId;
    /// A directory contact.
    ContactId;
    /// A quick distribution.
    DistributionId;
    /// An invitation of one contact.
    InvitationId;
    /// A stored API key.
    KeyId;
}

/// The operations channel (SPEC §8): hookd's own notices (`webhook.disabled`,
/// `webhook.enabled`) go out through the same delivery queue as survey events, to a webhook
/// row with this id under a reserved survey of the same id. Neither is ever listed or
/// reachable through the API.
pub const OPERATIONS: Uuid = Uuid::nil();

impl SurveyId {
    /// The reserved survey of the operations channel.
    pub const OPERATIONS: Self = Self(OPERATIONS);
}

impl WebhookId {
    /// The operations channel's webhook (`HOOKD_OPS_WEBHOOK_URL`).
    pub const OPERATIONS: Self = Self(OPERATIONS);
}

impl WebhookId {
    /// The email channel's queue (SPEC §10): invitations, reminders and admin notices sent
    /// through `HOOKD_SMTP_URL` are deliveries owed to this reserved row.
    pub const EMAIL: Self = Self(Uuid::from_u128(1));
    /// The SMS channel's queue, sent through `HOOKD_SMS_URL`.
    pub const SMS: Self = Self(Uuid::from_u128(2));

    /// Which queue this id names: a survey's webhook or one of hookd's own channels.
    pub fn queue(self) -> Queue {
        match self {
            Self::OPERATIONS => Queue::Operations,
            Self::EMAIL => Queue::Email,
            Self::SMS => Queue::Sms,
            _ => Queue::Webhook,
        }
    }
}

/// The kinds of queue the delivery engine works: every job is a delivery owed to a row of
/// `webhooks`, and the reserved rows are hookd's own channels. They share the claim,
/// lease, record and retry path; they differ in how a job is sent and in that hookd never
/// disables its own channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    /// A survey's webhook (SPEC §3).
    Webhook,
    /// `HOOKD_OPS_WEBHOOK_URL` (SPEC §8), an HTTP webhook of hookd's own.
    Operations,
    /// Messages by email (SPEC §10).
    Email,
    /// Messages by SMS gateway (SPEC §10).
    Sms,
}

impl Queue {
    /// Whether failures may disable it: only a survey's webhooks; hookd's own channels are
    /// how operators and patients hear anything at all.
    pub fn may_be_disabled(self) -> bool {
        self == Self::Webhook
    }
}
