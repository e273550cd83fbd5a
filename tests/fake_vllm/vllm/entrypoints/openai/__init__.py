"""A stand-in for vLLM in the launcher tests (see api_server.py)."""
