"""Tests of resilient_flask."""
