//! Reading back what the test SMTP server received: a message's headers, unfolded, and its
//! MIME parts, decoded from quoted-printable or base64. Just enough MIME (RFC 2045, 2046)
//! for the messages hookd sends; private to [`super`], which exposes it through `Mail`.

use base64::Engine;

/// The first header called `name` (case-insensitive) in a message's header block, unfolded.
pub(super) fn header(message: &str, name: &str) -> Option<String> {
    header_in(split_entity(message).0, name)
}

/// A message's leaf parts as (media type, decoded body), nested multiparts flattened.
pub(super) fn leaf_parts(message: &str) -> Vec<(String, String)> {
    let mut parts = Vec::new();
    collect_parts(message, &mut parts);
    parts
}

/// Adds the leaf parts of one MIME entity (a whole message or one of its parts) to `parts`.
fn collect_parts(entity: &str, parts: &mut Vec<(String, String)>) {
    let (head, body) = split_entity(entity);
    let content_type = header_in(head, "content-type").unwrap_or_else(|| "text/plain".into());
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match boundary(&content_type) {
        Some(separator) if media_type.starts_with("multipart/") => {
            for part in split_multipart(body, &separator) {
                collect_parts(part, parts);
            }
        }
        _ => {
            let encoding = header_in(head, "content-transfer-encoding").unwrap_or_default();
            parts.push((media_type, decode_body(&encoding, body)));
        }
    }
}

/// Splits an entity at its first blank line into its header block and its body.
fn split_entity(entity: &str) -> (&str, &str) {
    // An entity without headers starts with the blank line.
    if let Some(body) = entity
        .strip_prefix("\r\n")
        .or_else(|| entity.strip_prefix('\n'))
    {
        return ("", body);
    }
    let blank_line = ["\r\n\r\n", "\n\n"]
        .into_iter()
        .filter_map(|blank| entity.find(blank).map(|at| (at, at + blank.len())))
        .min();
    match blank_line {
        Some((head_end, body_start)) => (&entity[..head_end], &entity[body_start..]),
        None => (entity, ""),
    }
}

/// The first header called `name` in a header block, unfolded.
fn header_in(head: &str, name: &str) -> Option<String> {
    let mut headers: Vec<(&str, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((field, value)) = line.split_once(':') {
            headers.push((field.trim(), value.trim().to_owned()));
        }
    }
    headers
        .into_iter()
        .find(|(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

/// The `boundary` parameter of a Content-Type value, unquoted.
fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The parts of a multipart body: what lies between its `--boundary` lines, without the
/// preamble and the epilogue.
fn split_multipart<'a>(body: &'a str, boundary: &str) -> Vec<&'a str> {
    let delimiter = format!("--{boundary}");
    let closing = format!("--{boundary}--");
    let mut parts = Vec::new();
    let mut part_start: Option<usize> = None;
    let mut offset = 0;
    for line in body.split_inclusive('\n') {
        let bare = line.trim_end();
        if bare == delimiter || bare == closing {
            if let Some(start) = part_start {
                // The line break before a delimiter belongs to it (RFC 2046 §5.1.1).
                parts.push(without_final_line_break(&body[start..offset]));
            }
            part_start = (bare == delimiter).then_some(offset + line.len());
            if bare == closing {
                break;
            }
        }
        offset += line.len();
    }
    // A body cut off before its closing delimiter still yields its last part.
    if let Some(start) = part_start {
        parts.push(&body[start..]);
    }
    parts
}

fn without_final_line_break(text: &str) -> &str {
    text.strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text)
}

/// A body decoded by its Content-Transfer-Encoding, as UTF-8 text with `\n` line breaks.
fn decode_body(encoding: &str, body: &str) -> String {
    let bytes = match encoding.trim().to_ascii_lowercase().as_str() {
        "base64" => {
            let compact: String = body.split_ascii_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .unwrap_or_else(|e| panic!("a base64 part does not decode ({e}): {body}"))
        }
        "quoted-printable" => decode_quoted_printable(body),
        _ => body.as_bytes().to_vec(),
    };
    String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
}

/// Quoted-printable (RFC 2045 §6.7): `=XX` is a byte, a final `=` joins a line to the next,
/// and trailing spaces are padding. A malformed `=` is kept as it is.
fn decode_quoted_printable(text: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (content, line_break) = match line.strip_suffix('\n') {
            Some(content) => (content.strip_suffix('\r').unwrap_or(content), true),
            None => (line, false),
        };
        let content = content.trim_end_matches([' ', '\t']);
        let (content, soft_break) = match content.strip_suffix('=') {
            Some(content) => (content, true),
            None => (content, false),
        };
        let raw = content.as_bytes();
        let mut at = 0;
        while at < raw.len() {
            let escaped = raw.get(at + 1..at + 3).and_then(hex_byte);
            match (raw[at], escaped) {
                (b'=', Some(byte)) => {
                    bytes.push(byte);
                    at += 3;
                }
                (byte, _) => {
                    bytes.push(byte);
                    at += 1;
                }
            }
        }
        if line_break && !soft_break {
            bytes.extend_from_slice(b"\r\n");
        }
    }
    bytes
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |byte: u8| char::from(byte).to_digit(16);
    match pair {
        [high, low] => Some((digit(*high)? * 16 + digit(*low)?) as u8),
        _ => None,
    }
}
