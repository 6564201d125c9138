# /etc/wsbridge/bridge.hcl: the packaged configuration of the wsbridge service.
#
# It bridges browsers on this machine (http://localhost:6080/) to the VNC
# server on 127.0.0.1:5900, which is what a kiosk needs. Every setting and
# its default is documented in /usr/share/doc/wsbridge/bridge.hcl.example.
#
# After a change: wsbridge check -config /etc/wsbridge/bridge.hcl, then
# systemctl reload wsbridge (sessions keep running).

listen = "127.0.0.1:6080"

# noVNC from Debian's novnc package (recommended by this package). With
# it installed, uncomment this and open http://localhost:6080/vnc.html.
# web = "/usr/share/novnc"

# The service's own runtime directory (systemd RuntimeDirectory=wsbridge).
# pid_file = "/run/wsbridge/wsbridge.pid"

target "vnc" {
  address = "127.0.0.1:5900"
}

# Prometheus metrics and health checks on http://127.0.0.1:9680/.
admin {
  listen = "127.0.0.1:9680"
}
