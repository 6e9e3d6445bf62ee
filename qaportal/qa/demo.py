"""Demo data for peer review (filled in below)."""
