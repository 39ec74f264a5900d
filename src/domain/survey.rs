//! Surveys and answers: the questionnaire's rules, as pure functions shared by the kiosk
//! route and the respondent routes.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One question of a survey, as stored and served.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Question {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: QuestionKind,
    pub text: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<Choice>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Choice {
    pub id: String,
    pub label: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    Text,
    SingleChoice,
    MultiChoice,
    Rating,
    Nps,
}

impl QuestionKind {
    pub fn parse(name: &str) -> Option<Self> {
        serde_json::from_value(Value::String(name.to_owned())).ok()
    }

    fn has_choices(self) -> bool {
        matches!(self, Self::SingleChoice | Self::MultiChoice)
    }
}

/// Most characters in a free-text answer.
pub const MAX_TEXT_ANSWER: usize = 10_000;

/// Whether the answers must be complete (required questions answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    Partial,
    Complete,
}

/// A field-level problem: (`answers.<questionId>`, message).
pub type AnswerError = (String, String);

/// Checks `answers` against the survey and returns them in the event's canonical shape
/// (`{"value": ..}` or `{"choiceIds": [..]}` per question), or every problem found.
pub fn validate_answers(
    questions: &[Question],
    answers: &Map<String, Value>,
    completeness: Completeness,
) -> Result<Map<String, Value>, Vec<AnswerError>> {
    let mut errors = Vec::new();
    let mut clean = Map::new();
    for (id, answer) in answers {
        // Named only when it is wrong: most answers are not.
        let field = || format!("answers.{id}");
        let Some(question) = questions.iter().find(|q| &q.id == id) else {
            errors.push((field(), "is not a question of this survey".into()));
            continue;
        };
        match check_answer(question, answer) {
            Ok(Some(value)) => {
                clean.insert(id.clone(), value);
            }
            Ok(None) => {}
            Err(message) => errors.push((field(), message)),
        }
    }
    if completeness == Completeness::Complete {
        for question in questions.iter().filter(|q| q.required) {
            if !clean.contains_key(&question.id) && !answers.contains_key(&question.id) {
                errors.push((format!("answers.{}", question.id), "is required".into()));
            }
        }
    }
    if errors.is_empty() {
        Ok(clean)
    } else {
        Err(errors)
    }
}

/// One answer in canonical form; `Ok(None)` for an explicit "no answer" (null).
fn check_answer(question: &Question, answer: &Value) -> Result<Option<Value>, String> {
    if answer.is_null() {
        return if question.required {
            Err("is required".into())
        } else {
            Ok(None)
        };
    }
    let Some(object) = answer.as_object() else {
        return Err("must be an object with `value` or `choiceIds`".into());
    };
    if question.kind.has_choices() {
        let ids = object
            .get("choiceIds")
            .and_then(Value::as_array)
            .ok_or("must have `choiceIds`, an array of choice ids")?;
        let mut seen = HashSet::new();
        for id in ids {
            let id = id.as_str().ok_or("choice ids must be strings")?;
            if !question.choices.iter().any(|c| c.id == id) {
                return Err(format!("`{id}` is not a choice of this question"));
            }
            if !seen.insert(id) {
                return Err(format!("`{id}` is chosen twice"));
            }
        }
        match (question.kind, ids.len()) {
            (_, 0) if question.required => return Err("is required".into()),
            (QuestionKind::SingleChoice, n) if n > 1 => {
                return Err("takes exactly one choice".into());
            }
            _ => {}
        }
        return Ok(Some(serde_json::json!({ "choiceIds": ids })));
    }
    let value = object.get("value").ok_or("must have `value`")?;
    match question.kind {
        QuestionKind::Text => {
            let text = value.as_str().ok_or("must be a string")?;
            if text.chars().count() > MAX_TEXT_ANSWER {
                return Err(format!("must be at most {MAX_TEXT_ANSWER} characters"));
            }
            if text.trim().is_empty() && question.required {
                return Err("is required".into());
            }
        }
        QuestionKind::Rating => check_scale(value, 1, 5)?,
        QuestionKind::Nps => check_scale(value, 0, 10)?,
        QuestionKind::SingleChoice | QuestionKind::MultiChoice => unreachable!("handled above"),
    }
    Ok(Some(serde_json::json!({ "value": value })))
}

