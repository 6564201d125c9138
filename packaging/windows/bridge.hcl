# C:\ProgramData\wsbridge\bridge.hcl: the configuration of the wsbridge
# service that the MSI installed.
#
# It bridges browsers on this machine (http://localhost:6080/) to the VNC
# server on 127.0.0.1:5900. Every setting and its default is documented in
# bridge.hcl.example beside wsbridge.exe.
#
# After a change: wsbridge check -config "C:\ProgramData\wsbridge\bridge.hcl",
# then, as an administrator, wsbridge reload (sessions keep running).
# Logs go to the Application event log, source "wsbridge", unless
# log { file = "C:\\ProgramData\\wsbridge\\wsbridge.log" } names a file.

listen = "127.0.0.1:6080"

# A directory of noVNC's files, served beside the bridge.
# web = "C:\\ProgramData\\wsbridge\\novnc"

target "vnc" {
  address = "127.0.0.1:5900"
}

# Prometheus metrics and health checks on http://127.0.0.1:9680/.
admin {
  listen = "127.0.0.1:9680"
}
