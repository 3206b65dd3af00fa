"""Model packages that ship with radai (one folder each, holding ``model.yaml``)."""
