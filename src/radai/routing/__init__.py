"""Routing: declarative rules on DICOM attributes decide which models get a study.

Rules live in ``radai.toml`` (``[[routing.rules]]``) or in a YAML file named by
``routing.rules_file``; see :mod:`radai.routing.settings` and ``docs/routing.md``.
Routing runs inside the study-stability transaction (:mod:`radai.routing.listener`), so
the tasks it creates commit together with the event.
"""
