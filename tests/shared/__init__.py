"""Tests for shared/tasks, shared/grading and the grading CLI."""
