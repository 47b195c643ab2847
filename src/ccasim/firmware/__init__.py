"""EL3 firmware (the Root world): cold boot, GPT ownership, SMC dispatch, world switches,
granule transitions, PSCI and the RMM dispatcher."""
