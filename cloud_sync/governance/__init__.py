"""Governance of the cloud service: who may do what (``roles``, ``identity``) and what they did (``audit``).

The HTTP side of it (the access table and the one dependency that enforces it) is ``cloud_sync.api.access``.
Nothing here imports the web stack, so ``fleet-cloud`` commands use these modules directly.
"""
