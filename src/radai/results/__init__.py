"""AI results as standard DICOM (IHE AI Results) and their delivery.

For every finished task radai writes, as pure functions over typed inputs:

- a Comprehensive 3D SR holding a TID 1500 Measurement Report (:mod:`radai.results.sr`),
  or, for a technical defect, an SR that states the defect instead of findings;
- a Secondary Capture series with the heatmap and a burned-in caption
  (:mod:`radai.results.sc`);
- a DICOM Segmentation for models that output masks (:mod:`radai.results.seg`);
- a JSON summary (:mod:`radai.results.summary`).

:mod:`radai.results.service` stores them in the archive and queues them for the
configured destinations; :mod:`radai.results.outbox` delivers them (C-STORE, STOW-RS)
with retries that survive destination downtime and restarts.
"""
