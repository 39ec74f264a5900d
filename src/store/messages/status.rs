//! Where a distribution's messages stand (SPEC §10): the status endpoint's read.

use rusqlite::{Connection, OptionalExtension, params};

use super::status_name;
use crate::domain::time::Millis;
use crate::domain::{ContactId, DeliveryId, DistributionId, InvitationId, SurveyId};
use crate::store::{Result, StoreError};

/// One message as the status endpoint shows it.
#[derive(Debug, Clone)]
pub struct MessageState {
    pub id: DeliveryId,
    pub kind: String,
    pub status: &'static str,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub sent_at: Option<Millis>,
    pub due_at: Millis,
}

/// An invitation of a distribution with its messages, oldest first.
#[derive(Debug, Clone)]
pub struct InvitationState {
    pub contact_id: ContactId,
    pub expires_at: Millis,
    pub messages: Vec<MessageState>,
}

/// A distribution and where each of its messages stands.
#[derive(Debug, Clone)]
pub struct DistributionState {
    pub id: DistributionId,
    pub survey_id: SurveyId,
    pub channel: String,
    pub created_at: Millis,
    pub invitations: Vec<InvitationState>,
}

/// A distribution of a survey (`NotFound` under another survey).
pub fn distribution(
    conn: &Connection,
    survey_id: SurveyId,
    id: DistributionId,
) -> Result<DistributionState> {
    let (channel, created_at): (String, Millis) = conn
        .prepare_cached(
            "SELECT channel, created_at FROM distributions WHERE id = ?1 AND survey_id = ?2",
        )?
        .query_row(params![id, survey_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?
        .ok_or(StoreError::NotFound)?;
    let mut stmt = conn.prepare_cached(
        "SELECT i.id, i.contact_id, i.expires_at, m.id, m.kind, m.outcome, d.status, \
                d.attempt_count, d.last_error, d.completed_at, m.due_at \
         FROM invitations i \
         LEFT JOIN messages m ON m.invitation_id = i.id \
         LEFT JOIN deliveries d ON d.id = m.delivery_id \
         WHERE i.distribution_id = ?1 ORDER BY i.rowid, m.due_at, m.id",
    )?;
    let mut invitations: Vec<(InvitationId, InvitationState)> = Vec::new();
    let mut rows = stmt.query([id])?;
    while let Some(row) = rows.next()? {
        let invitation: InvitationId = row.get(0)?;
        if invitations
            .last()
            .is_none_or(|(last, _)| *last != invitation)
        {
            invitations.push((
                invitation,
                InvitationState {
                    contact_id: row.get(1)?,
                    expires_at: row.get(2)?,
                    messages: Vec::new(),
                },
            ));
        }
        let Some(message) = row.get::<_, Option<DeliveryId>>(3)? else {
            continue;
        };
        let outcome: Option<String> = row.get(5)?;
        let job: Option<String> = row.get(6)?;
        let status = status_name(outcome.as_deref(), job.as_deref());
        let completed: Option<Millis> = row.get(9)?;
        invitations
            .last_mut()
            .expect("pushed above")
            .1
            .messages
            .push(MessageState {
                id: message,
                kind: row.get(4)?,
                status,
                attempts: row.get::<_, Option<u32>>(7)?.unwrap_or(0),
                last_error: row.get(8)?,
                sent_at: completed.filter(|_| status == "sent"),
                due_at: row.get(10)?,
            });
    }
    Ok(DistributionState {
        id,
        survey_id,
        channel,
        created_at,
        invitations: invitations.into_iter().map(|(_, state)| state).collect(),
    })
}
