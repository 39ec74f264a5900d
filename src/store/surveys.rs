//! Surveys and responses. Completing a response writes its event and deliveries in the
//! same transaction (see [`super::deliveries::enqueue_event`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Map, Value};

use super::{Result, StoreError, from_json, to_json};
use crate::domain::survey::Question;
use crate::domain::time::Millis;
use crate::domain::{ContactId, InvitationId, ResponseId, SurveyId};

#[derive(Debug, Clone)]
pub struct Survey {
    pub id: SurveyId,
    pub title: String,
    pub questions: Vec<Question>,
    pub created_at: Millis,
}

/// Surveys already read, by id (see [`super::Store::survey`]). Bounded: when full it
/// starts again empty, which costs one read per survey in use.
#[derive(Default)]
pub struct Cache(Mutex<HashMap<SurveyId, Arc<Survey>>>);

impl Cache {
    /// Surveys kept at most (a few kilobytes each).
    const CAPACITY: usize = 4096;

    pub fn get(&self, id: SurveyId) -> Option<Arc<Survey>> {
        self.0.lock().expect("not poisoned").get(&id).cloned()
    }

    pub fn insert(&self, survey: Arc<Survey>) {
        let mut surveys = self.0.lock().expect("not poisoned");
        if surveys.len() >= Self::CAPACITY {
            surveys.clear();
        }
        surveys.insert(survey.id, survey);
    }
}

fn survey_from_row(row: &Row<'_>) -> rusqlite::Result<(Survey, String)> {
    Ok((
        Survey {
            id: row.get(0)?,
            title: row.get(1)?,
            questions: Vec::new(),
            created_at: row.get(3)?,
        },
        row.get(2)?,
    ))
}

fn decode_survey((mut survey, questions): (Survey, String)) -> Result<Survey> {
    survey.questions = from_json(&questions)?;
    Ok(survey)
}

pub fn insert(
    conn: &Connection,
    title: &str,
    questions: &[Question],
    now: Millis,
) -> Result<Survey> {
    let id = SurveyId::new();
    conn.prepare_cached(
        "INSERT INTO surveys (id, title, questions, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![id, title, to_json(questions), now])?;
    get(conn, id)
}

pub fn get(conn: &Connection, id: SurveyId) -> Result<Survey> {
    let row = conn
        .prepare_cached(
            "SELECT id, title, questions, created_at FROM surveys WHERE id = ?1 AND id <> ?2",
        )?
        .query_row(params![id, SurveyId::OPERATIONS], survey_from_row)
        .optional()?;
    decode_survey(row.ok_or(StoreError::NotFound)?)
}

/// `NotFound` unless the survey exists.
pub fn require(conn: &Connection, id: SurveyId) -> Result<()> {
    conn.prepare_cached("SELECT 1 FROM surveys WHERE id = ?1 AND id <> ?2")?
        .query_row(params![id, SurveyId::OPERATIONS], |_| Ok(()))
        .optional()?
        .ok_or(StoreError::NotFound)
}

/// Surveys in creation order, after the cursor.
pub fn list(conn: &Connection, after: Option<SurveyId>, limit: u32) -> Result<Vec<Survey>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, title, questions, created_at FROM surveys \
         WHERE id > coalesce(?1, X'') AND id <> ?3 ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, limit, SurveyId::OPERATIONS], survey_from_row)?;
    rows.map(|row| decode_survey(row?)).collect()
}

/// A response as stored.
#[derive(Debug, Clone)]
pub struct Response {
    pub id: ResponseId,
    pub survey_id: SurveyId,
    pub contact_id: Option<ContactId>,
    pub invitation_id: Option<InvitationId>,
    pub completed: bool,
    pub answers: Map<String, Value>,
    pub embedded_data: Map<String, Value>,
    pub metadata: Map<String, Value>,
    pub started_at: Millis,
    pub completed_at: Option<Millis>,
}

