"""Test support: fakes and helpers that several test files share (not tests themselves)."""
