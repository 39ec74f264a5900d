//! Directory contacts: the patients a clinic invites. An upsert finds its contact by
//! external id, else by email (case-insensitively, through `email_key`), else by phone,
//! and never merges two patients: a key that already belongs to another contact is
//! reported instead of moved.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Map, Value};

use super::{Result, StoreError, from_json, to_json};
use crate::domain::ContactId;
use crate::domain::time::Millis;

/// A contact as stored.
#[derive(Debug, Clone)]
pub struct Contact {
    pub id: ContactId,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub attributes: Map<String, Value>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// Invitations, but no messages (SPEC §10).
    pub do_not_contact: bool,
}

/// The fields of one upsert, already validated and normalised (phone digits, trimmed
/// email). `None` leaves a stored value as it is: a client that sends `null` for a key it
/// does not know must not erase what the directory knows.
#[derive(Debug, Clone, Default)]
pub struct ContactInput {
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Merged into the stored attributes key by key; a `null` value removes that key.
    pub attributes: Option<Map<String, Value>>,
    pub do_not_contact: Option<bool>,
}

/// What an upsert did.
#[derive(Debug, Clone)]
pub struct Upserted {
    pub contact: Contact,
    pub created: bool,
}

/// A field of the input that names another contact: (field, message).
pub type KeyConflict = (&'static str, String);

/// A bulk upsert: every contact in order, or the conflicts by item index.
pub type BulkOutcome = Result<Vec<Upserted>, Vec<(usize, KeyConflict)>>;

const COLUMNS: &str = "id, external_id, email, phone, first_name, last_name, attributes, \
    created_at, updated_at, do_not_contact";

fn from_row(row: &Row<'_>) -> rusqlite::Result<(Contact, String)> {
    Ok((
        Contact {
            id: row.get(0)?,
            external_id: row.get(1)?,
            email: row.get(2)?,
            phone: row.get(3)?,
            first_name: row.get(4)?,
            last_name: row.get(5)?,
            attributes: Map::new(),
            created_at: row.get(7)?,
            updated_at: row.get(8)?,
            do_not_contact: row.get(9)?,
        },
        row.get(6)?,
    ))
}

fn decode((mut contact, attributes): (Contact, String)) -> Result<Contact> {
    contact.attributes = from_json(&attributes)?;
    Ok(contact)
}

/// `NotFound` unless the contact exists.
pub fn require(conn: &Connection, id: ContactId) -> Result<()> {
    conn.prepare_cached("SELECT 1 FROM contacts WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?
        .ok_or(StoreError::NotFound)
}

pub fn get(conn: &Connection, id: ContactId) -> Result<Contact> {
    let row = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM contacts WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?;
    decode(row.ok_or(StoreError::NotFound)?)
}

/// The contact holding a unique key (`column` is one of the three key columns).
fn owner(conn: &Connection, column: &str, value: &str) -> Result<Option<ContactId>> {
    Ok(conn
        .prepare_cached(&format!("SELECT id FROM contacts WHERE {column} = ?1"))?
        .query_row([value], |row| row.get(0))
        .optional()?)
}

/// Emails match case-insensitively. Lower-cased here rather than by SQLite's `lower()`,
/// which folds ASCII only.
fn email_key(email: &str) -> String {
    email.to_lowercase()
}

/// The key column of each matchable field, in matching order.
fn keys(input: &ContactInput) -> [(&'static str, &'static str, Option<String>); 3] {
    [
        ("externalId", "external_id", input.external_id.clone()),
        ("email", "email_key", input.email.as_deref().map(email_key)),
        ("phone", "phone", input.phone.clone()),
    ]
}

/// Inserts or updates one contact. `Ok(Err(..))` when a key of the input belongs to
/// another contact than the one matched; nothing is written then.
pub fn upsert(
    conn: &Connection,
    input: &ContactInput,
    now: Millis,
) -> Result<Result<Upserted, Vec<KeyConflict>>> {
    let mut matched = None;
    let mut conflicts = Vec::new();
    for (field, column, value) in keys(input) {
        let Some(value) = value else { continue };
        match (owner(conn, column, &value)?, matched) {
            (Some(found), None) => matched = Some(found),
            (Some(found), Some(id)) if found != id => {
                conflicts.push((field, "belongs to another contact".to_owned()));
            }
            _ => {}
        }
    }
    let Some(id) = matched else {
        return Ok(Ok(Upserted {
            contact: insert(conn, input, now)?,
            created: true,
        }));
    };
    let mut stored = get(conn, id)?;
    // The external id is the HIS's patient number: a contact found by email or phone that
    // already carries another one is a different patient, not a renamed one.
    if let (Some(new), Some(old)) = (&input.external_id, &stored.external_id)
        && new != old
    {
        conflicts.push((
            "externalId",
            "differs from the externalId of the contact with this email or phone".to_owned(),
        ));
    }
    if !conflicts.is_empty() {
        return Ok(Err(conflicts));
    }
    let opted_out = input.do_not_contact == Some(true) && !stored.do_not_contact;
    apply(&mut stored, input);
    stored.updated_at = now;
    conn.prepare_cached(
        "UPDATE contacts SET external_id = ?2, email = ?3, email_key = ?4, phone = ?5, \
         first_name = ?6, last_name = ?7, attributes = ?8, updated_at = ?9, do_not_contact = ?10 \
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        stored.external_id,
        stored.email,
        stored.email.as_deref().map(email_key),
        stored.phone,
        stored.first_name,
        stored.last_name,
        to_json(&stored.attributes),
        now,
        stored.do_not_contact
    ])?;
    if opted_out {
        super::messages::skip_for_contact(conn, id)?;
    }
    Ok(Ok(Upserted {
        contact: stored,
        created: false,
    }))
}

fn apply(contact: &mut Contact, input: &ContactInput) {
    let fields = [
        (&mut contact.external_id, &input.external_id),
        (&mut contact.email, &input.email),
        (&mut contact.phone, &input.phone),
        (&mut contact.first_name, &input.first_name),
        (&mut contact.last_name, &input.last_name),
    ];
    for (stored, given) in fields {
        if given.is_some() {
            stored.clone_from(given);
        }
    }
    if let Some(do_not_contact) = input.do_not_contact {
        contact.do_not_contact = do_not_contact;
    }
    for (key, value) in input.attributes.iter().flatten() {
        if value.is_null() {
            contact.attributes.remove(key);
        } else {
            contact.attributes.insert(key.clone(), value.clone());
        }
    }
}

fn insert(conn: &Connection, input: &ContactInput, now: Millis) -> Result<Contact> {
    let mut contact = Contact {
        id: ContactId::new(),
        external_id: None,
        email: None,
        phone: None,
        first_name: None,
        last_name: None,
        attributes: Map::new(),
        created_at: now,
        updated_at: now,
        do_not_contact: false,
    };
    apply(&mut contact, input);
    conn.prepare_cached(&format!(
        "INSERT INTO contacts ({COLUMNS}, email_key) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10)"
    ))?
    .execute(params![
        contact.id,
        contact.external_id,
        contact.email,
        contact.phone,
        contact.first_name,
        contact.last_name,
        to_json(&contact.attributes),
        now,
        contact.do_not_contact,
        contact.email.as_deref().map(email_key)
    ])?;
    Ok(contact)
}

/// Upserts several contacts in order, all or nothing: when any item conflicts, every
/// item of the batch is rolled back and the conflicts are answered with their index.
pub fn upsert_all(conn: &Connection, inputs: &[ContactInput], now: Millis) -> Result<BulkOutcome> {
    // A savepoint of its own: the writer's job savepoint rolls back only on `Err`, and a
    // conflict is an answer, not an error.
    conn.execute_batch("SAVEPOINT contacts_bulk")?;
    let outcome = upsert_each(conn, inputs, now);
    match &outcome {
        Ok(Ok(_)) => conn.execute_batch("RELEASE contacts_bulk")?,
        _ => conn.execute_batch("ROLLBACK TO contacts_bulk; RELEASE contacts_bulk")?,
    }
    outcome
}

fn upsert_each(conn: &Connection, inputs: &[ContactInput], now: Millis) -> Result<BulkOutcome> {
    let mut done = Vec::with_capacity(inputs.len());
    let mut conflicts = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        match upsert(conn, input, now)? {
            Ok(upserted) => done.push(upserted),
            Err(found) => conflicts.extend(found.into_iter().map(|c| (i, c))),
        }
    }
    Ok(if conflicts.is_empty() {
        Ok(done)
    } else {
        Err(conflicts)
    })
}

