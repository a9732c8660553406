#!/usr/bin/env node
// Run a list of Cosmos DB operations with the @azure/cosmos Node.js SDK.
//
// Usage: node cosmos_node.js --endpoint URL --ca-file CA (--token JWT | --key KEY) [--ops FILE]
//
// The operations are a JSON array read from stdin (or --ops FILE), in the same format as
// clients/cosmos_py.py; the script prints one JSON object per operation: {op, ok, status,
// substatus, error, data}. With --token the SDK sends the token through aadCredentials
// (`type=aad&ver=1.0&sig=<token>`); with --key it signs each request with the master key.
// Endpoint discovery stays on, as in an unmodified application.
"use strict";

const fs = require("fs");
const https = require("https");
const { parseArgs } = require("util");
const { CosmosClient } = require("@azure/cosmos");

// How long the SDK may treat a token as valid. The proxy, not the SDK, decides whether the
// token itself is still valid, so expired test tokens are still sent.
const TOKEN_LIFETIME_MS = 3600 * 1000;

function withoutSystemProperties(item) {
  if (item === null || typeof item !== "object" || Array.isArray(item)) {
    return item;
  }
  return Object.fromEntries(Object.entries(item).filter(([key]) => !key.startsWith("_")));
}

function containerOf(client, op) {
  return client.database(op.database).container(op.container);
}

async function runOperation(client, op) {
  switch (op.op) {
    case "read_account": {
      const { resource } = await client.getDatabaseAccount();
      return {
        writable: resource.writableLocations.map((location) => location.databaseAccountEndpoint),
        readable: resource.readableLocations.map((location) => location.databaseAccountEndpoint),
      };
    }
    case "list_databases": {
      const { resources } = await client.databases.readAll().fetchAll();
      return resources.map((database) => database.id).sort();
    }
    case "create_database": {
      const create = op.if_not_exists ? client.databases.createIfNotExists : client.databases.create;
      const { resource } = await create.call(client.databases, { id: op.database });
      return { id: resource.id };
    }
    case "delete_database":
      await client.database(op.database).delete();
      return null;
    case "create_container": {
      const containers = client.database(op.database).containers;
      const definition = {
        id: op.container,
        partitionKey: { paths: [op.partition_key_path ?? "/pk"] },
      };
      const create = op.if_not_exists ? containers.createIfNotExists : containers.create;
      const { resource } = await create.call(containers, definition);
      return { id: resource.id };
    }
    case "delete_container":
      await client.database(op.database).container(op.container).delete();
      return null;
    case "create_item": {
      const { resource } = await containerOf(client, op).items.create(op.item);
      return withoutSystemProperties(resource);
    }
    case "upsert_item": {
      const { resource } = await containerOf(client, op).items.upsert(op.item);
      return withoutSystemProperties(resource);
    }
    case "read_item": {
      const response = await containerOf(client, op).item(op.id, op.partition_key).read();
      if (response.statusCode >= 400 || response.resource === undefined) {
        const error = new Error(`read returned status ${response.statusCode}`);
        error.code = response.statusCode;
        error.substatus = response.substatus;
        throw error;
      }
      return withoutSystemProperties(response.resource);
    }
    case "replace_item": {
      const partitionKey = op.partition_key ?? undefined;
      const { resource } = await containerOf(client, op).item(op.id, partitionKey).replace(op.item);
      return withoutSystemProperties(resource);
    }
    case "patch_item": {
      const { resource } = await containerOf(client, op).item(op.id, op.partition_key).patch(op.operations);
      return withoutSystemProperties(resource);
    }
    case "delete_item":
      await containerOf(client, op).item(op.id, op.partition_key).delete();
      return null;
    case "query_items": {
      const querySpec = { query: op.query, parameters: op.parameters ?? [] };
      const options = op.partition_key === undefined ? {} : { partitionKey: op.partition_key };
      const { resources } = await containerOf(client, op).items.query(querySpec, options).fetchAll();
      return resources.map(withoutSystemProperties);
    }
    default:
      throw new Error(`unknown operation ${op.op}`);
  }
}

function describeError(error) {
  const status = typeof error.code === "number" ? error.code : error.statusCode ?? null;
  const substatus = error.substatus ?? error.headers?.["x-ms-substatus"] ?? null;
  let message = error.body?.message ?? error.message ?? String(error);
  if (typeof message !== "string") {
    message = JSON.stringify(message);
  }
  return { status, substatus: substatus === null ? null : Number(substatus), error: message };
}

async function main() {
  const { values: options } = parseArgs({
    options: {
      endpoint: { type: "string" },
      "ca-file": { type: "string" },
      token: { type: "string" },
      key: { type: "string" },
      ops: { type: "string" },
    },
  });
  if (!options.endpoint || (!options.token === !options.key)) {
    console.error("usage: cosmos_node.js --endpoint URL [--ca-file CA] (--token JWT | --key KEY) [--ops FILE]");
    process.exit(2);
  }
  const opsText = options.ops ? fs.readFileSync(options.ops, "utf8") : fs.readFileSync(0, "utf8");
  const ops = JSON.parse(opsText);

  const clientOptions = {
    endpoint: options.endpoint,
    connectionPolicy: {
      requestTimeout: 30000,
      retryOptions: { maxRetryAttemptCount: 1, fixedRetryIntervalInMilliseconds: 500, maxWaitTimeInSeconds: 5 },
    },
  };
  if (options["ca-file"]) {
    clientOptions.agent = new https.Agent({ ca: fs.readFileSync(options["ca-file"]) });
  }
  if (options.token) {
    const token = options.token;
    clientOptions.aadCredentials = {
      getToken: async () => ({ token, expiresOnTimestamp: Date.now() + TOKEN_LIFETIME_MS }),
    };
  } else {
    clientOptions.key = options.key;
  }
  const client = new CosmosClient(clientOptions);

  for (const op of ops) {
    const result = { op: op.op, ok: false, status: null, substatus: null, error: null, data: null };
    try {
      result.data = (await runOperation(client, op)) ?? null;
      result.ok = true;
    } catch (error) {
      Object.assign(result, describeError(error));
    }
    console.log(JSON.stringify(result));
  }
  client.dispose?.();
}

main().catch((error) => {
  console.error(`cosmos_node: ${error.stack ?? error}`);
  process.exit(1);
});
