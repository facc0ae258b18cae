"""Loss primitives named after the papers' terms; pure functions shared by every method."""
