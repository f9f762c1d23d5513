"""Maintenance workflows: meter readings, service programs, fault issues, work orders, risk ranking.

One module per concern, SQL rows stop at each module's boundary (callers get dataclasses):

- ``tables``: the tables (migration ``maintenance``); ``config``: fleet-wide settings in the store;
- ``meters``: readings from vehicles and staff, kept monotonic and in time order;
- ``schedule``: when a task is due (pure); ``programs``: programs, tasks, per-vehicle task state;
- ``faults``: issues per (vehicle, fault identity), evidence; ``work_orders``: jobs that resolve them;
- ``risk``: the per-vehicle score and staff outcomes;
- ``derive``: turns stored events into readings and issues, run by ingest after every commit.

The HTTP API is ``cloud_sync.api.maintenance``.
"""