fn check_scale(value: &Value, low: i64, high: i64) -> Result<(), String> {
    match value.as_i64() {
        Some(n) if (low..=high).contains(&n) => Ok(()),
        _ => Err(format!("must be a whole number from {low} to {high}")),
    }
}

/// Validates a survey's questions; returns every problem as (field, message).
pub fn validate_questions(questions: &[Question]) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    if questions.is_empty() || questions.len() > 200 {
        errors.push(("questions".into(), "must have 1 to 200 questions".into()));
    }
    let mut ids = HashSet::new();
    for (i, q) in questions.iter().enumerate() {
        let field = |name: &str| format!("questions[{i}].{name}");
        if q.id.is_empty() || q.id.len() > 100 {
            errors.push((field("id"), "must be 1 to 100 characters".into()));
        }
        if !ids.insert(q.id.as_str()) {
            errors.push((field("id"), "is used by another question".into()));
        }
        if q.text.trim().is_empty() || q.text.chars().count() > 2000 {
            errors.push((field("text"), "must be 1 to 2,000 characters".into()));
        }
        if q.kind.has_choices() {
            let mut choice_ids = HashSet::new();
            if q.choices.is_empty() || q.choices.len() > 100 {
                errors.push((field("choices"), "must have 1 to 100 choices".into()));
            }
            for (j, c) in q.choices.iter().enumerate() {
                if c.id.is_empty() || c.id.len() > 100 || !choice_ids.insert(c.id.as_str()) {
                    errors.push((
                        format!("questions[{i}].choices[{j}].id"),
                        "must be 1 to 100 characters and unique".into(),
                    ));
                }
                if c.label.trim().is_empty() || c.label.chars().count() > 500 {
                    errors.push((
                        format!("questions[{i}].choices[{j}].label"),
                        "must be 1 to 500 characters".into(),
                    ));
                }
            }
        } else if !q.choices.is_empty() {
            errors.push((
                field("choices"),
                "only choice questions have choices".into(),
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn survey() -> Vec<Question> {
        serde_json::from_value(json!([
            {"id": "q1", "type": "text", "text": "How was it?", "required": true},
            {"id": "q2", "type": "single_choice", "text": "Ward?", "choices": [{"id": "a", "label": "A"}, {"id": "b", "label": "B"}]},
            {"id": "q3", "type": "multi_choice", "text": "Which?", "choices": [{"id": "x", "label": "X"}, {"id": "y", "label": "Y"}]},
            {"id": "q4", "type": "rating", "text": "Stars"},
            {"id": "q5", "type": "nps", "text": "Recommend?"}
        ]))
        .unwrap()
    }

    fn answers(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn a_complete_valid_response_is_accepted_in_canonical_form() {
        let clean = validate_answers(
            &survey(),
            &answers(json!({"q1": {"value": "fine"}, "q2": {"choiceIds": ["a"]}, "q3": {"choiceIds": ["x", "y"]}, "q4": {"value": 5}, "q5": {"value": 0}})),
            Completeness::Complete,
        )
        .unwrap();
        assert_eq!(clean["q4"], json!({"value": 5}));
        assert_eq!(clean["q3"], json!({"choiceIds": ["x", "y"]}));
    }

    #[test]
    fn every_bad_answer_is_reported() {
        let errors = validate_answers(
            &survey(),
            &answers(json!({"zz": {"value": 1}, "q2": {"choiceIds": ["a", "b"]}, "q3": {"choiceIds": ["nope"]}, "q4": {"value": 6}, "q5": {"value": 3.5}})),
            Completeness::Complete,
        )
        .unwrap_err();
        let fields: HashSet<_> = errors.iter().map(|(f, _)| f.as_str()).collect();
        for f in [
            "answers.zz",
            "answers.q1",
            "answers.q2",
            "answers.q3",
            "answers.q4",
            "answers.q5",
        ] {
            assert!(fields.contains(f), "{f} missing from {errors:?}");
        }
    }

    #[test]
    fn a_partial_save_may_leave_required_questions_open() {
        assert!(
            validate_answers(
                &survey(),
                &answers(json!({"q4": {"value": 1}})),
                Completeness::Partial
            )
            .is_ok()
        );
        assert!(
            validate_answers(
                &survey(),
                &answers(json!({"q4": {"value": 1}})),
                Completeness::Complete
            )
            .is_err()
        );
    }
}
