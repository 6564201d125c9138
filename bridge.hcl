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

log {
  level  = "info" # debug, info, warn or error
  format = "text" # text or json
  file   = ""     # "" is standard error (journald under systemd)
}

# Everything before the upgrade.
http {
  header_timeout  = "10s"   # a client must send its request headers in this time
  max_header_size = "16KiB" # larger request headers get 431

  # Browser origins allowed besides the page served by this bridge's own
  # host: "host:port" or "scheme://host:port", with * and ? wildcards, or
  # "null" for sandboxed pages. Requests without Origin (programs) pass.
  origins = []
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
  read_size     = "64KiB" # largest read from a target, sent as one WebSocket message

  # Close binary sessions that receive a text message with 1003, as
  # websockify 0.9+ does. By default the text message's bytes are relayed.
  strict_text = false

  # websockify's order: answer 101 first, then dial, and close with 1011 if
  # the target is down. By default the target is dialled first, so a dead
  # target is an HTTP 502 that shows in the browser's network panel.
  dial_after_upgrade = false
}

# Targets. A request whose path equals a target's path goes there. A target
# without path takes every other request, unless token files are configured
# (then an unknown token must not fall through to it, so that is an error).
# Addresses: "host:port", "[v6]:port" or "unix:/absolute/path".
target "desktop" {
  address = "127.0.0.1:5900"
  path    = "/vnc"
}

target "shell" {
  address = "unix:/run/ttyd/ttyd.sock"
  path    = "/term"
}

# websockify token files: lines of "token: host:port" (also [::1]:5901,
# ::1:5901 and unix_socket:/path), # comments. A directory means every
# file in it. Files are re-read when they change. Requests carry the token
# as ?token=... (noVNC: vnc.html?path=websockify%3Ftoken%3D...).
token_file "desktops" {
  path = "/etc/wsbridge/tokens"
}
