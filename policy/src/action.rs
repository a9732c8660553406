//! The action vocabulary: Cosmos DB data actions, the Cosmoguard actions for operations that
//! Azure data-plane RBAC does not govern, their wildcards, and the action each operation needs.
//!
//! Actions are bits in a 64-bit set, so a rule's grant check is one AND on the decide path.

use std::fmt;

use crate::request::{Operation, OperationKind, ResourceType};

/// The prefix of every Cosmos DB data action.
pub const AZURE_PREFIX: &str = "Microsoft.DocumentDB/databaseAccounts/";
/// The prefix of Azure data actions on containers, which short forms may leave out.
const AZURE_CONTAINER_PREFIX: &str =
    "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/";
/// The prefix of every Cosmoguard action.
pub const COSMOGUARD_PREFIX: &str = "Cosmoguard/";

/// One action: a full name and the operations it covers (for documentation and `explain`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActionInfo {
    pub name: &'static str,
    pub covers: &'static str,
}

/// Every action, in bit order. Indexes 0 to 9 are Azure data actions, the rest Cosmoguard's.
pub const ACTIONS: [ActionInfo; 39] = [
    action(
        "Microsoft.DocumentDB/databaseAccounts/readMetadata",
        "read the account, list and read databases, containers, partition key ranges, stored procedure, trigger and UDF definitions, schemas and client encryption keys",
    ),
    action(
        "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/create",
        "create an item",
    ),
    action(
        "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/read",
        "point-read an item",
    ),
    action(
        "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/replace",
        "replace or patch an item",
    ),
    action(
        "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/upsert",
        "upsert an item",
    ),
    action(
        "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/delete",
        "delete an item",
    ),
    action(
        "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/executeQuery",
        "query items, request a query plan, list items (read feed)",
    ),
    action(
        "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/readChangeFeed",
        "read the change feed",
    ),
    action(
        "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/executeStoredProcedure",
        "execute a stored procedure",
    ),
    action(
        "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/manageConflicts",
        "list, read, query and delete conflicts",
    ),
    action(
        "Cosmoguard/databases/create",
        "create (or upsert) a database",
    ),
    action("Cosmoguard/databases/replace", "replace a database"),
    action("Cosmoguard/databases/delete", "delete a database"),
    action("Cosmoguard/containers/create", "create a container"),
    action(
        "Cosmoguard/containers/replace",
        "replace a container (indexing policy, TTL, ...)",
    ),
    action("Cosmoguard/containers/delete", "delete a container"),
    action(
        "Cosmoguard/throughput/read",
        "read, list and query offers (provisioned throughput)",
    ),
    action(
        "Cosmoguard/throughput/replace",
        "replace an offer (change provisioned throughput)",
    ),
    action(
        "Cosmoguard/storedProcedures/create",
        "create a stored procedure definition",
    ),
    action(
        "Cosmoguard/storedProcedures/replace",
        "replace a stored procedure definition",
    ),
    action(
        "Cosmoguard/storedProcedures/delete",
        "delete a stored procedure definition",
    ),
    action("Cosmoguard/triggers/create", "create a trigger definition"),
    action(
        "Cosmoguard/triggers/replace",
        "replace a trigger definition",
    ),
    action("Cosmoguard/triggers/delete", "delete a trigger definition"),
    action(
        "Cosmoguard/userDefinedFunctions/create",
        "create a UDF definition",
    ),
    action(
        "Cosmoguard/userDefinedFunctions/replace",
        "replace a UDF definition",
    ),
    action(
        "Cosmoguard/userDefinedFunctions/delete",
        "delete a UDF definition",
    ),
    action("Cosmoguard/users/read", "read, list and query users"),
    action("Cosmoguard/users/create", "create a user"),
    action("Cosmoguard/users/replace", "replace a user"),
    action("Cosmoguard/users/delete", "delete a user"),
    action(
        "Cosmoguard/permissions/read",
        "read, list and query permissions (which returns resource tokens)",
    ),
    action("Cosmoguard/permissions/create", "create a permission"),
    action("Cosmoguard/permissions/replace", "replace a permission"),
    action("Cosmoguard/permissions/delete", "delete a permission"),
    action(
        "Cosmoguard/attachments/read",
        "read, list and query attachments",
    ),
    action(
        "Cosmoguard/attachments/write",
        "create, upsert, replace, patch and delete attachments",
    ),
    action(
        "Cosmoguard/clientEncryptionKeys/create",
        "create a client encryption key",
    ),
    action(
        "Cosmoguard/clientEncryptionKeys/replace",
        "replace a client encryption key",
    ),
];

