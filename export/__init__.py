"""Training and export: the only place torch is imported."""
