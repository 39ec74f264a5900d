//! Which role may call which route (SPEC §9): the one place that decides it. The key check
//! ([`super::auth::require_key`]) asks [`allows`] with the route's template, as axum
//! matched it, before any handler runs.

use axum::http::Method;

use crate::domain::Role;

/// Whether a key of `role` may call `method` on the route whose template is `route`
/// (`/api/surveys/{surveyId}`, not the path with its ids).
pub fn allows(role: Role, method: &Method, route: &str) -> bool {
    let reads = method == Method::GET || method == Method::HEAD;
    match role {
        Role::Admin => true,
        Role::Integration => !route.starts_with("/api/admin/"),
        Role::Kiosk => {
            (reads && route == "/api/surveys/{surveyId}")
                || (method == Method::POST && route == "/api/surveys/{surveyId}/responses")
        }
        Role::Viewer => reads && !holds_patient_data(route),
    }
}

/// Routes whose answers are about patients themselves: contacts and responses.
fn holds_patient_data(route: &str) -> bool {
    route.starts_with("/api/directory/")
        || route.contains("/responses")
        || route.contains("/distributions")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_reaches_what_the_contract_gives_it() {
        let get = Method::GET;
        let post = Method::POST;
        let survey = "/api/surveys/{surveyId}";
        let responses = "/api/surveys/{surveyId}/responses";
        let queue = "/api/admin/queue";
        let contacts = "/api/directory/contacts";
        let webhooks = "/api/surveys/{surveyId}/webhooks";

        assert!(allows(Role::Admin, &Method::DELETE, webhooks));
        assert!(allows(Role::Admin, &get, queue));

        assert!(allows(Role::Integration, &post, webhooks));
        assert!(allows(Role::Integration, &get, contacts));
        assert!(!allows(Role::Integration, &get, queue));

        assert!(allows(Role::Kiosk, &get, survey));
        assert!(allows(Role::Kiosk, &post, responses));
        assert!(!allows(Role::Kiosk, &get, "/api/surveys"));
        assert!(!allows(
            Role::Kiosk,
            &get,
            "/api/surveys/{surveyId}/responses/{responseId}"
        ));
        assert!(!allows(Role::Kiosk, &Method::PATCH, survey));

        assert!(allows(Role::Viewer, &get, queue));
        assert!(allows(Role::Viewer, &get, webhooks));
        assert!(!allows(Role::Viewer, &post, webhooks));
        assert!(!allows(Role::Viewer, &get, contacts));
        assert!(!allows(
            Role::Viewer,
            &get,
            "/api/surveys/{surveyId}/responses/{responseId}"
        ));
    }
}
