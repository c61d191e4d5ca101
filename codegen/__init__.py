"""Codegen (next): turn a mined approach into a deterministic standalone agent script and
evaluate it against the RLM on held-out instances. Reads and writes through rlmine.store.

Nothing is implemented yet; see docs/architecture.md.
"""
