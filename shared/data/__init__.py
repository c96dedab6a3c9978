"""Small bundled data files (smoke-test samples written for this project)."""
