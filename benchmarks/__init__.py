"""Speed and memory benchmarks (`make bench`); never collected by `make test`."""
