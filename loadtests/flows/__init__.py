"""The simulated people of a results day: who they are and what they do (one module each)."""
