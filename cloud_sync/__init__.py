"""Cloud sync service: verifies and stores signed batches idempotently, and serves fleet staff.

``main.create_app`` is the composition root; ``ingest.Ingestor`` turns one sealed blob into one ack
(used by ``POST /v1/batches`` and by the MQTT ingest worker); ``store`` owns the SQL schema,
migrations, batch commits and read queries (SQLite by default, PostgreSQL by URL); ``api`` has one
router per resource; ``settings`` reads ``FLEET_CLOUD_*``; ``metrics`` counts every rejection by reason;
``cli`` is ``fleet-cloud``.
"""
