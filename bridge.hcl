# bridge.hcl: every wsbridge setting, with its default.
#
# Check a file with `wsbridge check -config bridge.hcl`, run it with
# `wsbridge run -config bridge.hcl`. Durations and sizes are strings:
# "30s", "5m", "1h30m"; "64KiB", "1MiB", "512B". env("NAME") and
# env("NAME", "default") read the environment.

# Where clients connect. 127.0.0.1 keeps the bridge private to this machine;
# "[::]:6080" or "0.0.0.0:6080" open it to the network, deliberately.
listen = "127.0.0.1:6080"

# A directory served as static files next to the bridge, such as noVNC
# ("/usr/share/novnc" from Debian's novnc package). No directory listings,
# no dotfiles, nothing outside the directory. "" serves nothing.
web = ""

# On SIGINT or SIGTERM: stop accepting, let sessions run this long, then
# close the rest with 1001.
drain_timeout = "10s"

# On SIGHUP (or `wsbridge reload`), sessions of a target the new file
# removed (or moved) close with 1012 after this long.
reload_grace = "30s"

# Where to write the process ID while running, for `wsbridge reload`.
pid_file = ""

log {
  level  = "info" # debug, info, warn or error
  format = "text" # text or json
  file   = ""     # "" is standard error (journald under systemd; the event log under the Windows service manager)
  syslog = ""     # "/dev/log" or "udp:host:514" sends lines to syslog instead
}

# More places to listen, beside (or, without listen in the file, instead
# of) listen. address is "host:port", "unix:/path", "systemd" or
# "systemd:NAME" (sockets passed by systemd). PROXY protocol headers are
# read only from trusted_proxies; from anyone else they close the
# connection.
#
# listener "public" {
#   address         = "[::]:6080"
#   proxy_protocol  = "require" # off, optional or require
#   trusted_proxies = ["10.0.0.0/24"]
# }
# listener "local" {
#   address = "unix:/run/wsbridge/ws.sock"
#   mode    = "0660"
# }

# Metrics (/metrics) and health checks (/healthz, /readyz, /selfcheck) on
# their own listener. Absent: no admin listener.
#
# admin {
#   listen        = "127.0.0.1:9680"
#   ready_targets = ["vnc"] # /readyz dials these
#   self_check    = true    # /readyz opens a WebSocket through the listener
# }

# Session recordings, for targets with record = "novnc" or "raw".
#
# recording {
#   dir            = "/var/lib/wsbridge/recordings"
#   max_file_size  = "100MiB"
#   max_total_size = "1GiB"
#   all            = ""     # "novnc" or "raw" records every session
# }

# Everything before the upgrade.
http {
  header_timeout  = "10s"   # a client must send its request headers in this time
  max_header_size = "16KiB" # larger request headers get 431

  # HTTP proxies whose X-Forwarded-For or Forwarded header names the
  # client: networks or addresses. Empty believes no such header.
  trusted_proxies = []

  # Host names served (the Host header without its port): names, IP
  # addresses ("[::1]"), or "*.example.com" for every name below it; ["*"]
  # serves any. Any other Host gets 403, which stops DNS rebinding: a page
  # on an attacker's name that resolves to this bridge sends that name.
  # Left out, a bridge listening on loopback serves localhost, 127.0.0.1
  # and [::1] only, and one listening elsewhere serves any name.
  hosts = ["localhost", "127.0.0.1", "[::1]"]

  # Browser origins allowed besides pages from this bridge's own host and
  # port: "scheme://host[:port]", "scheme://*.domain[:port]", or "null" for
  # sandboxed pages and file:// (refused unless listed). Origins are
  # compared as browsers send them: lower case, no path, no default port.
  origins = []

  # Requests without Origin come from programs, not browsers. They get 403
  # unless this is true (the websockify command line sets it).
  allow_no_origin = false

  # The web root's Content-Security-Policy; "" is the default, which lets
  # noVNC load from this host and connect back to it, and nothing else.
  content_security_policy = ""
}

# wss:// and https://. Without this block the listener speaks plain HTTP.
# Certificates and keys are PEM; a chain lists the server certificate
# first. Files are re-read when they change (checked every
# reload_interval) and on SIGHUP; live sessions keep running, new ones get
# the new certificate. A renewal that does not load is logged and the
# previous certificate stays.
tls {
  cert = "/etc/wsbridge/tls/bridge.crt"
  key  = "/etc/wsbridge/tls/bridge.key" # "" when the key is in the cert file

  # More certificates, chosen by the name the client asks for (SNI); the
  # first one above serves clients that ask for none or another name.
  certificate {
    cert = "/etc/wsbridge/tls/vnc.example.org.crt"
    key  = "/etc/wsbridge/tls/vnc.example.org.key"
  }

  min_version     = "1.2"   # or "1.3"; suites are forward-secret AEAD only
  allow_plain     = false   # also serve ws:// on this port, told apart by the first byte (websockify without --ssl-only)
  reload_interval = "10s"

  # Client certificates (mTLS): the CA bundle that signs them. With
  # require_client_cert, a handshake without one fails (and plain requests
  # get 403); without it, a certificate is checked when offered and names
  # the client for auth.allow and target identities.
  client_ca           = "/etc/wsbridge/tls/clients-ca.pem"
  require_client_cert = false
}

