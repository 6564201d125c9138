// Package bridge relays bytes between WebSocket clients and TCP or
// Unix-socket targets, speaking websockify's wire protocol.
//
// One session, start to end (see Server.ServeHTTP):
//
//  1. A request without "Upgrade: websocket" goes to Options.Files (a
//     StaticFiles web root) or gets 426.
//  2. The handshake is checked (method, version, key), the subprotocol
//     negotiated (none, "binary" or "base64"; anything else is a 400), and
//     the Origin checked; every refusal is an HTTP status with a short
//     reason, logged once.
//  3. A client address that spent its failed-lookup budget gets 429. The
//     token is read from where Options.Token says (query, path, cookie or
//     Host), and the targets.Resolver picks the target from the host, the
//     path and the token; an unknown or malformed token is a 404 and
//     spends one failure, a token source that is down a 503.
//  4. The target is dialled before the 101, through targets.Target.Dial,
//     which holds targets from dynamic sources to their allowlist. A dead
//     target is a 502, or a 404 when a token chose it, so tokens cannot be
//     probed; a target outside the allowlist is a 404 as well.
//  5. websocket.Accept answers 101; two pumps relay bytes, one per
//     direction, with pooled buffers and no allocation per message. One
//     goroutine for all sessions (pinger) sends the keepalive pings and
//     watches their pong deadlines; timers watch the idle and lifetime
//     limits.
//  6. The first side to end decides the close code (see the table in the
//     README), and finish closes both sides without losing a byte.
//  7. One log line records the session.
//
// Server.Shutdown stops accepting, lets sessions drain, then closes the rest
// with 1001.
package bridge
