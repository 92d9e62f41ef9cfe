"""Tests for gateway.linkage."""
