"""End-to-end tests: a real `tuneyard serve` process driven by real clients."""
