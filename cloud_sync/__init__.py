"""Cloud sync service: verifies and stores signed batches idempotently, and serves fleet staff.

Arrives with the sync issue; only the package exists so far.
"""
