"""JSON request/reply: structured messages, serialized by the codec (never pickle).

Each request is a JSON object on one line; bad JSON gets {"error": ...} and a close.
"""

from typing import Any

import socketkit as sk

OPERATIONS = {"add": lambda a, b: a + b, "mul": lambda a, b: a * b}


def calculator(request: dict[str, Any], conn: sk.Connection) -> dict[str, Any]:
    operation = OPERATIONS.get(request.get("op", ""))
    if operation is None:
        return {"error": f"unknown op {request.get('op')!r}; try one of {sorted(OPERATIONS)}"}
    return {"result": operation(request["a"], request["b"])}


with sk.Server("tcp://127.0.0.1:0", calculator, codec=sk.Json()).start() as server:
    with sk.connect(server.url, codec=sk.Json(), timeout=5) as client:
        print(client.request({"op": "add", "a": 2, "b": 40}))
        print(client.request({"op": "mul", "a": 6, "b": 7}))
        print(client.request({"op": "div", "a": 1, "b": 0}))
