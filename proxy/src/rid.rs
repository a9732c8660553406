//! Resource ids (RIDs): the account's own ids for databases and containers, which some
//! SDKs put in paths instead of names (the .NET SDK reads partition key ranges at
//! `/dbs/{db RID}/colls/{container RID}/pkranges`).
//!
//! Policies are written with names, so a RID-addressed request is decided on the names
//! its RIDs stand for. The map is learnt from the `_rid` and `id` fields of responses
//! the account generates about databases and containers: a read, create or replace of
//! the named resource (whose `id` must match the name the request used), a list feed,
//! and the proxy's own reads by RID when it resolves an offer's owner (whose `_rid` must
//! be the RID read). Query results are never learnt from, because a query can project any value
//! under any name. A container RID must also belong to the database RID in the path:
//! its first 4 bytes are the database's RID. A RID the proxy has not seen is denied,
//! never passed: SDKs read a container by name before they address it by RID.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use cosmoguard_policy::{OperationKind, ResourceType};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use moka::sync::Cache;
use serde::Deserialize;

use crate::body::{BoxError, ProxyBody};
use crate::classify::Classified;

/// RIDs remembered; beyond this the least recently used are forgotten.
const CAPACITY: u64 = 100_000;

/// The largest response body read to learn RIDs. Container feeds of accounts with very
/// many containers are larger; they stream through without teaching the map.
const MAX_LEARN_BYTES: usize = 1024 * 1024;

/// Names that RIDs stand for, shared by all connections.
#[derive(Clone, Debug)]
pub struct RidMap {
    databases: Cache<String, Arc<str>>,
    containers: Cache<String, (Arc<str>, Arc<str>)>,
}

impl Default for RidMap {
    fn default() -> Self {
        RidMap {
            databases: Cache::new(CAPACITY),
            containers: Cache::new(CAPACITY),
        }
    }
}

/// A RID the map does not know.
#[derive(Debug, thiserror::Error)]
#[error("resource id {rid} has not been seen in a database or container response")]
pub struct UnknownRid {
    pub rid: String,
}

#[derive(Deserialize)]
struct Resource {
    id: String,
    #[serde(rename = "_rid")]
    rid: String,
}

#[derive(Deserialize)]
struct DatabaseFeed {
    #[serde(rename = "Databases")]
    databases: Vec<Resource>,
}

#[derive(Deserialize)]
struct ContainerFeed {
    #[serde(rename = "DocumentCollections")]
    containers: Vec<Resource>,
}

impl RidMap {
    /// Replaces the RIDs of a RID-addressed request by names, so the policy decides on
    /// names. The signing link keeps the RID, as the service expects.
    pub fn resolve(&self, classified: &mut Classified) -> Result<(), UnknownRid> {
        let Some(address) = classified.rid.clone() else {
            return Ok(());
        };
        let (database, container) = match &address.container {
            Some(container_rid) => {
                let (database, container) = self
                    .container_names(&address.database, container_rid)
                    .ok_or_else(|| UnknownRid {
                        rid: container_rid.clone(),
                    })?;
                (database, Some(container))
            }
            None => {
                let database = self
                    .database_name(&address.database)
                    .ok_or_else(|| UnknownRid {
                        rid: address.database.clone(),
                    })?;
                (database, None)
            }
        };

        let request = &mut classified.request;
        let mut link = format!("dbs/{database}");
        if let Some(container) = &container {
            link.push_str("/colls/");
            link.push_str(container);
        }
        request.resource_link = link;
        request.database = Some(database.to_string());
        request.container = container.map(|name| name.to_string());
        Ok(())
    }

    /// Returns the name of the database with this RID, if it has been learnt.
    pub fn database_name(&self, database_rid: &str) -> Option<Arc<str>> {
        self.databases.get(database_rid)
    }

    /// Returns the database and container names of a container RID, if it has been learnt
    /// and belongs to the database RID. A database RID learnt under another name than the
    /// container's database makes the pair unknown.
    pub fn container_names(
        &self,
        database_rid: &str,
        container_rid: &str,
    ) -> Option<(Arc<str>, Arc<str>)> {
        if !belongs_to(container_rid, database_rid) {
            return None;
        }
        let (database, container) = self.containers.get(container_rid)?;
        if let Some(known) = self.databases.get(database_rid)
            && known != database
        {
            return None;
        }
        Some((database, container))
    }

