module github.com/kvd-dev/kvstore/tests

go 1.26

require (
	github.com/anishathalye/porcupine v1.3.1
	github.com/kvd-dev/kvstore v0.0.0
)

replace github.com/kvd-dev/kvstore => ../
