"""bulk's HTTP API (API.md "Bulk jobs")."""
