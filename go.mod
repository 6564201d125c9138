module github.com/wsbridge/wsbridge

go 1.26

require github.com/coder/websocket v1.8.15

require go.uber.org/goleak v1.3.0 // indirect
