"""The local Ed-Fi API: a strict local implementation of the Ed-Fi API's client contract, on
PostgreSQL, with faults on demand, for development, tests, the demo and benchmarks.

- app.py: the ASGI app (routes, refusals, discovery, dependencies)
- storage.py: documents and references in PostgreSQL
- auth.py: OAuth client credentials and bearer tokens
- faults.py: 429/503 with Retry-After, connection resets, slow answers, expired tokens
- server.py: the background server process (`campus-sync edfi api start|stop|status`)
"""
