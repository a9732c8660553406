//! Value patterns: exact strings, globs (`*` for any run of characters, `?` for one
//! character, `\` to escape the next character) and templates filled from the caller's
//! claims (`{subject}`, `{issuer}`, `{app_id}`, `{claims.tid}`, `{claims.nested.path}`).
//!
//! Patterns are compiled once at parse time into segments, and matching allocates nothing:
//! a template placeholder resolves to a borrowed claim string, or to a number or boolean
//! written into a small stack buffer.

use std::fmt::{self, Write as _};

use crate::request::Principal;

/// A compiled value pattern.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Pattern {
    source: Box<str>,
    kind: PatternKind,
}

#[derive(Clone, Debug, PartialEq)]
enum PatternKind {
    /// No glob characters and no placeholders: compared with `==`.
    Exact(Box<str>),
    /// The pattern split at each `*`: the first segment is anchored at the start, the last
    /// at the end, and the ones between are found leftmost. One segment means no `*`.
    Segments(Box<[Segment]>),
}

type Segment = Box<[Piece]>;

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Literal(Box<str>),
    /// `?`: exactly one character.
    AnyChar,
    Placeholder(Placeholder),
}

/// A value taken from the caller at decision time.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Placeholder {
    Subject,
    Issuer,
    AppId,
    Claim(ClaimPath),
}

/// A claim name, or a dotted path into nested claim objects.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ClaimPath {
    full: Box<str>,
    parts: Box<[Box<str>]>,
}

impl ClaimPath {
    /// Parses a claim path. An empty path or an empty part (`a..b`) is invalid.
    pub(crate) fn parse(path: &str) -> Result<ClaimPath, String> {
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(format!(
                "invalid claim path `{path}`: expected a claim name or a dotted path such as `ext.team`"
            ));
        }
        Ok(ClaimPath {
            full: path.into(),
            parts: path.split('.').map(Box::from).collect(),
        })
    }

    /// Looks the claim up: first the whole path as one claim name (claim names such as
    /// `http://schemas.example/role` contain dots), then as a path into nested objects.
    pub(crate) fn lookup<'a>(&self, principal: &'a Principal) -> Option<&'a serde_json::Value> {
        if let Some(value) = principal.claims.get(&*self.full) {
            return Some(value);
        }
        let (first, rest) = self.parts.split_first()?;
        rest.iter()
            .try_fold(principal.claims.get(&**first)?, |value, part| {
                value.get(&**part)
            })
    }
}

impl fmt::Display for ClaimPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl Pattern {
    /// Compiles a pattern. `allow_templates` is false where no caller is known (principal
    /// matchers), which turns `{` into an error there.
    pub(crate) fn parse(source: &str, allow_templates: bool) -> Result<Pattern, String> {
        let segments = parse_segments(source, allow_templates)?;
        let kind = match exact_literal(&segments) {
            Some(literal) => PatternKind::Exact(literal.into()),
            None => {
                PatternKind::Segments(segments.into_iter().map(Vec::into_boxed_slice).collect())
            }
        };
        Ok(Pattern {
            source: source.into(),
            kind,
        })
    }

    /// Returns the literal value when the pattern is neither a glob nor a template.
    pub(crate) fn exact(&self) -> Option<&str> {
        match &self.kind {
            PatternKind::Exact(literal) => Some(literal),
            PatternKind::Segments(_) => None,
        }
    }

    /// True when the pattern matches every value (`*`, `**`, ...).
    pub(crate) fn matches_everything(&self) -> bool {
        match &self.kind {
            PatternKind::Exact(_) => false,
            PatternKind::Segments(segments) => {
                segments.len() > 1 && segments.iter().all(|s| s.is_empty())
            }
        }
    }

    /// Matches a value. A placeholder whose claim is missing, empty, or not a string,
    /// number or boolean makes the pattern match nothing.
    pub(crate) fn matches(&self, value: &str, principal: &Principal) -> bool {
        match &self.kind {
            PatternKind::Exact(literal) => **literal == *value,
            PatternKind::Segments(segments) => matches_segments(segments, value, Some(principal)),
        }
    }

    /// Matches a value without a caller: any placeholder matches nothing.
    pub(crate) fn matches_plain(&self, value: &str) -> bool {
        match &self.kind {
            PatternKind::Exact(literal) => **literal == *value,
            PatternKind::Segments(segments) => matches_segments(segments, value, None),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn exact_literal(segments: &[Vec<Piece>]) -> Option<String> {
    let [only] = segments else { return None };
    let mut literal = String::new();
    for piece in only {
        match piece {
            Piece::Literal(text) => literal.push_str(text),
            _ => return None,
        }
    }
    Some(literal)
}

fn parse_segments(source: &str, allow_templates: bool) -> Result<Vec<Vec<Piece>>, String> {
    let mut segments = vec![Vec::new()];
    let mut literal = String::new();
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => literal.push(escaped),
                None => {
                    return Err(format!(
                        "invalid pattern `{source}`: it ends with a lone `\\`"
                    ));
                }
            },
            '*' | '?' | '{' => {
                let current = segments.last_mut().ok_or("no segment")?;
                flush_literal(&mut literal, current);
                match c {
                    '*' => segments.push(Vec::new()),
                    '?' => current.push(Piece::AnyChar),
                    _ => current.push(parse_placeholder(&mut chars, source, allow_templates)?),
                }
            }
            '}' => {
                return Err(format!(
                    "invalid pattern `{source}`: `}}` without a matching `{{` (write `\\}}` for a literal brace)"
                ));
            }
            _ => literal.push(c),
        }
    }
    let current = segments.last_mut().ok_or("no segment")?;
    flush_literal(&mut literal, current);
    Ok(segments)
}

