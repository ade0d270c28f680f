"""HTTP routers: parse, authorise, call a use case, map the answer."""
