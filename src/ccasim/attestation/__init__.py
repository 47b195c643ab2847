"""Attestation tokens, verification and RIM prediction (not built yet: issue 5)."""
