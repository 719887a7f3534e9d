"""Loss functions and the objective (total + named breakdown)."""
