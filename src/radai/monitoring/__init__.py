"""Monitoring of live models: agreement with radiologists, drift, defects, latency,
alerts and automatic suspension, monitoring samples, the dashboard.

- :mod:`radai.monitoring.drift`, :mod:`~radai.monitoring.agreement`,
  :mod:`~radai.monitoring.latency` — the metric definitions (no database).
- :mod:`radai.monitoring.profiles` — the input metadata of each ended task, recorded once.
- :mod:`radai.monitoring.data` — what is read from the database.
- :mod:`radai.monitoring.evaluation` — windows, references and checks against thresholds.
- :mod:`radai.monitoring.service` — evaluating model versions.
- :mod:`radai.monitoring.alerts` — alerts, suspension and webhook notifications.
- :mod:`radai.monitoring.samples` — random samples of processed studies for review.
- :mod:`radai.monitoring.monitor` — the periodic component of ``radai serve``.
- :mod:`radai.monitoring.router`, :mod:`~radai.monitoring.pages` — API and dashboard.
"""
