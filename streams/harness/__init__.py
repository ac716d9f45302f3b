"""What tests, benchmarks, chaos runs and the demo drive: a local stack of real processes
(stack.py), the independent oracle (expected.py), traffic (generate.py), the demo (demo.py)."""
