"""Publication of results: now or scheduled, and the recipient events it writes."""
