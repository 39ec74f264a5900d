//! Distributions and invitations: the personal links patients answer through, and where
//! each contact stands with a survey (bulk status).
//!
//! A link's token is its only credential, so only the token's SHA-256 is stored: a copy
//! of the database does not let anyone answer in a patient's name. Tokens carry 256
//! random bits, so a fast hash is the right tool (as for API keys).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::messages::{self, ForInvitation, Plan, Recipient};
use super::{Result, StoreError, from_json, to_json};
use crate::domain::time::Millis;
use crate::domain::{ContactId, DeliveryId, DistributionId, InvitationId, ResponseId, SurveyId};

/// The length of a token: 32 random bytes in base64url.
pub const TOKEN_CHARS: usize = 43;

/// A new token: 32 random bytes, base64url ([`TOKEN_CHARS`] characters, safe in a URL path).
fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A quick distribution to write.
#[derive(Debug, Clone)]
pub struct NewDistribution {
    pub survey_id: SurveyId,
    pub channel: &'static str,
    pub embedded_data: Map<String, Value>,
    /// Distinct, existing contacts, in the order their links are answered.
    pub contacts: Vec<ContactId>,
    pub expires_at: Millis,
    pub created_at: Millis,
    /// How its messages are made, for the email and SMS channels.
    pub messages: Option<Plan>,
}

/// An invitation just made, with its token in clear (shown this once).
#[derive(Debug, Clone)]
pub struct Issued {
    pub contact_id: ContactId,
    pub token: String,
    pub expires_at: Millis,
    /// `queued` or `skipped` for the email and SMS channels.
    pub message_status: Option<&'static str>,
}

/// Writes a distribution and one invitation per contact, with their messages to
/// `recipients` ([`messages::recipients`], read by the caller, which checks them first;
/// empty for links only).
pub fn create_distribution(
    conn: &Connection,
    new: &NewDistribution,
    recipients: &HashMap<ContactId, Recipient>,
) -> Result<(DistributionId, Vec<Issued>)> {
    let id = DistributionId::new();
    conn.prepare_cached(
        "INSERT INTO distributions (id, survey_id, channel, embedded_data, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        id,
        new.survey_id,
        new.channel,
        to_json(&new.embedded_data),
        new.created_at
    ])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO invitations (id, distribution_id, survey_id, contact_id, token_hash, \
         created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut issued = Vec::with_capacity(new.contacts.len());
    for &contact_id in &new.contacts {
        let token = new_token();
        let invitation_id = InvitationId::new();
        insert.execute(params![
            invitation_id,
            id,
            new.survey_id,
            contact_id,
            hash_token(&token),
            new.created_at,
            new.expires_at
        ])?;
        let message_status = match (&new.messages, recipients.get(&contact_id)) {
            (Some(plan), Some(recipient)) => Some(plan.write(
                conn,
                ForInvitation {
                    invitation_id,
                    survey_id: new.survey_id,
                    recipient,
                    token: &token,
                    expires_at: new.expires_at,
                    now: new.created_at,
                },
            )?),
            (Some(_), None) => return Err(StoreError::NotFound),
            (None, _) => None,
        };
        issued.push(Issued {
            contact_id,
            token,
            expires_at: new.expires_at,
            message_status,
        });
    }
    Ok((id, issued))
}

/// An invitation a respondent holds the token of.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: InvitationId,
    pub survey_id: SurveyId,
    pub contact_id: ContactId,
    pub expires_at: Millis,
    /// The distribution's embedded data, carried into the response.
    pub embedded_data: Map<String, Value>,
}

/// The invitation of a token, unless it is unknown or expired at `now` (`NotFound`: the
/// two are not told apart, so a token cannot be probed).
pub fn find_live(conn: &Connection, token: &str, now: Millis) -> Result<Invitation> {
    let row = conn
        .prepare_cached(
            "SELECT i.id, i.survey_id, i.contact_id, i.expires_at, d.embedded_data \
             FROM invitations i JOIN distributions d ON d.id = i.distribution_id \
             WHERE i.token_hash = ?1 AND i.expires_at > ?2",
        )?
        .query_row(params![hash_token(token), now], |row| {
            Ok((
                Invitation {
                    id: row.get(0)?,
                    survey_id: row.get(1)?,
                    contact_id: row.get(2)?,
                    expires_at: row.get(3)?,
                    embedded_data: Map::new(),
                },
                row.get::<_, String>(4)?,
            ))
        })
        .optional()?;
    let (mut invitation, embedded) = row.ok_or(StoreError::NotFound)?;
    invitation.embedded_data = from_json(&embedded)?;
    Ok(invitation)
}

