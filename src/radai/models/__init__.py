"""Model packages: manifests, the registry, runtimes, the pixel pipeline and built-in models."""
