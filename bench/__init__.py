"""The benchmark harness behind `make bench`: data loader, floor server, load generators, report."""
