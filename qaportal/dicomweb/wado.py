"""DICOMweb wado (placeholder until its routes land)."""
