"""The reference for ``bench/bench_http.py``: hello-world FastAPI, served by
the same uvicorn with the same defaults as ``retouch serve``."""
from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def hello() -> dict:
    return {"hello": "world"}
