"""Cosmos DB SDK clients that the end-to-end tests drive."""
