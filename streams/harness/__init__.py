"""What tests, benchmarks, chaos runs and the demo drive: a local stack of real processes
(stack.py), the independent oracle (expected.py), traffic (generate.py), hostile Kafka records
(hostile.py), the demo (demo.py). Not public API: it changes with the tests that use it."""
