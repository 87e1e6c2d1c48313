"""A local OpenAI-compatible chat-completions server for tests: deterministic answers, usage, injected failures.

with OpenAIServer() as server:
    backend = hfdc.backends.get(server.spec("test-model"), cache_dir=tmp_path)
    server.fail_next(2, status=429)   # the next two requests get HTTP 429
    server.stall_next(1, seconds=5)   # the next request answers after 5 s (a client timeout)

``OpenAIServer(respond=fn, latency=s)``: answers ``fn(messages, seed)`` instead of the echo, each after ``s`` seconds.
"""

import asyncio
import hashlib
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def _text_and_images(content) -> tuple[str, int]:
    if isinstance(content, str):
        return content, 0
    text = " ".join(part["text"] for part in content if part.get("type") == "text")
    return text, sum(part.get("type") == "image_url" for part in content)


def expected_answer(
    messages: list[dict], model: str, temperature: float, seed: int | None, max_tokens: int | None
) -> str:
    """The server's answer: ``"<8 hex of sha256(model|last text|temperature|seed)> <last text>"`` (+ image count),
    cut to ``max_tokens`` words. Tests compute it to check values end to end."""
    text, images = _text_and_images(messages[-1]["content"])
    digest = hashlib.sha256(f"{model}|{text}|{float(temperature)}|{seed}".encode()).hexdigest()[:8]
    words = [digest, *text.split()] + ([f"[{images} image(s)]"] if images else [])
    return " ".join(words[: max_tokens or None])


def prompt_tokens(messages: list[dict]) -> int:
    """The usage the server reports for a prompt: whitespace words over all messages."""
    return sum(len(_text_and_images(message["content"])[0].split()) for message in messages)


class OpenAIServer:
    """uvicorn in a background thread on 127.0.0.1 (free port); records requests; can fail or stall the next k
    requests; ``respond(messages, seed) -> str`` replaces the echo answer; ``latency`` delays every answer."""

    def __init__(self, respond=None, latency: float = 0.0):
        self.requests: list[dict] = []
        self._failures: list[int | None] = []  # queued outcomes of the next requests (None: answer normally)
        self._stalls: list[float] = []  # queued extra delays (s) of the next requests
        self._respond = respond
        self._latency = latency
        self._lock = threading.Lock()
        self.app = self._build_app()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=1
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def spec(self, model: str = "test-model") -> str:
        """The ``hfdc.backends.get`` spec for this server."""
        return f"openai:{model}@{self.base_url}"

    def fail_next(self, k: int, status: int = 429, after: int = 0) -> None:
        """Answer ``k`` chat requests with HTTP ``status`` (e.g. 429, 500), after letting ``after`` requests succeed."""
        with self._lock:
            self._failures.extend([None] * after + [status] * k)

    def stall_next(self, k: int, seconds: float, after: int = 0) -> None:
        """Answer ``k`` chat requests only after ``seconds`` (past a client's timeout), after ``after`` normal ones."""
        with self._lock:
            self._stalls.extend([0.0] * after + [seconds] * k)

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat_completions(request: Request):
            body = await request.json()
            with self._lock:
                self.requests.append({"body": body, "authorization": request.headers.get("authorization")})
                status = self._failures.pop(0) if self._failures else None
                delay = self._latency + (self._stalls.pop(0) if self._stalls else 0.0)
            if delay:
                await asyncio.sleep(delay)
            if status is not None:
                # echoes the credentials like some providers do, so tests can check that clients redact them
                message = f"injected failure {status} for authorization {request.headers.get('authorization')}"
                return JSONResponse({"error": {"message": message}}, status_code=status)
            messages = body["messages"]
            if self._respond is not None:
                answer = self._respond(messages, body.get("seed"))
            else:
                answer = expected_answer(
                    messages,
                    body.get("model", ""),
                    body.get("temperature", 1.0),
                    body.get("seed"),
                    body.get("max_tokens"),
                )
            usage = {"prompt_tokens": prompt_tokens(messages), "completion_tokens": len(answer.split())}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            return {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", ""),
                "system_fingerprint": "test",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": usage,
            }

        return app

    def __enter__(self):
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the OpenAI test server did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self._server.should_exit = True
        self._thread.join(timeout=10)
