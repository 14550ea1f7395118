"""Data: image sources (class folders, the synthetic benchmark), preparation and input pipelines."""
