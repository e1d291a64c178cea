"""Latency, throughput, memory and MAC benchmarks: keras-swiftformer on every backend and
export format next to the official PyTorch model (`python -m benchmarks`)."""
