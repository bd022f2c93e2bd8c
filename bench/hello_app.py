"""The reference for ``bench/bench_http.py``: hello-world FastAPI, served by
the same uvicorn as ``retouch serve`` (without its access log). ``/`` is a
``def`` endpoint, run in a worker thread as Retouch's pages and JSON are;
``/async`` an ``async def`` one, run on the event loop as ``/healthz`` is."""
from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def hello() -> dict:
    return {"hello": "world"}


@app.get("/async")
async def hello_async() -> dict:
    return {"hello": "world"}
