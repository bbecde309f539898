module example.com/platform-gateway

go 1.22

require (
	github.com/prometheus/client_golang v1.19.0
	golang.org/x/net v0.24.0
)
