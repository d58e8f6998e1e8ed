"""Training losses: recommendation losses and the phase-2 alignment losses (DESIGN §4, §5)."""
