//! Messages to patients (SPEC §10): the channel a distribution goes by, and the templates
//! of its invitations and reminders with their placeholders.
//!
//! A template is checked once, when the distribution is asked for ([`Template::parse`]),
//! and filled per contact when the messages are written ([`Template::fill`]): a reminder
//! sent days later carries the text as it was asked for. Values put into `html` are
//! HTML-escaped; `text` and `subject` are plain text.

/// How a distribution reaches its contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Links only: the clinic hands them out itself.
    Link,
    /// An email per contact, through `HOOKD_SMTP_URL`.
    Email,
    /// An SMS per contact, through `HOOKD_SMS_URL`.
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Link => "link",
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::Link, Self::Email, Self::Sms]
            .into_iter()
            .find(|c| c.as_str() == name)
    }
}

/// Why a message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    Invitation,
    Reminder,
    /// An email to `HOOKD_ADMIN_EMAIL` about a disabled webhook.
    Notice,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invitation => "invitation",
            Self::Reminder => "reminder",
            Self::Notice => "notice",
        }
    }
}

/// The longest SMS, after filling (SPEC §10): four concatenated parts.
pub const MAX_SMS_CHARS: usize = 640;
const MAX_SUBJECT_CHARS: usize = 200;
const MAX_TEXT_CHARS: usize = 20_000;
const MAX_HTML_CHARS: usize = 100_000;
/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 5] = ["firstName", "lastName", "surveyTitle", "link", "expiresAt"];

/// A template as the client sent it (`message` of a distribution): every part optional.
#[derive(Debug, Clone, Default)]
pub struct TemplateInput {
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
}

/// A checked template for one channel. A part the client left out is the channel's
/// default, which also words the reminders; a part the client wrote is used for both.
#[derive(Debug, Clone)]
pub struct Template {
    channel: Channel,
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
}

/// The values of one contact's placeholders, as plain text.
#[derive(Debug, Clone, Copy)]
pub struct Filling<'a> {
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub survey_title: &'a str,
    pub link: &'a str,
    /// Already formatted for people ([`crate::domain::time::format_day`]).
    pub expires_at: &'a str,
}

/// A message filled in for one contact. `subject` and `html` are `None` for an SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filled {
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
}

const EMAIL_SUBJECT: &str = "Your survey: {{surveyTitle}}";
const EMAIL_TEXT: &str = "Hello {{firstName}},\n\nWe would like to hear from you. Please take \
    a few minutes to answer \"{{surveyTitle}}\":\n\n{{link}}\n\nThe link is personal and \
    works until {{expiresAt}}.\n\nThank you.\n";
const EMAIL_HTML: &str = "<p>Hello {{firstName}},</p>\n<p>We would like to hear from you. \
    Please take a few minutes to answer &#8220;{{surveyTitle}}&#8221;:</p>\n\
    <p><a href=\"{{link}}\">Answer the survey</a></p>\n<p>The link is personal and works \
    until {{expiresAt}}.</p>\n<p>Thank you.</p>\n";
const EMAIL_REMINDER_SUBJECT: &str = "Reminder: {{surveyTitle}}";
const EMAIL_REMINDER_TEXT: &str = "Hello {{firstName}},\n\nA reminder: your answers to \
    \"{{surveyTitle}}\" would help us. It takes a few minutes:\n\n{{link}}\n\nThe link works \
    until {{expiresAt}}. If you have answered already, thank you, and please ignore this \
    message.\n";
const EMAIL_REMINDER_HTML: &str = "<p>Hello {{firstName}},</p>\n<p>A reminder: your answers \
    to &#8220;{{surveyTitle}}&#8221; would help us. It takes a few minutes.</p>\n\
    <p><a href=\"{{link}}\">Answer the survey</a></p>\n<p>The link works until \
    {{expiresAt}}. If you have answered already, thank you, and please ignore this \
    message.</p>\n";
const SMS_TEXT: &str =
    "{{surveyTitle}}: please answer our short survey: {{link}} (until {{expiresAt}})";
const SMS_REMINDER_TEXT: &str = "Reminder - {{surveyTitle}}: {{link}} (until {{expiresAt}})";

