"""Request plumbing: bodies, connections, overload, proxies, rate limits,
the request log, metrics, memory, numbers from users, the database."""
