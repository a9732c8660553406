//! The classified Cosmos DB request that a policy decides on, and the caller it comes from.
//!
//! The proxy's classifier builds a [`Request`] from the REST path and headers; the policy
//! never sees raw HTTP. Names follow the Cosmos REST API: resource types are the path
//! keywords (`dbs`, `colls`, `docs`, ...) and the resource link is the decoded path that
//! the service signs.

use std::fmt;
use std::net::IpAddr;
use std::sync::OnceLock;

use serde::Serialize;

/// Cosmos DB resource types, as they appear as path keywords.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceType {
    /// The database account itself (`GET /`).
    Account,
    Database,
    Container,
    Document,
    StoredProcedure,
    UserDefinedFunction,
    Trigger,
    User,
    Permission,
    Attachment,
    Conflict,
    PartitionKeyRange,
    Offer,
    ClientEncryptionKey,
    Schema,
}

impl ResourceType {
    /// Every resource type, in path-keyword order.
    pub const ALL: [ResourceType; 15] = [
        ResourceType::Account,
        ResourceType::Database,
        ResourceType::Container,
        ResourceType::Document,
        ResourceType::StoredProcedure,
        ResourceType::UserDefinedFunction,
        ResourceType::Trigger,
        ResourceType::User,
        ResourceType::Permission,
        ResourceType::Attachment,
        ResourceType::Conflict,
        ResourceType::PartitionKeyRange,
        ResourceType::Offer,
        ResourceType::ClientEncryptionKey,
        ResourceType::Schema,
    ];

    /// Returns the path keyword, which is also the resource type the service signs
    /// (`""` for the account).
    pub fn keyword(self) -> &'static str {
        match self {
            ResourceType::Account => "",
            ResourceType::Database => "dbs",
            ResourceType::Container => "colls",
            ResourceType::Document => "docs",
            ResourceType::StoredProcedure => "sprocs",
            ResourceType::UserDefinedFunction => "udfs",
            ResourceType::Trigger => "triggers",
            ResourceType::User => "users",
            ResourceType::Permission => "permissions",
            ResourceType::Attachment => "attachments",
            ResourceType::Conflict => "conflicts",
            ResourceType::PartitionKeyRange => "pkranges",
            ResourceType::Offer => "offers",
            ResourceType::ClientEncryptionKey => "clientencryptionkeys",
            ResourceType::Schema => "schemas",
        }
    }

    /// Parses a path keyword. Matching is exact: the service rejects `Docs` or `DBS`, so
    /// the proxy does too.
    pub fn from_keyword(keyword: &str) -> Option<ResourceType> {
        ResourceType::ALL
            .into_iter()
            .find(|resource_type| resource_type.keyword() == keyword && !keyword.is_empty())
    }

    /// Returns the singular noun used in operation names (`item` for documents).
    pub fn noun(self) -> &'static str {
        match self {
            ResourceType::Account => "account",
            ResourceType::Database => "database",
            ResourceType::Container => "container",
            ResourceType::Document => "item",
            ResourceType::StoredProcedure => "stored_procedure",
            ResourceType::UserDefinedFunction => "user_defined_function",
            ResourceType::Trigger => "trigger",
            ResourceType::User => "user",
            ResourceType::Permission => "permission",
            ResourceType::Attachment => "attachment",
            ResourceType::Conflict => "conflict",
            ResourceType::PartitionKeyRange => "partition_key_range",
            ResourceType::Offer => "offer",
            ResourceType::ClientEncryptionKey => "client_encryption_key",
            ResourceType::Schema => "schema",
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}

/// What a request does to its resource. Together with the resource type this is the
/// operation (`read` on `docs` is a point read of an item).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// `GET` on one resource.
    Read,
    /// `GET` on a feed: list every resource of the type.
    ReadFeed,
    /// `POST` with `x-ms-documentdb-isquery: True`.
    Query,
    /// `POST` with `x-ms-cosmos-is-query-plan-request: True`.
    QueryPlan,
    /// `GET` on the docs feed with `A-IM: Incremental feed`.
    ReadChangeFeed,
    /// `POST` on a feed.
    Create,
    /// `POST` on a feed with `x-ms-documentdb-is-upsert: True`.
    Upsert,
    /// `PUT` on one resource.
    Replace,
    /// `PATCH` on one resource.
    Patch,
    /// `DELETE` on one resource.
    Delete,
    /// `POST` on a stored procedure.
    Execute,
    /// `POST` on the docs feed with `x-ms-cosmos-is-batch-request: True`.
    Batch,
    /// `HEAD` on one resource or feed.
    Head,
}

impl OperationKind {
    /// Every operation kind, in declaration order.
    pub const ALL: [OperationKind; 13] = [
        OperationKind::Read,
        OperationKind::ReadFeed,
        OperationKind::Query,
        OperationKind::QueryPlan,
        OperationKind::ReadChangeFeed,
        OperationKind::Create,
        OperationKind::Upsert,
        OperationKind::Replace,
        OperationKind::Patch,
        OperationKind::Delete,
        OperationKind::Execute,
        OperationKind::Batch,
        OperationKind::Head,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OperationKind::Read => "read",
            OperationKind::ReadFeed => "read_all",
            OperationKind::Query => "query",
            OperationKind::QueryPlan => "query_plan",
            OperationKind::ReadChangeFeed => "read_change_feed",
            OperationKind::Create => "create",
            OperationKind::Upsert => "upsert",
            OperationKind::Replace => "replace",
            OperationKind::Patch => "patch",
            OperationKind::Delete => "delete",
            OperationKind::Execute => "execute",
            OperationKind::Batch => "batch",
            OperationKind::Head => "head",
        }
    }
}