    /// Learns a database from the proxy's own read of `dbs/{rid}` and returns its name.
    /// The body must report the RID that was read, so a response about another resource
    /// teaches nothing.
    pub fn learn_database_read(&self, database_rid: &str, body: &[u8]) -> Option<Arc<str>> {
        let database = read_resource(database_rid, body)?;
        let name: Arc<str> = Arc::from(database.id);
        self.databases.insert(database.rid, Arc::clone(&name));
        Some(name)
    }

    /// Learns a container of the named database from the proxy's own read of
    /// `dbs/{database rid}/colls/{rid}` and returns its name. The body must report the
    /// RID that was read, and that RID must belong to the database RID.
    pub fn learn_container_read(
        &self,
        database_rid: &str,
        database: &str,
        container_rid: &str,
        body: &[u8],
    ) -> Option<Arc<str>> {
        if !belongs_to(container_rid, database_rid) {
            return None;
        }
        let container = read_resource(container_rid, body)?;
        let name: Arc<str> = Arc::from(container.id);
        self.containers
            .insert(container.rid, (Arc::from(database), Arc::clone(&name)));
        Some(name)
    }

    /// Wraps a response body so the RIDs it reports are learnt when it ends, for the
    /// database and container responses that carry them. Other bodies pass unchanged.
    pub fn learn_from(
        &self,
        classified: &Classified,
        status: http::StatusCode,
        body: ProxyBody,
    ) -> ProxyBody {
        let Some(source) = self.source(classified, status) else {
            return body;
        };
        LearningBody {
            inner: body,
            buffer: BytesMut::new(),
            overflowed: false,
            source: Some(source),
            map: self.clone(),
        }
        .boxed()
    }

    fn source(&self, classified: &Classified, status: http::StatusCode) -> Option<Source> {
        let request = &classified.request;
        if !status.is_success() || classified.rid.is_some() {
            return None;
        }
        let feed = request.operation.kind == OperationKind::ReadFeed;
        let single = matches!(
            request.operation.kind,
            OperationKind::Read | OperationKind::Create | OperationKind::Replace
        );
        match request.operation.resource_type {
            ResourceType::Database if feed => Some(Source::DatabaseFeed),
            ResourceType::Database if single => Some(Source::Database {
                name: request.database.clone()?,
            }),
            ResourceType::Container if feed => Some(Source::ContainerFeed {
                database: request.database.clone()?,
            }),
            ResourceType::Container if single => Some(Source::Container {
                database: request.database.clone()?,
                name: request.container.clone()?,
            }),
            _ => None,
        }
    }

    fn learn(&self, source: Source, body: &[u8]) {
        match source {
            Source::Database { name } => {
                if let Ok(database) = serde_json::from_slice::<Resource>(body)
                    && database.id == name
                {
                    self.insert_database(database);
                }
            }
            Source::DatabaseFeed => {
                if let Ok(feed) = serde_json::from_slice::<DatabaseFeed>(body) {
                    feed.databases
                        .into_iter()
                        .for_each(|database| self.insert_database(database));
                }
            }
            Source::Container { database, name } => {
                if let Ok(container) = serde_json::from_slice::<Resource>(body)
                    && container.id == name
                {
                    self.insert_container(&database, container);
                }
            }
            Source::ContainerFeed { database } => {
                if let Ok(feed) = serde_json::from_slice::<ContainerFeed>(body) {
                    feed.containers
                        .into_iter()
                        .for_each(|container| self.insert_container(&database, container));
                }
            }
        }
    }

    fn insert_database(&self, database: Resource) {
        self.databases.insert(database.rid, Arc::from(database.id));
    }

    fn insert_container(&self, database: &str, container: Resource) {
        self.containers.insert(
            container.rid,
            (Arc::from(database), Arc::from(container.id)),
        );
    }
}

/// Parses a database or container read by RID, when its `_rid` is the RID that was read
/// and its `id` is not empty.
fn read_resource(rid: &str, body: &[u8]) -> Option<Resource> {
    serde_json::from_slice::<Resource>(body)
        .ok()
        .filter(|resource| resource.rid == rid && !resource.id.is_empty())
}

/// The kind of response body that RIDs are learnt from.
#[derive(Debug)]
enum Source {
    Database { name: String },
    DatabaseFeed,
    Container { database: String, name: String },
    ContainerFeed { database: String },
}

