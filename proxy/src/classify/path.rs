//! Resource paths: from the raw request path to resource type, resource link and names.

use std::borrow::Cow;

use cosmoguard_policy::ResourceType;

use super::ClassifyError;

/// The maximum length of a raw path, in bytes. Cosmos DB ids are at most 255 characters, so even a
/// fully percent-encoded attachment path stays well below this.
pub const MAX_PATH_BYTES: usize = 8 * 1024;

/// A parsed resource path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePath {
    pub resource_type: ResourceType,
    /// True for a feed (`/dbs/d/colls`): list, query or create. False for one resource.
    pub is_feed: bool,
    /// The decoded path without leading and trailing `/` (`dbs/d/colls/c/docs/i`); for a
    /// feed, the path of its parent (`dbs/d/colls/c` for the docs feed).
    pub link: String,
    /// The resource link the service signs: `link` for name-based paths, the lowercased
    /// resource id for offers, which are always addressed by id.
    pub signing_link: String,
    pub database: Option<String>,
    pub container: Option<String>,
    /// The id of the addressed resource below a container or user (item, stored
    /// procedure, permission, ...), or of an offer.
    pub resource_id: Option<String>,
    /// Set when the path names its database and container by resource id (RID), as the
    /// .NET SDK does for partition key ranges; `database` and `container` then hold RIDs
    /// until the pipeline resolves them to names.
    pub rid: Option<RidAddress>,
}

/// The resource ids of a RID-addressed path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RidAddress {
    pub database: String,
    pub container: Option<String>,
}

/// Parses a raw, percent-encoded request path.
pub fn parse_path(raw_path: &str) -> Result<ResourcePath, ClassifyError> {
    if raw_path.len() > MAX_PATH_BYTES {
        return Err(ClassifyError::PathTooLong {
            length: raw_path.len(),
            max: MAX_PATH_BYTES,
        });
    }
    let segments = decode_segments(raw_path)?;
    if segments.is_empty() {
        return Ok(account_path());
    }
    check_keywords(&segments)?;
    if is_rid_addressed(&segments) {
        return rid_path(&segments);
    }
    Ok(resource_path(&segments))
}

/// Returns the raw path without its empty segments (doubled slashes, or a leading `//`),
/// keeping a trailing slash, or `None` when it has none. The proxy forwards this path, so
/// the account receives the segments the policy decided on, whether or not it collapses
/// empty segments itself.
pub fn without_empty_segments(raw_path: &str) -> Option<String> {
    if !raw_path.contains("//") {
        return None;
    }
    let mut collapsed = String::with_capacity(raw_path.len());
    for segment in raw_path.split('/').filter(|segment| !segment.is_empty()) {
        collapsed.push('/');
        collapsed.push_str(segment);
    }
    if raw_path.ends_with('/') {
        collapsed.push('/');
    }
    Some(collapsed)
}

/// A path segment, borrowed from the raw path unless it had percent escapes.
type Segment<'a> = Cow<'a, str>;

/// Room for the segments of the deepest path: an attachment is 8 segments.
const USUAL_SEGMENTS: usize = 8;

/// Percent-decodes the raw path once and splits it into segments, skipping empty ones
/// (doubled or trailing slashes); [`without_empty_segments`] makes the forwarded path
/// match.
fn decode_segments(raw_path: &str) -> Result<Vec<Segment<'_>>, ClassifyError> {
    let mut segments = Vec::with_capacity(USUAL_SEGMENTS);
    for raw_segment in raw_path.split('/').filter(|segment| !segment.is_empty()) {
        let segment = decode_segment(raw_segment)?;
        if segment == "." || segment == ".." {
            return Err(ClassifyError::DotSegment);
        }
        segments.push(segment);
    }
    Ok(segments)
}

/// Decodes one segment. `+` stays `+` (paths are never form-encoded), malformed escapes
/// are rejected, and so are characters no id may contain: a decoded `/` or `\` would
/// make the service see other segments than the policy saw.
fn decode_segment(raw_segment: &str) -> Result<Segment<'_>, ClassifyError> {
    check_escapes(raw_segment)?;
    let decoded = percent_encoding::percent_decode_str(raw_segment)
        .decode_utf8()
        .map_err(|_| ClassifyError::InvalidEncoding)?;
    for character in decoded.chars() {
        if character.is_control() {
            return Err(ClassifyError::ControlCharacter);
        }
        if matches!(character, '/' | '\\' | '?' | '#') {
            return Err(ClassifyError::ForbiddenCharacter { character });
        }
    }
    Ok(decoded)
}

fn check_escapes(raw_segment: &str) -> Result<(), ClassifyError> {
    let bytes = raw_segment.as_bytes();
    for (index, byte) in bytes.iter().enumerate() {
        if *byte != b'%' {
            continue;
        }
        let escape = bytes.get(index + 1..index + 3);
        let valid = escape.is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit));
        if !valid {
            return Err(ClassifyError::InvalidEncoding);
        }
    }
    Ok(())
}