# Authentication, checked before any token lookup. Credentials a request
# presents are always checked; a wrong password or bearer token is a 401
# and counts as a failed lookup (token.max_failures), so guessing is slow.
# Identities: "user:NAME" (Basic), "bearer:NAME" (a bearer token's name),
# "cert:NAME" (a client certificate's CN or any DNS, e-mail or URI name),
# "cn:NAME" (its CN only).
auth {
  htpasswd    = "/etc/wsbridge/htpasswd" # bcrypt only: htpasswd -B -c FILE USER
  bearer_file = ""                       # lines of "NAME TOKEN" or "NAME sha256:HEX"
  realm       = "wsbridge"
  require     = true        # every upgrade needs an identity (401 without)
  allow       = []          # identities admitted; [] admits any authenticated one
  web         = false       # the web root needs an identity too
}

# TLS toward every target (websockify --ssl-target). Verified against the
# system's CAs, or ca_file, for the target's host name or server_name;
# insecure_skip_verify encrypts without checking who answers.
target_tls {
  ca_file              = ""
  server_name          = ""
  insecure_skip_verify = false
  cert                 = "" # a client certificate to present, and its key
  key                  = ""
}

# The life of one bridged client.
session {
  dial_timeout  = "10s"   # connecting to a target; a failure is HTTP 502
  write_timeout = "30s"   # any single write to the client or the target; "0s" is off
  ping_interval = "25s"   # WebSocket pings; "0s" is off
  pong_timeout  = "15s"   # a ping without pong for this long closes with 1001
  idle_timeout  = "0s"    # no byte either way for this long closes with 1008; "0s" is off
  max_lifetime  = "0s"    # sessions older than this close with 1008; "0s" is off
  linger        = "5s"    # once one side ends, time for the other's last bytes and the close handshake
  message_limit = "64KiB" # largest client message (decoded, for base64); larger closes with 1009
  # Largest WebSocket message to the client (bytes before base64), and the
  # read size while the target sends little; while it sends in bulk, reads
  # take up to 512 KiB (or read_size, when larger) and their messages leave
  # in one system call.
  read_size     = "64KiB"

  # Close binary sessions that receive a text message with 1003, as
  # websockify 0.9+ does. By default the text message's bytes are relayed.
  strict_text = false

  # websockify's order: answer 101 first, then dial, and close with 1011 if
  # the target is down. By default the target is dialled first, so a dead
  # target is an HTTP 502 that shows in the browser's network panel.
  dial_after_upgrade = false
}

# Who may open how many sessions, and how fast bytes move. Admission comes
# before anything else: a refused handshake costs no lookup and no dial.
limits {
  # All sessions, live or in their handshake; 503 past it. 0 is the
  # ceiling the open-files limit allows, (limit - 64) / 2, which is also
  # the most any value here gets; the start line logs the number in use.
  max_sessions = 0

  # Per client address (an IPv6 /64): live sessions (429 past it) and new
  # handshakes per second with a burst (429 with Retry-After). 0 is no cap.
  # Behind a proxy on the same host every client has the proxy's address:
  # raise or turn these off there.
  per_ip_sessions = 16
  per_ip_rate     = 10
  per_ip_burst    = 20

  per_target_sessions = 0 # live sessions of each target (a target block's max_sessions overrides); 503 past it
  per_token_sessions  = 0 # live sessions that use one token; 429 past it

  # Bytes per second, "0" unlimited: each session in each direction (in is
  # client to target), and all sessions together. A waiting session reads
  # nothing more, so limits queue no data.
  session_bandwidth_in  = "0"
  session_bandwidth_out = "0"
  total_bandwidth_in    = "0"
  total_bandwidth_out   = "0"
}

# Where requests carry their token, and what failed lookups cost.
token {
  from        = "query" # query (?token=..., websockify), path, cookie or host (websockify --host-token)
  name        = "token" # the query parameter or cookie
  path_prefix = "/"     # for from = "path": "/t/" reads the token of /t/abc

  # A client address (an IPv6 /64) that fails this many token lookups in
  # failure_window gets 429 for ban, without any source being asked. A
  # target that is down counts when a token chose it: the client sees the
  # same 404 either way, so tokens cannot be probed. 0 is off.
  max_failures   = 5
  failure_window = "1m"
  ban            = "1m"
}

