"""Tools around the switch: the benchmark, the demo and the port picker they share with the tests."""