const fn action(name: &'static str, covers: &'static str) -> ActionInfo {
    ActionInfo { name, covers }
}

/// The number of Azure data actions at the start of [`ACTIONS`].
const AZURE_ACTION_COUNT: u32 = 10;

/// Action wildcards with the bits they expand to.
const WILDCARDS: [(&str, ActionSet); 15] = [
    ("*", ActionSet::ALL),
    (
        "Microsoft.DocumentDB/databaseAccounts/*",
        ActionSet::range(0, 10),
    ),
    (
        "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/*",
        ActionSet::range(1, 10),
    ),
    (
        "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/*",
        ActionSet::range(1, 6),
    ),
    ("Cosmoguard/*", ActionSet::range(10, 39)),
    ("Cosmoguard/databases/*", ActionSet::range(10, 13)),
    ("Cosmoguard/containers/*", ActionSet::range(13, 16)),
    ("Cosmoguard/throughput/*", ActionSet::range(16, 18)),
    ("Cosmoguard/storedProcedures/*", ActionSet::range(18, 21)),
    ("Cosmoguard/triggers/*", ActionSet::range(21, 24)),
    (
        "Cosmoguard/userDefinedFunctions/*",
        ActionSet::range(24, 27),
    ),
    ("Cosmoguard/users/*", ActionSet::range(27, 31)),
    ("Cosmoguard/permissions/*", ActionSet::range(31, 35)),
    ("Cosmoguard/attachments/*", ActionSet::range(35, 37)),
    (
        "Cosmoguard/clientEncryptionKeys/*",
        ActionSet::range(37, 39),
    ),
];

/// A set of actions.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ActionSet(u64);

impl ActionSet {
    pub const EMPTY: ActionSet = ActionSet(0);
    pub const ALL: ActionSet = ActionSet::range(0, ACTIONS.len() as u32);

    /// Returns the set of actions with bit indexes `start..end`.
    pub(crate) const fn range(start: u32, end: u32) -> ActionSet {
        let upper = if end >= 64 {
            u64::MAX
        } else {
            (1u64 << end) - 1
        };
        let lower = (1u64 << start) - 1;
        ActionSet(upper & !lower)
    }

    const fn bit(index: usize) -> ActionSet {
        ActionSet(1u64 << index)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn union(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 | other.0)
    }

    pub const fn difference(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 & !other.0)
    }

    pub fn intersects(self, other: ActionSet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn contains_all(self, other: ActionSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Returns the bit indexes in the set, lowest first.
    pub fn indexes(self) -> impl Iterator<Item = usize> {
        (0..ACTIONS.len()).filter(move |index| self.0 & (1u64 << index) != 0)
    }

    /// Returns the full names of the actions in the set.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        self.indexes().map(|index| ACTIONS[index].name)
    }

    /// Returns the lowest bit index, which the decision index is keyed by.
    pub(crate) fn first_index(self) -> Option<usize> {
        (self.0 != 0).then(|| self.0.trailing_zeros() as usize)
    }

    /// True when every action in the set is an Azure data action.
    pub fn is_azure_only(self) -> bool {
        self.0 >> AZURE_ACTION_COUNT == 0
    }
}

impl fmt::Debug for ActionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// The result of resolving an action name from a policy file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParsedAction {
    /// The name is spelled as documented (full or short form).
    Exact(ActionSet),
    /// The name matched only when compared case-insensitively. `check` warns about it,
    /// because a reader may miss the difference.
    CaseDiffers(ActionSet, &'static str),
}

impl ParsedAction {
    pub fn set(self) -> ActionSet {
        match self {
            ParsedAction::Exact(set) | ParsedAction::CaseDiffers(set, _) => set,
        }
    }
}

/// Parses an action name: a full name, a short form or a wildcard. Returns `None` for an
/// unknown name.
pub fn parse_action(name: &str) -> Option<ParsedAction> {
    let name = name.trim();
    let mut case_match = None;
    for (candidate, set) in all_spellings() {
        if candidate == name {
            return Some(ParsedAction::Exact(set));
        }
        if case_match.is_none() && candidate.eq_ignore_ascii_case(name) {
            case_match = Some(ParsedAction::CaseDiffers(set, candidate));
        }
    }
    case_match
}