# Targets. A request goes to the most specific match: a target with its
# host and path, then one with its path, then one with its host, then (if
# the request has a token) one with its token, then the token sources in
# the order they appear below. A target with none of path, host and token
# takes every other request, unless tokens are in use (then an unknown
# token must not fall through to it, so that is an error).
# Addresses: "host:port", "[v6]:port" or "unix:/absolute/path".
# dial_timeout, ping_interval and message_limit override the session block.
# identities limits who may use a target (see auth); a tls block inside a
# target speaks TLS to it, with the settings of target_tls. max_sessions,
# bandwidth_in and bandwidth_out limit all sessions of the target together.
target "desktop" {
  address = "127.0.0.1:5900"
  path    = "/vnc"
}

target "admin" {
  address    = "10.0.0.2:22"
  path       = "/ssh"
  identities = ["cert:ops.example.com", "user:alice"]
  # proxy_protocol = "v2" # tell the server the browser's address first
  # record = "raw"        # record sessions (needs a recording block)
  tls {
    ca_file     = "/etc/wsbridge/tls/internal-ca.pem"
    server_name = "bastion.internal"
  }
}

target "shell" {
  address       = "unix:/run/ttyd/ttyd.sock"
  path          = "/term"
  ping_interval = "10s"
}

target "kiosk" {
  address = "10.0.0.40:5900"
  host    = "kiosk.example.com" # requests whose Host is this name
}

target "lab" {
  address       = "10.0.0.41:5900"
  max_sessions  = 4
  bandwidth_out = "2MiB"
  token         = env("LAB_TOKEN", "lab-7f3c9a1e") # a static token; never logged
  message_limit = "1MiB"
}

# Token sources. Tokens are 1 to 256 characters of A-Z a-z 0-9 - . _ ~ + = @
# (4096 for JWTs), without "..": anything else is refused before a lookup.
# Sources whose targets come from outside this file (token_redis,
# token_jwt, token_http) must say which targets they may name:
#   allow = ["10.0.0.0/8:5900-5999", "[fd00::/8]:22", "unix:/run/vnc"]
# checked against the address actually dialled, after DNS.

# websockify token files: lines of "token: host:port" (also [::1]:5901,
# ::1:5901 and unix_socket:/path), # comments. A directory means every
# file in it. Files are re-read when they change. style = "names" reads
# websockify's TokenFileName layout instead: the file name is the token,
# the content the target. allow is optional here.
token_file "desktops" {
  path  = "/etc/wsbridge/tokens"
  style = "lines"
}

# websockify's TokenRedis: key "namespace:token" (or "token"), value
# {"host": "host:port"} or "host:port". Several wsbridge instances behind
# a load balancer share one map this way. Found targets are cached for
# cache_ttl; while Redis is down, other lookups answer 503.
token_redis "fleet" {
  address   = "127.0.0.1:6379"
  db        = 0
  username  = ""
  password  = env("WSBRIDGE_REDIS_PASSWORD", "")
  namespace = "wsbridge"
  timeout   = "2s"
  cache_ttl = "5s"
  allow     = ["10.0.0.0/8:5900-5999"]
}

# websockify's JWTTokenApi: the token is a signed JWT whose claims "host"
# and "port" name the target. key_file is a PEM public key, certificate or
# private key, or an HMAC secret (base64url, as websockify reads it, or
# secret_encoding = "raw"). The algorithms are pinned; alg "none" and
# encrypted tokens are refused.
token_jwt "signed" {
  key_file        = "/etc/wsbridge/jwt-public.pem"
  algorithms      = ["RS256"]
  audience        = "wsbridge" # "" skips the aud check
  require_exp     = true       # websockify accepts tokens without exp
  leeway          = "0s"       # clock skew forgiven on exp and nbf
  secret_encoding = "base64url"
  allow           = ["10.0.0.0/8:5900-5999"]
}

# websockify's JSONTokenApi: GET the URL with the token in place of %s
# (percent-encoded); a 2xx reply {"host": "h", "port": 5900} or
# "host:port" names the target, a 4xx means "unknown token", anything else
# (or no answer within timeout) answers 503.
token_http "lookup" {
  url       = "http://127.0.0.1:8000/tokens/%s"
  timeout   = "2s"
  cache_ttl = "5s"
  allow     = ["10.0.0.0/8:5900-5999"]
}

# websockify's UnixDomainSocketDirectory: the token names a Unix socket in
# this directory. Symbolic links, .. and other directories are refused.
socket_dir "vms" {
  path = "/run/vnc"
}
