#!/usr/bin/env node
// Start @vercel/cosmosdb-server on a loopback address, over HTTPS with a certificate given
// on the command line (the package's bundled certificate expired in 2021 and has no
// subjectAltName), or over plain HTTP with --no-ssl.
"use strict";

const fs = require("fs");
const { parseArgs } = require("util");
const { createHttpServer, createHttpsServer } = require("@vercel/cosmosdb-server");

const usage = `Usage: cosmosdb_server.js --port PORT [--host 127.0.0.1] (--cert FILE --key FILE | --no-ssl) [--keep-alive]

  --port PORT    TCP port to listen on
  --host ADDR    loopback address to bind (default 127.0.0.1)
  --cert FILE    PEM certificate (chain) for HTTPS
  --key FILE     PEM private key for HTTPS
  --no-ssl       serve plain HTTP instead of HTTPS
  --keep-alive   keep connections open (the server closes each one by default)`;

function fail(message) {
  console.error(`cosmosdb_server: ${message}\n\n${usage}`);
  process.exit(2);
}

let options;
try {
  options = parseArgs({
    options: {
      port: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      cert: { type: "string" },
      key: { type: "string" },
      "no-ssl": { type: "boolean", default: false },
      "keep-alive": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  }).values;
} catch (error) {
  fail(error.message);
}
if (options.help) {
  console.log(usage);
  process.exit(0);
}

const port = Number.parseInt(options.port ?? "", 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  fail(`invalid or missing --port: ${options.port}`);
}
const loopback = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/;
if (!loopback.test(options.host)) {
  fail(`--host must be a loopback address, got ${options.host}`);
}

let server;
if (options["no-ssl"]) {
  server = createHttpServer({ keepAlive: options["keep-alive"] });
} else {
  if (!options.cert || !options.key) {
    fail("HTTPS needs both --cert and --key (or pass --no-ssl)");
  }
  server = createHttpsServer({
    cert: fs.readFileSync(options.cert),
    key: fs.readFileSync(options.key),
    minVersion: "TLSv1.2",
    keepAlive: options["keep-alive"],
  });
}

server.on("error", (error) => {
  console.error(`cosmosdb_server: ${error.message}`);
  process.exit(1);
});
server.listen(port, options.host, () => {
  const address = server.address();
  const scheme = options["no-ssl"] ? "http" : "https";
  console.log(`cosmosdb-server listening on ${scheme}://${options.host}:${address.port}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