/// The columns [`response_from_row`] reads, in its order. A macro, so that statements are
/// put together at compile time (every submission saves one).
macro_rules! response_columns {
    () => {
        "id, survey_id, contact_id, invitation_id, status, answers, embedded_data, metadata, \
         started_at, completed_at"
    };
}

fn response_from_row(row: &Row<'_>) -> rusqlite::Result<(Response, [String; 3])> {
    Ok((
        Response {
            id: row.get(0)?,
            survey_id: row.get(1)?,
            contact_id: row.get(2)?,
            invitation_id: row.get(3)?,
            completed: row.get::<_, String>(4)? == "completed",
            answers: Map::new(),
            embedded_data: Map::new(),
            metadata: Map::new(),
            started_at: row.get(8)?,
            completed_at: row.get(9)?,
        },
        [row.get(5)?, row.get(6)?, row.get(7)?],
    ))
}

fn decode_response(
    (mut r, [answers, embedded, metadata]): (Response, [String; 3]),
) -> Result<Response> {
    r.answers = from_json(&answers)?;
    r.embedded_data = from_json(&embedded)?;
    r.metadata = from_json(&metadata)?;
    Ok(r)
}

/// Writes a response row as it is now (insert or replace by id).
pub fn save_response(conn: &Connection, r: &Response) -> Result<()> {
    conn.prepare_cached(concat!(
        "INSERT INTO responses (",
        response_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, answers = excluded.answers, \
         embedded_data = excluded.embedded_data, metadata = excluded.metadata, \
         completed_at = excluded.completed_at"
    ))?
    .execute(params![
        r.id,
        r.survey_id,
        r.contact_id,
        r.invitation_id,
        if r.completed { "completed" } else { "started" },
        to_json(&r.answers),
        to_json(&r.embedded_data),
        to_json(&r.metadata),
        r.started_at,
        r.completed_at,
    ])?;
    Ok(())
}

/// A response of a survey (`NotFound` under another survey).
pub fn get_response(conn: &Connection, survey_id: SurveyId, id: ResponseId) -> Result<Response> {
    let row = conn
        .prepare_cached(concat!(
            "SELECT ",
            response_columns!(),
            " FROM responses WHERE id = ?1 AND survey_id = ?2"
        ))?
        .query_row(params![id, survey_id], response_from_row)
        .optional()?;
    decode_response(row.ok_or(StoreError::NotFound)?)
}

/// The response begun through an invitation, if any.
pub fn response_for_invitation(
    conn: &Connection,
    invitation_id: InvitationId,
) -> Result<Option<Response>> {
    let row = conn
        .prepare_cached(concat!(
            "SELECT ",
            response_columns!(),
            " FROM responses WHERE invitation_id = ?1"
        ))?
        .query_row([invitation_id], response_from_row)
        .optional()?;
    row.map(decode_response).transpose()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{Store, StoreError};
    use super::{Cache, Survey, insert};
    use crate::domain::SurveyId;

    #[tokio::test]
    async fn a_survey_is_read_once_and_an_unknown_one_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::telemetry::Telemetry::new()).unwrap();
        let created = store.write(|c| insert(c, "Visit", &[], 1)).await.unwrap();
        let first = store.survey(created.id).await.unwrap();
        let again = store.survey(created.id).await.unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second read comes from memory"
        );
        assert_eq!(first.title, "Visit");

        let missing = SurveyId::new();
        assert!(matches!(
            store.survey(missing).await,
            Err(StoreError::NotFound)
        ));
        store.close().await;
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = Cache::default();
        for _ in 0..=Cache::CAPACITY {
            cache.insert(Arc::new(Survey {
                id: SurveyId::new(),
                title: String::new(),
                questions: Vec::new(),
                created_at: 0,
            }));
        }
        assert!(cache.0.lock().unwrap().len() <= Cache::CAPACITY);
    }
}
