"""The local web app (``convsep serve``): ``app`` (FastAPI routes and the server), ``jobs``
(the background queue and its files) and ``static/`` (the page)."""
