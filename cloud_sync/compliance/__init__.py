"""Compliance workflows: driving hours under rule packs, and driver vehicle inspection reports (DVIRs).

Hours: ``duty`` turns duty-status events into a timeline; ``rulepack`` loads a regulation's rule file from
``rules/`` (every limit with its citation) and hands it to the engine the file names: ``us_hos`` (with
``us_shift`` for the 11/14-hour limits and sleeper-berth pairs) or ``eu_561`` (with ``eu_weekly`` for weekly
rests over several weeks); ``report`` holds what they answer; ``vectors`` reads the hand-reasoned test vectors
beside each pack. ``drivers`` stores drivers and duty events and derives driving from the vehicles' trips;
``hours`` evaluates a driver from the store. DVIRs and a vehicle's safety status are in ``dvir``; the tables in
``tables`` (migration "compliance"); the HTTP routes in ``cloud_sync.api.compliance``.
"""
