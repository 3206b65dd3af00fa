"""The radiologist workspace: triage worklist, study page with the OHIF viewer, AI
findings with verdicts, reports, priors (ARCHITECTURE.md §7)."""
