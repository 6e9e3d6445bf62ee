"""DICOMweb stow (placeholder until its routes land)."""