/// A Cosmos DB operation: what is done to which type of resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Operation {
    pub kind: OperationKind,
    pub resource_type: ResourceType,
}

impl Operation {
    pub fn new(kind: OperationKind, resource_type: ResourceType) -> Operation {
        Operation {
            kind,
            resource_type,
        }
    }

    /// Returns the operation name used in audit records, logs and metric labels, for
    /// example `read_item`, `query_items`, `create_container` or `read_account`.
    pub fn name(self) -> &'static str {
        // Every request needs its operation's name, so each is formatted once and kept.
        static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
        let names = NAMES.get_or_init(|| {
            OperationKind::ALL
                .iter()
                .flat_map(|&kind| {
                    ResourceType::ALL.iter().map(move |&resource_type| {
                        let name = Operation::new(kind, resource_type).to_string();
                        &*Box::leak(name.into_boxed_str())
                    })
                })
                .collect()
        });
        names[self.kind as usize * ResourceType::ALL.len() + self.resource_type as usize]
    }

    /// Checks whether the name's noun is plural: the operation is on a feed of resources.
    fn is_plural(self) -> bool {
        matches!(
            self.kind,
            OperationKind::ReadFeed
                | OperationKind::Query
                | OperationKind::QueryPlan
                | OperationKind::ReadChangeFeed
                | OperationKind::Batch
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.name())?;
        f.write_str("_")?;
        f.write_str(self.resource_type.noun())?;
        if self.is_plural() {
            f.write_str("s")?;
        }
        Ok(())
    }
}

impl Serialize for Operation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// One operation of a transactional batch or bulk request, authorized on its own.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BatchOperation {
    /// `Create`, `Upsert`, `Read`, `Replace`, `Patch` or `Delete` as an item operation.
    pub kind: OperationKind,
    /// The item id the operation names, when it names one (`id` or `resourceBody.id`).
    pub item_id: Option<String>,
    /// The operation's own partition key (`partitionKey`, a JSON array as text), when set.
    pub partition_key: Option<PartitionKey>,
}

/// A partition key value as the `x-ms-documentdb-partitionkey` header carries it: a JSON
/// array with one component per key path (more than one for hierarchical keys).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PartitionKey {
    /// The header value as received, for audit records.
    pub raw: String,
    /// Each component as JSON (`"tenant-a"`, `42`, `null`, `{}` for undefined).
    pub components: Vec<serde_json::Value>,
}

/// Request properties that conditions can test.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RequestProperties {
    /// `x-ms-max-item-count`, when sent (`-1` means the service default).
    pub max_item_count: Option<i64>,
    /// `x-ms-consistency-level`, when sent.
    pub consistency_level: Option<String>,
    /// True when a query or feed read carries `x-ms-documentdb-query-enablecrosspartition:
    /// True` or no partition key header, so it may fan out over every partition.
    pub cross_partition: bool,
}

/// A classified Cosmos DB request: the input of every policy decision.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Request {
    pub operation: Operation,
    /// The decoded resource link the service signs: `dbs/d/colls/c/docs/i` for an item,
    /// `dbs/d/colls/c` for the docs feed of container `c`, `""` for the account.
    pub resource_link: String,
    /// The database name, when the path names one.
    pub database: Option<String>,
    /// The container name, when the path names one.
    pub container: Option<String>,
    /// The id of the addressed resource below the container (item, stored procedure,
    /// trigger, UDF, conflict, ...), or of a database-level user or its permission.
    pub resource_id: Option<String>,
    /// The partition key from `x-ms-documentdb-partitionkey`, when sent.
    pub partition_key: Option<PartitionKey>,
    /// The operations of a batch or bulk request, in order; empty for any other request.
    pub batch: Vec<BatchOperation>,
    pub properties: RequestProperties,
}

impl Request {
    /// Returns the id of an item, for item operations only.
    pub fn item_id(&self) -> Option<&str> {
        match self.operation.resource_type {
            ResourceType::Document => self.resource_id.as_deref(),
            _ => None,
        }
    }
}

/// The authenticated caller, with claims already mapped by the identity layer.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Principal {
    /// The token's `iss`.
    pub issuer: String,
    /// The token's `sub`.
    pub subject: String,
    /// A human-readable name (`name`, `preferred_username`, ... by configuration).
    pub display_name: Option<String>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    /// OAuth scopes, split from a space-separated `scp` or `scope` claim.
    pub scopes: Vec<String>,
    /// The client application id (`azp`, `appid` or `client_id` by configuration).
    pub app_id: Option<String>,
    /// Every claim of the token, for custom conditions and templates.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// Facts about the request that are not in its path or headers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Context {
    /// The TCP peer address of the caller.
    pub source_address: Option<IpAddr>,
    /// Seconds since the Unix epoch at decision time, so decisions stay pure.
    pub unix_time: i64,
}
