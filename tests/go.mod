module github.com/kvd-dev/kvstore/tests

go 1.26

require (
	github.com/anishathalye/porcupine v1.3.1
	github.com/kvd-dev/kvstore v0.0.0
)

require (
	github.com/VictoriaMetrics/metrics v1.45.0 // indirect
	github.com/valyala/fastrand v1.1.0 // indirect
	github.com/valyala/histogram v1.2.0 // indirect
	golang.org/x/sys v0.38.0 // indirect
)

replace github.com/kvd-dev/kvstore => ../

tool github.com/kvd-dev/kvstore/cmd/kvd
