"""The miner (next): split recorded code into steps, embed them, cluster them into tactics,
and find the tactic sequences that successful runs share. Reads and writes through rlmine.store.

Nothing is implemented yet; see docs/architecture.md.
"""