/// Contacts whose names, email, phone or external id contain `q` (case-insensitively for
/// ASCII), in creation order after the cursor.
pub fn search(
    conn: &Connection,
    q: Option<&str>,
    after: Option<ContactId>,
    limit: u32,
) -> Result<Vec<Contact>> {
    let pattern = q.map(|q| format!("%{}%", escape_like(q)));
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM contacts WHERE id > coalesce(?1, X'') AND (?2 IS NULL \
         OR external_id LIKE ?2 ESCAPE '\\' OR email LIKE ?2 ESCAPE '\\' \
         OR phone LIKE ?2 ESCAPE '\\' OR first_name LIKE ?2 ESCAPE '\\' \
         OR last_name LIKE ?2 ESCAPE '\\' \
         OR (coalesce(first_name, '') || ' ' || coalesce(last_name, '')) LIKE ?2 ESCAPE '\\') \
         ORDER BY id LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![after, pattern, limit], from_row)?;
    rows.map(|row| decode(row?)).collect()
}

/// Makes `%`, `_` and `\` match themselves in a LIKE pattern.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The ids among `ids` that name no contact, in the order given (one query).
pub fn unknown(conn: &Connection, ids: &[ContactId]) -> Result<Vec<ContactId>> {
    let list = super::id_list(ids);
    let mut stmt = conn.prepare_cached(
        "SELECT j.id FROM (SELECT key, unhex(value, '-') AS id FROM json_each(?1)) j \
         WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = j.id) ORDER BY j.key",
    )?;
    let rows = stmt.query_map([list], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrate::run(&mut conn).unwrap();
        conn
    }

    fn input(external_id: Option<&str>, email: Option<&str>, phone: Option<&str>) -> ContactInput {
        ContactInput {
            external_id: external_id.map(Into::into),
            email: email.map(Into::into),
            phone: phone.map(Into::into),
            ..ContactInput::default()
        }
    }

    #[test]
    fn an_upsert_matches_by_external_id_then_email_then_phone() {
        let c = conn();
        let first = upsert(&c, &input(Some("P1"), Some("Ada@Example.org"), None), 1)
            .unwrap()
            .unwrap();
        assert!(first.created);
        let by_email = upsert(&c, &input(None, Some("ada@example.ORG"), Some("+41791")), 2)
            .unwrap()
            .unwrap();
        assert!(!by_email.created);
        assert_eq!(by_email.contact.id, first.contact.id);
        let by_phone = upsert(&c, &input(None, None, Some("+41791")), 3)
            .unwrap()
            .unwrap();
        assert_eq!(by_phone.contact.id, first.contact.id);
        assert_eq!(by_phone.contact.external_id.as_deref(), Some("P1"));
        assert_eq!(by_phone.contact.email.as_deref(), Some("ada@example.ORG"));
    }

    #[test]
    fn a_key_of_another_contact_is_a_conflict_and_a_bulk_rolls_back() {
        let c = conn();
        upsert(&c, &input(Some("P1"), Some("a@x.org"), None), 1)
            .unwrap()
            .unwrap();
        upsert(&c, &input(Some("P2"), Some("b@x.org"), None), 1)
            .unwrap()
            .unwrap();
        let clash = upsert(&c, &input(Some("P1"), Some("B@x.org"), None), 2).unwrap();
        assert_eq!(clash.unwrap_err()[0].0, "email");
        let other_patient = upsert(&c, &input(Some("P3"), Some("a@x.org"), None), 2).unwrap();
        assert_eq!(other_patient.unwrap_err()[0].0, "externalId");

        let batch = [
            input(Some("P9"), None, None),
            input(Some("P2"), Some("a@x.org"), None),
        ];
        let outcome = upsert_all(&c, &batch, 3).unwrap();
        assert_eq!(outcome.unwrap_err()[0].0, 1);
        assert!(owner(&c, "external_id", "P9").unwrap().is_none());
    }

    #[test]
    fn search_treats_like_wildcards_literally_and_unknown_ids_are_listed() {
        let c = conn();
        let ada = upsert(&c, &input(Some("100%"), None, None), 1)
            .unwrap()
            .unwrap();
        upsert(&c, &input(Some("1000"), None, None), 1)
            .unwrap()
            .unwrap();
        let found = search(&c, Some("0%"), None, 10).unwrap();
        assert_eq!(found.len(), 1);
        let ghost = ContactId::new();
        assert_eq!(unknown(&c, &[ada.contact.id, ghost]).unwrap(), vec![ghost]);
    }
}
