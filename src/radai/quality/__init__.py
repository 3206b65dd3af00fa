"""Quality: validation runs (calibration tests) and their metrics, reports and gate.

The calculation core is a library without database access:

- :mod:`radai.quality.inputs` — what a validation run hands over: per study the true
  label and the model's probability per finding, subgroup attributes, and the studies
  the model could not process (technical defects).
- :mod:`radai.quality.delong` — ROC AUC variance and confidence interval by DeLong's method.
- :mod:`radai.quality.metrics` — binary and multi-class metrics with confidence intervals.
- :mod:`radai.quality.validation` — everything for one run: per finding, per subgroup, defects.
- :mod:`radai.quality.gate` — pass/fail against thresholds.
- :mod:`radai.quality.report` — the stand-alone HTML report.
"""
