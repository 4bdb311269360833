module github.com/lanasr/lanasr/tests/bench/loadgen

go 1.24
