"""Helpers for testing inference code: fake non-reparameterized distributions."""
