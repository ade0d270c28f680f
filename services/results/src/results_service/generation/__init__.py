"""Result generation: set-based SQL, the fenced coalescing runner, automatic regeneration."""
