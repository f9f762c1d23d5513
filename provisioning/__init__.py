"""Provisioning CLI for installers: device identity, enrolment, preflight checks.

Arrives with the provisioning issue; only the package exists so far.
"""