/// Returns the closest known spelling to an unknown action name, for error messages.
pub fn suggest_action(name: &str) -> Option<&'static str> {
    let lowered = name.to_ascii_lowercase();
    all_spellings()
        .map(|(candidate, _)| {
            (
                edit_distance(&lowered, &candidate.to_ascii_lowercase()),
                candidate,
            )
        })
        .filter(|(distance, candidate)| *distance <= 3.max(candidate.len() / 5))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Returns every accepted spelling with its set: full names, short forms and wildcards.
fn all_spellings() -> impl Iterator<Item = (&'static str, ActionSet)> {
    let singles = ACTIONS
        .iter()
        .enumerate()
        .map(|(index, info)| (info.name, ActionSet::bit(index)));
    singles
        .chain(WILDCARDS)
        .flat_map(|(name, set)| short_forms(name).map(move |short| (short, set)))
}

/// Returns a full name and its short forms: without the account prefix, without the
/// container prefix (Azure actions), or without `Cosmoguard/`.
fn short_forms(name: &'static str) -> impl Iterator<Item = &'static str> {
    let without_account = name.strip_prefix(AZURE_PREFIX);
    // `sqlDatabases/containers/*` without the container prefix would read `*`, which means
    // every action, so that wildcard keeps its longer forms only.
    let without_container = name
        .strip_prefix(AZURE_CONTAINER_PREFIX)
        .filter(|short| *short != "*");
    let without_cosmoguard = name
        .strip_prefix(COSMOGUARD_PREFIX)
        .filter(|short| *short != "*");
    [
        Some(name),
        without_account,
        without_container,
        without_cosmoguard,
    ]
    .into_iter()
    .flatten()
}

fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    for (i, left_char) in left.chars().enumerate() {
        let mut current = vec![i + 1; right.len() + 1];
        for (j, right_char) in right.iter().enumerate() {
            let substitution = previous[j] + usize::from(left_char != *right_char);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[right.len()]
}

/// The actions an operation needs. An upsert of anything but an item needs two, because it
/// may create or replace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requirement {
    Actions(ActionSet),
    /// The operation has no action, so it is always denied (for example a write on the
    /// account resource, or executing a trigger).
    Unsupported,
    /// A batch: each batch operation is authorized as the item operation it names.
    Batch,
}

/// Returns what an operation needs.
pub fn requirement(operation: Operation) -> Requirement {
    use OperationKind as K;
    use ResourceType as T;
    let kind = operation.kind;
    let set = match operation.resource_type {
        T::Account => reads_only(kind, READ_METADATA),
        T::Database => metadata_or_writes(
            kind,
            [DATABASES_CREATE, DATABASES_REPLACE, DATABASES_DELETE],
        ),
        T::Container => metadata_or_writes(
            kind,
            [CONTAINERS_CREATE, CONTAINERS_REPLACE, CONTAINERS_DELETE],
        ),
        T::Document => return item_requirement(kind),
        T::StoredProcedure if kind == K::Execute => Some(EXECUTE_STORED_PROCEDURE),
        T::StoredProcedure => {
            metadata_or_writes(kind, [SPROCS_CREATE, SPROCS_REPLACE, SPROCS_DELETE])
        }
        T::Trigger => {
            metadata_or_writes(kind, [TRIGGERS_CREATE, TRIGGERS_REPLACE, TRIGGERS_DELETE])
        }
        T::UserDefinedFunction => {
            metadata_or_writes(kind, [UDFS_CREATE, UDFS_REPLACE, UDFS_DELETE])
        }
        T::User => own_reads_or_writes(
            kind,
            USERS_READ,
            [USERS_CREATE, USERS_REPLACE, USERS_DELETE],
        ),
        T::Permission => own_reads_or_writes(
            kind,
            PERMISSIONS_READ,
            [PERMISSIONS_CREATE, PERMISSIONS_REPLACE, PERMISSIONS_DELETE],
        ),
        T::Attachment => own_reads_or_writes(kind, ATTACHMENTS_READ, [ATTACHMENTS_WRITE; 3]),
        T::Conflict => match kind {
            K::Delete => Some(MANAGE_CONFLICTS),
            _ => reads_only(kind, MANAGE_CONFLICTS),
        },
        T::PartitionKeyRange | T::Schema => reads_only(kind, READ_METADATA),
        T::Offer => match kind {
            K::Replace => Some(THROUGHPUT_REPLACE),
            _ => reads_only(kind, THROUGHPUT_READ),
        },
        T::ClientEncryptionKey => match kind {
            K::Create => Some(CEK_CREATE),
            K::Replace => Some(CEK_REPLACE),
            K::Upsert => Some(CEK_CREATE.union(CEK_REPLACE)),
            _ => reads_only(kind, READ_METADATA),
        },
    };
    set.map_or(Requirement::Unsupported, Requirement::Actions)
}

/// Returns what one operation of a batch needs. A batch may contain only item creates,
/// upserts, reads, replaces, patches and deletes; anything else is unsupported.
pub fn batch_operation_requirement(kind: OperationKind) -> Requirement {
    use OperationKind as K;
    match kind {
        K::Create | K::Upsert | K::Read | K::Replace | K::Patch | K::Delete => {
            item_requirement(kind)
        }
        _ => Requirement::Unsupported,
    }
}

/// Returns what an operation on items (documents) needs.
pub fn item_requirement(kind: OperationKind) -> Requirement {
    use OperationKind as K;
    let set = match kind {
        K::Read | K::Head => ITEMS_READ,
        // NOTE: Azure documents no action for listing items without A-IM. The list returns
        // item content, like a query without a filter, so it is assumed to need executeQuery.
        K::ReadFeed | K::Query | K::QueryPlan => EXECUTE_QUERY,
        K::ReadChangeFeed => READ_CHANGE_FEED,
        K::Create => ITEMS_CREATE,
        K::Upsert => ITEMS_UPSERT,
        // NOTE: Azure documents no action for PATCH. It changes an existing item, so it is
        // assumed to need items/replace.
        K::Replace | K::Patch => ITEMS_REPLACE,
        K::Delete => ITEMS_DELETE,
        K::Batch => return Requirement::Batch,
        K::Execute => return Requirement::Unsupported,
    };
    Requirement::Actions(set)
}

fn is_read(kind: OperationKind) -> bool {
    use OperationKind as K;
    matches!(
        kind,
        K::Read | K::ReadFeed | K::Query | K::QueryPlan | K::Head
    )
}

fn reads_only(kind: OperationKind, read: ActionSet) -> Option<ActionSet> {
    is_read(kind).then_some(read)
}

fn metadata_or_writes(kind: OperationKind, writes: [ActionSet; 3]) -> Option<ActionSet> {
    own_reads_or_writes(kind, READ_METADATA, writes)
}

/// Maps reads to `read` and create, replace (or patch), upsert and delete to `writes`,
/// which are the create, replace and delete actions in that order.
fn own_reads_or_writes(
    kind: OperationKind,
    read: ActionSet,
    [create, replace, delete]: [ActionSet; 3],
) -> Option<ActionSet> {
    use OperationKind as K;
    match kind {
        K::Create => Some(create),
        K::Replace | K::Patch => Some(replace),
        K::Upsert => Some(create.union(replace)),
        K::Delete => Some(delete),
        _ => reads_only(kind, read),
    }
}

/// Returns the full name of the (first) action an operation needs, for audit records.
/// A batch returns the item wildcard because each of its operations needs its own item
/// action, and an unsupported operation returns `Cosmoguard/unsupported`.
pub fn data_action(operation: Operation) -> &'static str {
    match requirement(operation) {
        Requirement::Actions(set) => set
            .first_index()
            .map_or(UNSUPPORTED_NAME, |i| ACTIONS[i].name),
        Requirement::Batch => {
            "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/*"
        }
        Requirement::Unsupported => UNSUPPORTED_NAME,
    }
}

