"""Configuration files for nginx and Cosmoguard, written into the run's temporary directory."""

import os

BACKEND_PORT = 19100
BACKEND_TLS_PORT = 19101
IDP_PORT = 19110
NGINX_PORT = 19120
NGINX_TLS_PORT = 19121
NGINX_H2_PORT = 19122
# The minimal hyper pass-through (`cosmoguard-bench passthrough`) to the plain backend.
PASSTHROUGH_PORT = 19125
PROXY_PORT = 19130
PROXY_ADMIN_PORT = 19131

AUDIENCE = "api://cosmoguard-bench"
ISSUER = f"http://127.0.0.1:{IDP_PORT}"
IDENTITY_HEADER = "bench-identity-header"
# The Cosmos DB emulator's published key: valid base64, guards nothing.
EMULATOR_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="


def write_nginx(work, workers):
    """Writes an nginx configuration for a plain reverse proxy: upstream keep-alive, buffered access log."""
    temp = os.path.join(work, "nginx-temp")
    os.makedirs(temp, exist_ok=True)
    text = f"""
worker_processes {workers};
daemon off;
master_process on;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
worker_rlimit_nofile 20000;
events {{
    worker_connections 16384;
}}
http {{
    access_log {work}/nginx-access.log combined buffer=64k flush=1s;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    keepalive_requests 1000000;
    upstream backend {{
        server 127.0.0.1:{BACKEND_PORT};
        keepalive 256;
    }}
    server {{
        listen 127.0.0.1:{NGINX_PORT};
        listen 127.0.0.1:{NGINX_TLS_PORT} ssl http2;
        listen 127.0.0.1:{NGINX_H2_PORT} http2;
        ssl_certificate {work}/server.pem;
        ssl_certificate_key {work}/server.key;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
    path = os.path.join(work, "nginx.conf")
    with open(path, "w") as file:
        file.write(text)
    return path


def write_proxy(work, name, policy_file, tls=False, credential="key", workers=None):
    """Writes a Cosmoguard configuration listening on PROXY_PORT and forwarding to the plain backend.
    `workers` sets listener.workers; by default the proxy starts one per CPU."""
    listener_tls = ""
    if tls:
        listener_tls = f"""
[listener.tls]
certificate = "{work}/server.pem"
private_key = "{work}/server.key"
"""
    if credential == "key":
        credential_table = f'kind = "key"\nkey_file = "{work}/account.key"\n'
    else:
        credential_table = 'kind = "managed_identity"\nrequire_identity_endpoint = true\n'
    workers_line = f"workers = {workers}\n" if workers else ""
    text = f"""[listener]
address = "127.0.0.1:{PROXY_PORT}"
{workers_line}{listener_tls}
[admin]
address = "127.0.0.1:{PROXY_ADMIN_PORT}"

[upstream]
endpoint = "http://127.0.0.1:{BACKEND_PORT}"

[upstream.credential]
{credential_table}
[[issuers]]
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
jwks_url = "{ISSUER}/jwks"
algorithms = ["RS256", "ES256"]

[policy]
file = "{policy_file}"

[audit]
file = "{work}/audit-{name}.jsonl"

[dangerous]
plain_http_listener = {"false" if tls else "true"}
plain_http_issuers = true
plain_http_upstream = true
"""
    path = os.path.join(work, f"proxy-{name}.toml")
    with open(path, "w") as file:
        file.write(text)
    return path


def proxy_environment(credential):
    """Returns the proxy's environment. Entra mode gets the loopback managed-identity stand-in, so
    azure_identity never falls back to the instance metadata address."""
    env = dict(os.environ)
    env["COSMOGUARD_LOG"] = "warn"
    if credential == "entra":
        env["IDENTITY_ENDPOINT"] = f"{ISSUER}/msi/token"
        env["IDENTITY_HEADER"] = IDENTITY_HEADER
    return env
