"""The Normal-world hypervisor and VMM built on the RMI (not built yet: issue 6)."""