fn account_path() -> ResourcePath {
    ResourcePath {
        resource_type: ResourceType::Account,
        is_feed: false,
        link: String::new(),
        signing_link: String::new(),
        database: None,
        container: None,
        resource_id: None,
        rid: None,
    }
}

/// Checks every keyword (the even-numbered segments) against the resource types valid
/// under its parent, so `dbs/d/docs` or `dbs/d/colls/c/colls` is rejected.
fn check_keywords(segments: &[Segment<'_>]) -> Result<(), ClassifyError> {
    let mut parent: Option<ResourceType> = None;
    for keyword in segments.iter().step_by(2) {
        let child = ResourceType::from_keyword(keyword)
            .filter(|child| children_of(parent).contains(child))
            .ok_or_else(|| ClassifyError::UnknownResourceType {
                keyword: keyword.to_string(),
            })?;
        parent = Some(child);
    }
    Ok(())
}

/// The resource types that may follow a resource of type `parent` in a path (`None`:
/// the account, at the start of the path).
fn children_of(parent: Option<ResourceType>) -> &'static [ResourceType] {
    use ResourceType::*;
    match parent {
        None => &[Database, Offer],
        Some(Database) => &[Container, User, ClientEncryptionKey],
        Some(Container) => &[
            Document,
            StoredProcedure,
            UserDefinedFunction,
            Trigger,
            Conflict,
            PartitionKeyRange,
            Schema,
        ],
        Some(User) => &[Permission],
        Some(Document) => &[Attachment],
        Some(_) => &[],
    }
}

/// Whether a database path addresses its database by resource id, as the .NET SDK does
/// for partition key ranges. A database RID is 4 bytes in base64 with `-` for `/`, which
/// is 6 characters and `==`. A name of that shape is also treated as a RID; it then
/// resolves only if the account reported it as a RID, so it errs on the side of denying.
fn is_rid_addressed(segments: &[Segment<'_>]) -> bool {
    segments[0] == "dbs" && segments.get(1).is_some_and(|name| is_rid(name, 4))
}

/// Whether `text` is the base64 (with `-` for `/`) of exactly `bytes` bytes.
pub fn is_rid(text: &str, bytes: usize) -> bool {
    let length = bytes.div_ceil(3) * 4;
    let padding = (3 - bytes % 3) % 3;
    let characters = text.as_bytes();
    characters.len() == length
        && characters[length - padding..]
            .iter()
            .all(|byte| *byte == b'=')
        && characters[..length - padding]
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'+' || *byte == b'-')
}

/// Classifies a RID-addressed path. Only the database (4-byte RID) and container (8-byte
/// RID) levels can be resolved to names, so anything addressed below a container by RID
/// is rejected.
fn rid_path(segments: &[Segment<'_>]) -> Result<ResourcePath, ClassifyError> {
    let container = segments.get(3);
    if container.is_some_and(|rid| !is_rid(rid, 8)) || segments.len() > 5 {
        return Err(ClassifyError::AddressedByRid);
    }
    let mut path = resource_path(segments);
    let owner_rid = segments[..path_owner_length(segments)]
        .last()
        .map_or("", |rid| rid.as_ref());
    path.signing_link = owner_rid.to_lowercase();
    path.rid = Some(RidAddress {
        database: segments[1].to_string(),
        container: container.map(|rid| rid.to_string()),
    });
    Ok(path)
}

/// The number of segments up to the resource that owns the request: the resource itself,
/// or the parent of a feed.
fn path_owner_length(segments: &[Segment<'_>]) -> usize {
    if segments.len() % 2 == 1 {
        segments.len() - 1
    } else {
        segments.len()
    }
}

fn resource_path(segments: &[Segment<'_>]) -> ResourcePath {
    let is_feed = segments.len() % 2 == 1;
    let keyword_index = if is_feed {
        segments.len() - 1
    } else {
        segments.len() - 2
    };
    let resource_type =
        ResourceType::from_keyword(&segments[keyword_index]).unwrap_or(ResourceType::Account);
    let link_segments = if is_feed {
        &segments[..segments.len() - 1]
    } else {
        segments
    };
    let link = link_segments.join("/");

    let name_after = |keyword: &str| {
        segments
            .iter()
            .step_by(2)
            .position(|segment| segment == keyword)
            .and_then(|position| segments.get(position * 2 + 1))
            .map(|name| name.to_string())
    };
    // Databases and containers are named by `database` and `container`; `resource_id`
    // names what sits below them, or an offer.
    let names_child = !matches!(
        resource_type,
        ResourceType::Database | ResourceType::Container
    );
    let resource_id = if is_feed || !names_child {
        None
    } else {
        segments.last().map(|id| id.to_string())
    };
    let signing_link = if resource_type == ResourceType::Offer {
        resource_id.as_deref().unwrap_or("").to_lowercase()
    } else {
        link.clone()
    };

    ResourcePath {
        resource_type,
        is_feed,
        link,
        signing_link,
        database: name_after("dbs"),
        container: name_after("colls"),
        resource_id,
        rid: None,
    }
}