/// The name `data_action` returns for operations that no action covers.
pub const UNSUPPORTED_NAME: &str = "Cosmoguard/unsupported";

pub const READ_METADATA: ActionSet = ActionSet::bit(0);
pub const ITEMS_CREATE: ActionSet = ActionSet::bit(1);
pub const ITEMS_READ: ActionSet = ActionSet::bit(2);
pub const ITEMS_REPLACE: ActionSet = ActionSet::bit(3);
pub const ITEMS_UPSERT: ActionSet = ActionSet::bit(4);
pub const ITEMS_DELETE: ActionSet = ActionSet::bit(5);
pub const EXECUTE_QUERY: ActionSet = ActionSet::bit(6);
pub const READ_CHANGE_FEED: ActionSet = ActionSet::bit(7);
pub const EXECUTE_STORED_PROCEDURE: ActionSet = ActionSet::bit(8);
pub const MANAGE_CONFLICTS: ActionSet = ActionSet::bit(9);
pub const DATABASES_CREATE: ActionSet = ActionSet::bit(10);
pub const DATABASES_REPLACE: ActionSet = ActionSet::bit(11);
pub const DATABASES_DELETE: ActionSet = ActionSet::bit(12);
pub const CONTAINERS_CREATE: ActionSet = ActionSet::bit(13);
pub const CONTAINERS_REPLACE: ActionSet = ActionSet::bit(14);
pub const CONTAINERS_DELETE: ActionSet = ActionSet::bit(15);
pub const THROUGHPUT_READ: ActionSet = ActionSet::bit(16);
pub const THROUGHPUT_REPLACE: ActionSet = ActionSet::bit(17);
const SPROCS_CREATE: ActionSet = ActionSet::bit(18);
const SPROCS_REPLACE: ActionSet = ActionSet::bit(19);
const SPROCS_DELETE: ActionSet = ActionSet::bit(20);
const TRIGGERS_CREATE: ActionSet = ActionSet::bit(21);
const TRIGGERS_REPLACE: ActionSet = ActionSet::bit(22);
const TRIGGERS_DELETE: ActionSet = ActionSet::bit(23);
const UDFS_CREATE: ActionSet = ActionSet::bit(24);
const UDFS_REPLACE: ActionSet = ActionSet::bit(25);
const UDFS_DELETE: ActionSet = ActionSet::bit(26);
const USERS_READ: ActionSet = ActionSet::bit(27);
const USERS_CREATE: ActionSet = ActionSet::bit(28);
const USERS_REPLACE: ActionSet = ActionSet::bit(29);
const USERS_DELETE: ActionSet = ActionSet::bit(30);
const PERMISSIONS_READ: ActionSet = ActionSet::bit(31);
const PERMISSIONS_CREATE: ActionSet = ActionSet::bit(32);
const PERMISSIONS_REPLACE: ActionSet = ActionSet::bit(33);
const PERMISSIONS_DELETE: ActionSet = ActionSet::bit(34);
const ATTACHMENTS_READ: ActionSet = ActionSet::bit(35);
const ATTACHMENTS_WRITE: ActionSet = ActionSet::bit(36);
const CEK_CREATE: ActionSet = ActionSet::bit(37);
const CEK_REPLACE: ActionSet = ActionSet::bit(38);

