"""Compliance workflows: driving hours (rule packs as data, ``hours``) and driver vehicle inspection reports
(``dvir``).

``duty`` turns duty-status events into a timeline; ``rulepack`` loads a regulation's rule file from
``rules/`` (limits + citations); ``us_hos`` and ``eu_561`` are the two engines a pack names; ``vectors`` reads
the published test vectors beside each pack. The store tables are in ``store``; the HTTP routes in
``cloud_sync.api.compliance``.
"""