fn flush_literal(literal: &mut String, segment: &mut Vec<Piece>) {
    if !literal.is_empty() {
        segment.push(Piece::Literal(std::mem::take(literal).into()));
    }
}

fn parse_placeholder(
    chars: &mut std::str::Chars<'_>,
    source: &str,
    allow_templates: bool,
) -> Result<Piece, String> {
    if !allow_templates {
        return Err(format!(
            "invalid pattern `{source}`: templates such as `{{claims.tid}}` are not allowed here (write `\\{{` for a literal brace)"
        ));
    }
    let mut name = String::new();
    let mut closed = false;
    for c in chars.by_ref() {
        if c == '}' {
            closed = true;
            break;
        }
        name.push(c);
    }
    if !closed {
        return Err(format!(
            "invalid template `{source}`: `{{{name}` is not closed with `}}`"
        ));
    }
    let placeholder = match name.trim() {
        "subject" | "sub" | "claims.sub" => Placeholder::Subject,
        "issuer" | "iss" | "claims.iss" => Placeholder::Issuer,
        "app_id" => Placeholder::AppId,
        other => match other.strip_prefix("claims.") {
            Some(path) => Placeholder::Claim(ClaimPath::parse(path)?),
            None => {
                return Err(format!(
                    "invalid template `{source}`: unknown placeholder `{{{other}}}`; expected `{{subject}}`, `{{issuer}}`, `{{app_id}}` or `{{claims.NAME}}`"
                ));
            }
        },
    };
    Ok(Piece::Placeholder(placeholder))
}

fn matches_segments(segments: &[Segment], text: &str, principal: Option<&Principal>) -> bool {
    let last = segments.len() - 1;
    let mut position = 0;
    for (index, segment) in segments.iter().enumerate() {
        if index == 0 && index == last {
            return match_at(segment, text, 0, principal) == Some(text.len());
        }
        if index == 0 {
            match match_at(segment, text, 0, principal) {
                Some(end) => position = end,
                None => return false,
            }
        } else if index == last {
            return char_starts(text, position)
                .any(|start| match_at(segment, text, start, principal) == Some(text.len()));
        } else {
            match char_starts(text, position)
                .find_map(|start| match_at(segment, text, start, principal))
            {
                Some(end) => position = end,
                None => return false,
            }
        }
    }
    true
}

/// Returns every character boundary of `text` from `from` to its end, inclusive.
fn char_starts(text: &str, from: usize) -> impl Iterator<Item = usize> + '_ {
    (from..=text.len()).filter(|index| text.is_char_boundary(*index))
}

/// Matches one star-free segment at `start`; returns where the match ends.
fn match_at(
    segment: &[Piece],
    text: &str,
    start: usize,
    principal: Option<&Principal>,
) -> Option<usize> {
    let mut position = start;
    for piece in segment {
        let rest = text.get(position..)?;
        match piece {
            Piece::Literal(literal) => {
                position += literal.len();
                if !rest.starts_with(&**literal) {
                    return None;
                }
            }
            Piece::AnyChar => position += rest.chars().next()?.len_utf8(),
            Piece::Placeholder(placeholder) => {
                let resolved = resolve(placeholder, principal?)?;
                let value = resolved.as_str();
                if value.is_empty() || !rest.starts_with(value) {
                    return None;
                }
                position += value.len();
            }
        }
    }
    Some(position)
}

/// A placeholder's value: borrowed from the principal, or written into a stack buffer.
#[derive(Debug)]
pub(crate) enum Resolved<'a> {
    Borrowed(&'a str),
    Inline(InlineString),
}

impl Resolved<'_> {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Resolved::Borrowed(text) => text,
            Resolved::Inline(inline) => inline.as_str(),
        }
    }
}

pub(crate) fn resolve<'a>(
    placeholder: &Placeholder,
    principal: &'a Principal,
) -> Option<Resolved<'a>> {
    match placeholder {
        Placeholder::Subject => Some(Resolved::Borrowed(&principal.subject)),
        Placeholder::Issuer => Some(Resolved::Borrowed(&principal.issuer)),
        Placeholder::AppId => principal.app_id.as_deref().map(Resolved::Borrowed),
        Placeholder::Claim(path) => scalar_text(path.lookup(principal)?),
    }
}

/// Returns the text of a string, number or boolean JSON value; `None` for anything else.
pub(crate) fn scalar_text(value: &serde_json::Value) -> Option<Resolved<'_>> {
    match value {
        serde_json::Value::String(text) => Some(Resolved::Borrowed(text)),
        serde_json::Value::Bool(true) => Some(Resolved::Borrowed("true")),
        serde_json::Value::Bool(false) => Some(Resolved::Borrowed("false")),
        serde_json::Value::Number(number) => {
            let mut inline = InlineString::default();
            write!(inline, "{number}").ok()?;
            Some(Resolved::Inline(inline))
        }
        _ => None,
    }
}

/// A short string on the stack, for formatting numbers without allocating. Writing more
/// than its capacity fails.
#[derive(Debug)]
pub(crate) struct InlineString {
    bytes: [u8; 40],
    len: usize,
}

impl Default for InlineString {
    fn default() -> InlineString {
        InlineString {
            bytes: [0; 40],
            len: 0,
        }
    }
}

impl InlineString {
    pub(crate) fn as_str(&self) -> &str {
        // Only whole `&str` values are ever copied in, so the bytes are valid UTF-8.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for InlineString {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let end = self.len + text.len();
        let target = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        target.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
