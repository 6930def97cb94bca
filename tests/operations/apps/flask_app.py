"""A Flask app for the shutdown tests, served by a real gunicorn in a subprocess.

``Resilient(app)`` with a Redis-backed app-wide limit and cache (from the test's
environment), a view limit counted in Redis, and a slow view that notes each request
it starts in ``SHUTDOWN_TEST_STARTED``.
"""

from __future__ import annotations

import os
import time

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from resilient_flask import Resilient
from tests.operations.apps import probe

probe.at_exit()  # before the extension registers its own handler: runs after it
app = Flask(__name__)
resilient = Resilient(app)


@app.get("/slow")
@resilient.limit("1000/minute")
def slow() -> ResponseReturnValue:
    """Half a second of work; ``n`` gives each request a URL (and cache entry) of its own."""
    n = request.args.get("n", "0")
    with open(os.environ["SHUTDOWN_TEST_STARTED"], "a") as started:
        started.write(f"{n}\n")
    time.sleep(0.5)
    return jsonify(n=n)