/// A built-in Azure role: its display name, GUID and actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuiltInRole {
    pub name: &'static str,
    pub id: &'static str,
    pub actions: &'static [&'static str],
}

/// The built-in Cosmos DB data-plane roles, usable by name or by id.
pub const BUILT_IN_ROLES: [BuiltInRole; 2] = [
    BuiltInRole {
        name: "Cosmos DB Built-in Data Reader",
        id: "00000000-0000-0000-0000-000000000001",
        actions: &[
            "Microsoft.DocumentDB/databaseAccounts/readMetadata",
            "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/read",
            "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/executeQuery",
            "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/readChangeFeed",
        ],
    },
    BuiltInRole {
        name: "Cosmos DB Built-in Data Contributor",
        id: "00000000-0000-0000-0000-000000000002",
        actions: &[
            "Microsoft.DocumentDB/databaseAccounts/readMetadata",
            "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/*",
            "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/*",
        ],
    },
];

/// Finds a built-in role by display name or GUID (case-insensitive).
pub fn built_in_role(name_or_id: &str) -> Option<&'static BuiltInRole> {
    BUILT_IN_ROLES.iter().find(|role| {
        role.name.eq_ignore_ascii_case(name_or_id) || role.id.eq_ignore_ascii_case(name_or_id)
    })
}

/// Returns the action set of a built-in role.
pub fn built_in_role_actions(role: &BuiltInRole) -> ActionSet {
    role.actions
        .iter()
        .filter_map(|name| parse_action(name))
        .fold(ActionSet::EMPTY, |set, parsed| set.union(parsed.set()))
}

#[cfg(test)]
mod tests;
