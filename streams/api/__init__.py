"""The usage API for products: `meterstream api` (server.py), its query parameters and answer
(query.py), its read tokens (streams/ingest/tokens.py's file form, `API` in server.py)."""
