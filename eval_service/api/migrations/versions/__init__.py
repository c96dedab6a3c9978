"""One module per schema revision, oldest first (0001_initial is duet 0.1.0's schema)."""
