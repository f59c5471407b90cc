"""HTTP below the views: WSGI layers, request bodies and uploads, numbers from
users, response headers, proxies and admission control. Imports nothing of
the app above it."""
