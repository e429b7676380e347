module github.com/kvd-dev/kvstore/tests

go 1.26

require github.com/anishathalye/porcupine v1.3.1

replace github.com/kvd-dev/kvstore => ../
