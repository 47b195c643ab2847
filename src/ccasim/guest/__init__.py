"""Realm guest images and the guest runtime (not built yet: issue 4)."""
