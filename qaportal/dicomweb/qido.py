"""DICOMweb qido (placeholder until its routes land)."""
