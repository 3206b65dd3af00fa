"""Inference: durable tasks, executors (a local worker pool; room for Ray), batching,
findings and heatmaps. See ARCHITECTURE.md §4-5 and ``docs/inference.md``."""