/// Returns whether a container RID belongs to a database RID: its first 4 bytes are the
/// database's RID. RIDs are base64 with `-` in place of `/`.
fn belongs_to(container_rid: &str, database_rid: &str) -> bool {
    match (decode_rid(container_rid), decode_rid(database_rid)) {
        (Some(container), Some(database)) => {
            container.len() == 8 && database.len() == 4 && container[..4] == database[..]
        }
        _ => false,
    }
}

fn decode_rid(rid: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(rid.replace('-', "/"))
        .ok()
}

/// A body that streams through unchanged while keeping a bounded copy to learn from.
struct LearningBody {
    inner: ProxyBody,
    buffer: BytesMut,
    overflowed: bool,
    source: Option<Source>,
    map: RidMap,
}

impl LearningBody {
    fn finish_learning(&mut self) {
        if let Some(source) = self.source.take()
            && !self.overflowed
        {
            let buffer = std::mem::take(&mut self.buffer);
            self.map.learn(source, &buffer);
        }
    }
}

impl Body for LearningBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(context);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if self.buffer.len() + data.len() > MAX_LEARN_BYTES {
                        self.overflowed = true;
                        self.buffer = BytesMut::new();
                    } else if !self.overflowed {
                        self.buffer.extend_from_slice(data);
                    }
                }
                // A body of known length ends with its last data frame: the server does
                // not poll again, so the end is detected here.
                if self.inner.is_end_stream() {
                    self.finish_learning();
                }
            }
            Poll::Ready(None) => self.finish_learning(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, Method, StatusCode};
    use http_body_util::Full;

    use super::*;
    use crate::classify::classify;

    fn classified(method: Method, path: &str) -> Classified {
        classify(&method, path, &HeaderMap::new()).unwrap()
    }

    async fn pass_through(map: &RidMap, request: &Classified, body: &str) -> Bytes {
        let body = Full::new(Bytes::from(body.to_owned()))
            .map_err(|never| match never {})
            .boxed();
        map.learn_from(request, StatusCode::OK, body)
            .collect()
            .await
            .unwrap()
            .to_bytes()
    }

    #[tokio::test]
    async fn learns_container_rid_and_resolves_pkranges() {
        let map = RidMap::default();
        let read = classified(Method::GET, "/dbs/shop/colls/orders");
        let body = r#"{"id":"orders","_rid":"rnYYAMU-+yE=","partitionKey":{}}"#;
        assert_eq!(pass_through(&map, &read, body).await, body);

        let mut by_rid = classified(Method::GET, "/dbs/rnYYAA==/colls/rnYYAMU-+yE=/pkranges");
        map.resolve(&mut by_rid).unwrap();
        assert_eq!(by_rid.request.database.as_deref(), Some("shop"));
        assert_eq!(by_rid.request.container.as_deref(), Some("orders"));
        assert_eq!(by_rid.request.resource_link, "dbs/shop/colls/orders");
        assert_eq!(by_rid.signing_resource_link, "rnyyamu-+ye=");
    }

    #[tokio::test]
    async fn learns_databases_from_feed() {
        let map = RidMap::default();
        let feed = classified(Method::GET, "/dbs");
        let body = r#"{"_rid":"","Databases":[{"id":"shop","_rid":"rnYYAA=="},{"id":"hr","_rid":"ESIzAA=="}]}"#;
        pass_through(&map, &feed, body).await;

        let mut by_rid = classified(Method::GET, "/dbs/ESIzAA==");
        map.resolve(&mut by_rid).unwrap();
        assert_eq!(by_rid.request.database.as_deref(), Some("hr"));
        assert_eq!(by_rid.request.resource_link, "dbs/hr");
    }

    #[tokio::test]
    async fn query_results_teach_nothing() {
        let map = RidMap::default();
        let mut query = classified(Method::POST, "/dbs/shop/colls");
        query.request.operation.kind = OperationKind::Query;
        let body = r#"{"DocumentCollections":[{"id":"orders","_rid":"rnYYAMU-+yE="}]}"#;
        pass_through(&map, &query, body).await;
        let mut by_rid = classified(Method::GET, "/dbs/rnYYAA==/colls/rnYYAMU-+yE=/pkranges");
        assert!(map.resolve(&mut by_rid).is_err());
    }

    #[tokio::test]
    async fn single_response_must_name_the_requested_resource() {
        let map = RidMap::default();
        let read = classified(Method::GET, "/dbs/shop/colls/orders");
        pass_through(&map, &read, r#"{"id":"secrets","_rid":"rnYYAMU-+yE="}"#).await;
        let mut by_rid = classified(Method::GET, "/dbs/rnYYAA==/colls/rnYYAMU-+yE=/pkranges");
        assert!(map.resolve(&mut by_rid).is_err());
    }

    #[tokio::test]
    async fn container_rid_must_belong_to_the_database_rid() {
        let map = RidMap::default();
        let read = classified(Method::GET, "/dbs/shop/colls/orders");
        pass_through(&map, &read, r#"{"id":"orders","_rid":"rnYYAMU-+yE="}"#).await;
        let mut wrong_database =
            classified(Method::GET, "/dbs/ESIzAA==/colls/rnYYAMU-+yE=/pkranges");
        assert!(map.resolve(&mut wrong_database).is_err());
    }

    #[test]
    fn unknown_rid_is_an_error() {
        let map = RidMap::default();
        let mut by_rid = classified(Method::GET, "/dbs/rnYYAA==/colls/rnYYAMU-+yE=/pkranges");
        let error = map.resolve(&mut by_rid).unwrap_err();
        assert_eq!(error.rid, "rnYYAMU-+yE=");
    }

    #[test]
    fn learns_database_and_container_reads_by_rid() {
        let map = RidMap::default();
        let database = map.learn_database_read(
            "rnYYAA==",
            br#"{"id":"shop","_rid":"rnYYAA==","_self":"dbs/rnYYAA==/"}"#,
        );
        assert_eq!(database.as_deref(), Some("shop"));
        let container = map.learn_container_read(
            "rnYYAA==",
            "shop",
            "rnYYAMU-+yE=",
            br#"{"id":"orders","_rid":"rnYYAMU-+yE=","_self":"dbs/rnYYAA==/colls/rnYYAMU-+yE=/"}"#,
        );
        assert_eq!(container.as_deref(), Some("orders"));

        assert_eq!(map.database_name("rnYYAA==").as_deref(), Some("shop"));
        let names = map.container_names("rnYYAA==", "rnYYAMU-+yE=");
        assert_eq!(
            names
                .as_ref()
                .map(|(database, container)| (&**database, &**container)),
            Some(("shop", "orders"))
        );
    }

    #[test]
    fn rejects_read_reporting_other_rid() {
        let map = RidMap::default();
        let other = br#"{"id":"hr","_rid":"ESIzAA=="}"#;
        assert!(map.learn_database_read("rnYYAA==", other).is_none());
        assert!(map.database_name("rnYYAA==").is_none());
        assert!(map.database_name("ESIzAA==").is_none());

        let container = br#"{"id":"orders","_rid":"ESIzAMU-+yE="}"#;
        let learnt = map.learn_container_read("rnYYAA==", "shop", "rnYYAMU-+yE=", container);
        assert!(learnt.is_none());
        assert!(map.container_names("ESIzAA==", "ESIzAMU-+yE=").is_none());
    }

    #[test]
    fn rejects_container_of_other_database() {
        let map = RidMap::default();
        let body = br#"{"id":"orders","_rid":"rnYYAMU-+yE="}"#;
        let learnt = map.learn_container_read("ESIzAA==", "hr", "rnYYAMU-+yE=", body);
        assert!(learnt.is_none());
        assert!(map.container_names("rnYYAA==", "rnYYAMU-+yE=").is_none());
    }

    #[test]
    fn container_names_check_the_database_rid() {
        let map = RidMap::default();
        map.learn_database_read("rnYYAA==", br#"{"id":"shop","_rid":"rnYYAA=="}"#);
        let body = br#"{"id":"orders","_rid":"rnYYAMU-+yE="}"#;
        map.learn_container_read("rnYYAA==", "hr", "rnYYAMU-+yE=", body);
        assert!(map.container_names("rnYYAA==", "rnYYAMU-+yE=").is_none());
        assert!(map.container_names("ESIzAA==", "rnYYAMU-+yE=").is_none());
    }

    #[tokio::test]
    async fn failed_responses_teach_nothing() {
        let map = RidMap::default();
        let read = classified(Method::GET, "/dbs/shop");
        let body = Full::new(Bytes::from_static(br#"{"id":"shop","_rid":"rnYYAA=="}"#))
            .map_err(|never| match never {})
            .boxed();
        map.learn_from(&read, StatusCode::NOT_FOUND, body)
            .collect()
            .await
            .unwrap();
        let mut by_rid = classified(Method::GET, "/dbs/rnYYAA==");
        assert!(map.resolve(&mut by_rid).is_err());
    }
}
