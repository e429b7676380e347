module github.com/kvd-dev/kvstore

go 1.26
