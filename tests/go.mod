module github.com/kvd-dev/kvstore/tests

go 1.26.0

require (
	github.com/anishathalye/porcupine v1.3.1
	github.com/kvd-dev/kvstore v0.0.0
	github.com/prometheus/client_model v0.6.3
	github.com/prometheus/common v0.73.1
)

require (
	github.com/VictoriaMetrics/metrics v1.45.0 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/pandatix/go-abnf v0.5.3 // indirect
	github.com/valyala/fastrand v1.1.0 // indirect
	github.com/valyala/histogram v1.2.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace github.com/kvd-dev/kvstore => ../

tool github.com/kvd-dev/kvstore/cmd/kvd