/// Where one contact stands with a survey. No invitation and no response: not invited.
#[derive(Debug, Clone)]
pub struct ContactStatus {
    pub contact_id: ContactId,
    /// The latest invitation to this survey.
    pub invited_at: Option<Millis>,
    pub expires_at: Option<Millis>,
    /// The contact's completed response if any, else the latest started one.
    pub response: Option<ResponseState>,
    /// The status of the latest message due by now (SPEC §10), if any was made.
    pub message_status: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct ResponseState {
    pub id: ResponseId,
    pub completed: bool,
    pub started_at: Millis,
    pub completed_at: Option<Millis>,
}

/// The status of each contact of `ids` with a survey, in the order given (repeats
/// included), in one query over the list.
pub fn bulk_status(
    conn: &Connection,
    survey_id: SurveyId,
    ids: &[ContactId],
    now: Millis,
) -> Result<Vec<ContactStatus>> {
    let list = super::id_list(ids);
    let mut stmt = conn.prepare_cached(
        "WITH asked AS (SELECT key AS pos, unhex(value, '-') AS contact_id FROM json_each(?2)), \
         invited AS ( \
             SELECT a.pos, a.contact_id, \
                    (SELECT i.created_at FROM invitations i \
                     WHERE i.survey_id = ?1 AND i.contact_id = a.contact_id \
                     ORDER BY i.created_at DESC LIMIT 1) AS invited_at, \
                    (SELECT i.expires_at FROM invitations i \
                     WHERE i.survey_id = ?1 AND i.contact_id = a.contact_id \
                     ORDER BY i.created_at DESC LIMIT 1) AS expires_at, \
                    (SELECT r.id FROM responses r \
                     WHERE r.survey_id = ?1 AND r.contact_id = a.contact_id \
                     ORDER BY r.status = 'completed' DESC, r.started_at DESC, r.id DESC \
                     LIMIT 1) AS response_id, \
                    (SELECT m.id FROM invitations i JOIN messages m ON m.invitation_id = i.id \
                     WHERE i.survey_id = ?1 AND i.contact_id = a.contact_id AND m.due_at <= ?3 \
                     ORDER BY i.created_at DESC, m.due_at DESC LIMIT 1) AS message_id \
             FROM asked a) \
         SELECT v.contact_id, v.invited_at, v.expires_at, \
                r.id, r.status, r.started_at, r.completed_at, m.id, m.outcome, d.status \
         FROM invited v LEFT JOIN responses r ON r.id = v.response_id \
         LEFT JOIN messages m ON m.id = v.message_id \
         LEFT JOIN deliveries d ON d.id = m.delivery_id \
         ORDER BY v.pos",
    )?;
    let rows = stmt.query_map(params![survey_id, list, now], |row| {
        let response = match row.get::<_, Option<ResponseId>>(3)? {
            None => None,
            Some(id) => Some(ResponseState {
                id,
                completed: row.get::<_, String>(4)? == "completed",
                started_at: row.get(5)?,
                completed_at: row.get(6)?,
            }),
        };
        Ok(ContactStatus {
            contact_id: row.get(0)?,
            invited_at: row.get(1)?,
            expires_at: row.get(2)?,
            response,
            message_status: match row.get::<_, Option<DeliveryId>>(7)? {
                Some(_) => Some(messages::status_name(
                    row.get::<_, Option<String>>(8)?.as_deref(),
                    row.get::<_, Option<String>>(9)?.as_deref(),
                )),
                None => None,
            },
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contacts::{self, ContactInput};
    use crate::store::surveys;

    fn setup() -> (Connection, SurveyId, Vec<ContactId>) {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrate::run(&mut conn).unwrap();
        let questions: Vec<crate::domain::survey::Question> =
            serde_json::from_value(serde_json::json!([
                {"id": "q", "type": "rating", "text": "Stars"}
            ]))
            .unwrap();
        let survey = surveys::insert(&conn, "S", &questions, 1).unwrap().id;
        let ids = (0..3)
            .map(|i| {
                let input = ContactInput {
                    external_id: Some(format!("P{i}")),
                    ..ContactInput::default()
                };
                contacts::upsert(&conn, &input, 1)
                    .unwrap()
                    .unwrap()
                    .contact
                    .id
            })
            .collect();
        (conn, survey, ids)
    }

    #[test]
    fn a_token_is_long_random_and_stored_only_as_its_hash() {
        let (conn, survey, ids) = setup();
        let new = NewDistribution {
            survey_id: survey,
            channel: "link",
            embedded_data: Map::new(),
            contacts: ids.clone(),
            expires_at: 100,
            created_at: 10,
            messages: None,
        };
        let (_, issued) = create_distribution(&conn, &new, &HashMap::new()).unwrap();
        assert_eq!(issued.len(), 3);
        assert!(issued[0].token.len() >= 43);
        assert_ne!(issued[0].token, issued[1].token);
        let stored: i64 = conn
            .query_row(
                "SELECT count(*) FROM invitations WHERE token_hash = ?1",
                [&issued[0].token],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stored, 0);
        assert_eq!(
            find_live(&conn, &issued[0].token, 99).unwrap().contact_id,
            ids[0]
        );
        assert!(matches!(
            find_live(&conn, &issued[0].token, 100),
            Err(StoreError::NotFound)
        ));
    }

    #[test]
    fn bulk_status_answers_in_the_order_asked() {
        let (conn, survey, ids) = setup();
        let new = NewDistribution {
            survey_id: survey,
            channel: "link",
            embedded_data: Map::new(),
            contacts: vec![ids[1]],
            expires_at: 100,
            created_at: 10,
            messages: None,
        };
        create_distribution(&conn, &new, &HashMap::new()).unwrap();
        let asked = [ids[2], ids[1], ids[0], ids[2]];
        let status = bulk_status(&conn, survey, &asked, 50).unwrap();
        let order: Vec<_> = status.iter().map(|s| s.contact_id).collect();
        assert_eq!(order, asked);
        assert_eq!(status[1].invited_at, Some(10));
        assert!(status[0].invited_at.is_none() && status[0].response.is_none());
    }
}