impl Template {
    /// Checks a client's template for `channel`; errors are (field, message) with the
    /// field named as in the body (`message.text`).
    pub fn parse(channel: Channel, input: TemplateInput) -> Result<Self, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut check = |field: &str, value: &Option<String>, max: usize, needs_link: bool| {
            let Some(value) = value else { return };
            let name = format!("message.{field}");
            if value.trim().is_empty() {
                errors.push((name, "must not be empty".to_owned()));
            } else if value.chars().count() > max {
                errors.push((name, format!("must be at most {max} characters")));
            } else if let Err(message) = placeholders_known(value) {
                errors.push((name, message));
            } else if needs_link && !value.contains("{{link}}") {
                errors.push((name, "must contain {{link}}".to_owned()));
            }
        };
        match channel {
            Channel::Sms => {
                check("text", &input.text, MAX_SMS_CHARS, true);
                for (field, given) in [("subject", &input.subject), ("html", &input.html)] {
                    if given.is_some() {
                        errors.push((
                            format!("message.{field}"),
                            "an SMS has text only".to_owned(),
                        ));
                    }
                }
            }
            Channel::Email | Channel::Link => {
                check("subject", &input.subject, MAX_SUBJECT_CHARS, false);
                check("text", &input.text, MAX_TEXT_CHARS, true);
                check("html", &input.html, MAX_HTML_CHARS, true);
                if input
                    .subject
                    .as_deref()
                    .is_some_and(|s| s.contains(['\r', '\n']))
                {
                    errors.push(("message.subject".into(), "must be one line".into()));
                }
            }
        }
        if errors.is_empty() {
            Ok(Self {
                channel,
                subject: input.subject,
                text: input.text,
                html: input.html,
            })
        } else {
            Err(errors)
        }
    }

    /// The channel's defaults.
    pub fn default_for(channel: Channel) -> Self {
        Self {
            channel,
            subject: None,
            text: None,
            html: None,
        }
    }

    /// The message of `kind` for one contact.
    pub fn fill(&self, kind: MessageKind, values: &Filling<'_>) -> Filled {
        let reminder = kind == MessageKind::Reminder;
        let pick =
            |given: &Option<String>, invitation: &'static str, reminder_text: &'static str| {
                given.clone().unwrap_or_else(|| {
                    if reminder {
                        reminder_text.to_owned()
                    } else {
                        invitation.to_owned()
                    }
                })
            };
        match self.channel {
            Channel::Sms => Filled {
                subject: None,
                text: fill(
                    &pick(&self.text, SMS_TEXT, SMS_REMINDER_TEXT),
                    values,
                    plain,
                ),
                html: None,
            },
            Channel::Email | Channel::Link => {
                let subject = match (&self.subject, reminder) {
                    (Some(subject), true) => format!("Reminder: {subject}"),
                    _ => pick(&self.subject, EMAIL_SUBJECT, EMAIL_REMINDER_SUBJECT),
                };
                // A client's text without html is sent as text only; the defaults have both.
                let html = match (&self.text, &self.html) {
                    (_, Some(html)) => Some(html.clone()),
                    (Some(_), None) => None,
                    (None, None) => Some(pick(&None, EMAIL_HTML, EMAIL_REMINDER_HTML)),
                };
                Filled {
                    subject: Some(one_line(&fill(&subject, values, plain))),
                    text: fill(
                        &pick(&self.text, EMAIL_TEXT, EMAIL_REMINDER_TEXT),
                        values,
                        plain,
                    ),
                    html: html.map(|html| fill(&html, values, escape_html)),
                }
            }
        }
    }
}

