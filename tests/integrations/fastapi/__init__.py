"""Tests of resilient_fastapi."""
