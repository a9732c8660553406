#!/usr/bin/env node
// Start oauth2-mock-server as the tests' OpenID Connect provider, with one RS256 and one
// ES256 signing key and issuer.url set to its own http://HOST:PORT URL.
//
// A second, loopback-only control listener mints tokens with chosen claims:
//   POST /mint  {"claims": {...}, "alg": "RS256"|"ES256", "expires_in": 3600,
//                "not_before": -10, "defect": "bad-signature"|"alg-none"}
// returns {"token", "kid", "alg", "header", "payload"}. The provider itself signs every
// token. Claims set to null are removed (for example "aud": null). "expires_in" and
// "not_before" are offsets in seconds from now for exp and nbf. The "bad-signature" defect
// flips one bit in the middle of a correctly signed token's signature, and "alg-none"
// returns an unsigned token with header alg "none".
//
// The provider's own /token endpoint also works: a token request's form field "claims"
// (a JSON object) is merged into the token it issues.
import http from "node:http";
import { parseArgs } from "node:util";
import { OAuth2Server } from "oauth2-mock-server";

const usage = `Usage: oidc_provider.mjs --port PORT --control-port PORT [--host 127.0.0.1]

  --port PORT          port of the OpenID Connect provider (discovery, /jwks, /token)
  --control-port PORT  port of the token-minting control listener
  --host ADDR          loopback address for both listeners (default 127.0.0.1)
  --kid-suffix TEXT    appended to every key id, so a restart with another suffix rotates the keys`;

function fail(message) {
  console.error(`oidc_provider: ${message}\n\n${usage}`);
  process.exit(2);
}

let options;
try {
  options = parseArgs({
    options: {
      port: { type: "string" },
      "control-port": { type: "string" },
      "kid-suffix": { type: "string", default: "" },
      host: { type: "string", default: "127.0.0.1" },
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

function parsePort(name) {
  const port = Number.parseInt(options[name] ?? "", 10);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    fail(`invalid or missing --${name}: ${options[name]}`);
  }
  return port;
}
const port = parsePort("port");
const controlPort = parsePort("control-port");
if (!/^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/.test(options.host)) {
  fail(`--host must be a loopback address, got ${options.host}`);
}

const KEY_IDS = { RS256: `test-rs256${options["kid-suffix"]}`, ES256: `test-es256${options["kid-suffix"]}` };

const provider = new OAuth2Server();
await provider.issuer.keys.generate("RS256", { kid: KEY_IDS.RS256 });
await provider.issuer.keys.generate("ES256", { kid: KEY_IDS.ES256 });
provider.issuer.url = `http://${options.host}:${port}`;

provider.service.on("beforeTokenSigning", (token, request) => {
  const extra = request.body?.claims;
  if (typeof extra === "string" && extra.length > 0) {
    Object.assign(token.payload, JSON.parse(extra));
  }
});

function base64url(buffer) {
  return Buffer.from(buffer).toString("base64url");
}

// Flip one bit of a signature byte in the middle, so the decoded signature really differs
// (changing the last base64url character can leave the decoded bytes unchanged).
function tamperSignature(token) {
  const [header, payload, signature] = token.split(".");
  const bytes = Buffer.from(signature, "base64url");
  bytes[Math.floor(bytes.length / 2)] ^= 0x01;
  return `${header}.${payload}.${base64url(bytes)}`;
}

function decodePart(part) {
  return JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
}

async function mint(request) {
  const alg = request.alg ?? "RS256";
  const kid = KEY_IDS[alg];
  if (kid === undefined) {
    throw new Error(`unsupported alg ${alg}; use one of ${Object.keys(KEY_IDS).join(", ")}`);
  }
  const claims = request.claims ?? {};
  const now = Math.floor(Date.now() / 1000);
  const expiresIn = request.expires_in ?? 3600;
  const notBefore = request.not_before ?? -10;

  const token = await provider.issuer.buildToken({
    kid,
    expiresIn,
    scopesOrTransform: (_header, payload) => {
      payload.nbf = now + notBefore;
      for (const [name, value] of Object.entries(claims)) {
        if (value === null) {
          delete payload[name];
        } else {
          payload[name] = value;
        }
      }
    },
  });

  let result = token;
  if (request.defect === "bad-signature") {
    result = tamperSignature(token);
  } else if (request.defect === "alg-none") {
    const [, payload] = token.split(".");
    result = `${base64url(JSON.stringify({ alg: "none", typ: "JWT" }))}.${payload}.`;
  } else if (request.defect !== undefined && request.defect !== null) {
    throw new Error(`unknown defect ${request.defect}; use bad-signature or alg-none`);
  }
  const [headerPart, payloadPart] = result.split(".");
  return { token: result, kid, alg, header: decodePart(headerPart), payload: decodePart(payloadPart) };
}

function sendJson(response, status, body) {
  const text = JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  response.end(text);
}

const control = http.createServer((request, response) => {
  if (request.method === "GET" && request.url === "/healthz") {
    sendJson(response, 200, { issuer: provider.issuer.url });
    return;
  }
  if (request.method !== "POST" || request.url !== "/mint") {
    sendJson(response, 404, { error: `no route for ${request.method} ${request.url}` });
    return;
  }
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", async () => {
    try {
      const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : {};
      sendJson(response, 200, await mint(body));
    } catch (error) {
      sendJson(response, 400, { error: error.message });
    }
  });
});

await provider.start(port, options.host);
await new Promise((resolve, reject) => {
  control.once("error", reject);
  control.listen(controlPort, options.host, resolve);
});
console.log(`oidc provider ${provider.issuer.url} ready; control listener http://${options.host}:${controlPort}`);

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, async () => {
    control.close();
    await provider.stop();
    process.exit(0);
  });
}