/// Every `{{name}}` in `text` is a known placeholder.
fn placeholders_known(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("has a {{ without its }}".to_owned());
        };
        let name = &after[..end];
        if !PLACEHOLDERS.contains(&name) {
            let known: Vec<String> = PLACEHOLDERS
                .iter()
                .map(|p| format!("{{{{{p}}}}}"))
                .collect();
            return Err(format!(
                "{{{{{name}}}}} is not a placeholder; use {}",
                known.join(", ")
            ));
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

/// `template` with each placeholder replaced by its value passed through `encode`. A
/// greeting without a first name reads "Hello," rather than "Hello ,".
fn fill(template: &str, values: &Filling<'_>, encode: fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").expect("checked by parse");
        let value = match &after[..end] {
            "firstName" => values.first_name,
            "lastName" => values.last_name,
            "surveyTitle" => values.survey_title,
            "link" => values.link,
            "expiresAt" => values.expires_at,
            _ => unreachable!("checked by parse"),
        };
        if value.is_empty() && out.ends_with(' ') && after[end + 2..].starts_with(',') {
            out.pop();
        }
        out.push_str(&encode(value));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn plain(value: &str) -> String {
    value.to_owned()
}

/// Escapes the characters that could open markup or leave an attribute.
pub fn escape_html(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A subject on one line (a contact's name could hold a line break).
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Filling<'static> {
        Filling {
            first_name: "Zoë <b>",
            last_name: "O'Neil & Co",
            survey_title: "After your visit",
            link: "https://survey.example/r/abc",
            expires_at: "31 January 2027",
        }
    }

    fn parse(
        channel: Channel,
        text: Option<&str>,
        html: Option<&str>,
    ) -> Result<Template, Vec<(String, String)>> {
        Template::parse(
            channel,
            TemplateInput {
                subject: None,
                text: text.map(str::to_owned),
                html: html.map(str::to_owned),
            },
        )
    }

    #[test]
    fn placeholders_are_filled_and_escaped_only_in_html() {
        let template = parse(
            Channel::Email,
            Some("Dear {{firstName}} {{lastName}}: {{link}}"),
            Some("<p>Dear {{firstName}} {{lastName}}</p><a href=\"{{link}}\">go</a>"),
        )
        .unwrap();
        let filled = template.fill(MessageKind::Invitation, &values());
        assert_eq!(
            filled.text,
            "Dear Zoë <b> O'Neil & Co: https://survey.example/r/abc"
        );
        assert_eq!(
            filled.html.unwrap(),
            "<p>Dear Zoë &lt;b&gt; O&#39;Neil &amp; Co</p><a href=\"https://survey.example/r/abc\">go</a>"
        );
        assert_eq!(filled.subject.unwrap(), "Your survey: After your visit");
    }

    #[test]
    fn text_and_html_must_carry_the_link_and_known_placeholders() {
        let errors = parse(
            Channel::Email,
            Some("no link here"),
            Some("{{firstname}} {{link}}"),
        )
        .unwrap_err();
        assert_eq!(
            errors[0],
            ("message.text".into(), "must contain {{link}}".into())
        );
        assert_eq!(errors[1].0, "message.html");
        assert!(
            errors[1]
                .1
                .starts_with("{{firstname}} is not a placeholder"),
            "{}",
            errors[1].1
        );
        let sms = Template::parse(
            Channel::Sms,
            TemplateInput {
                subject: Some("Hi".into()),
                text: Some("{{link}}".into()),
                html: None,
            },
        )
        .unwrap_err();
        assert_eq!(
            sms,
            vec![(
                "message.subject".to_owned(),
                "an SMS has text only".to_owned()
            )]
        );
    }

    #[test]
    fn defaults_read_well_without_a_first_name_and_reminders_say_so() {
        let mut no_name = values();
        no_name.first_name = "";
        let email = Template::default_for(Channel::Email);
        let invitation = email.fill(MessageKind::Invitation, &no_name);
        assert!(
            invitation.text.starts_with("Hello,\n"),
            "{}",
            invitation.text
        );
        assert!(invitation.text.contains(no_name.link));
        assert!(invitation.html.unwrap().contains("<p>Hello,</p>"));
        let reminder = email.fill(MessageKind::Reminder, &no_name);
        assert_eq!(reminder.subject.unwrap(), "Reminder: After your visit");
        let sms = Template::default_for(Channel::Sms).fill(MessageKind::Reminder, &values());
        assert!(sms.text.starts_with("Reminder") && sms.text.contains(values().link));
        assert!(sms.subject.is_none() && sms.html.is_none());
        let custom = parse(Channel::Email, Some("{{link}}"), None).unwrap();
        let filled = custom.fill(MessageKind::Reminder, &values());
        assert_eq!(filled.subject.unwrap(), "Reminder: After your visit");
        assert!(
            filled.html.is_none(),
            "a client's text alone is sent as text only"
        );
    }
}
