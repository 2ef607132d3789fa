"""The engine's API without a model: registry, settings, requests, stop handling, HTTP errors."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from genprm.engine import (
    EngineError,
    GenerationRequest,
    OpenAISettings,
    backend_names,
    create_generator,
    settings_model,
)
from genprm.engine.prompts import check_fits, cut_at_stop, fit_to_context


def test_import_is_cheap() -> None:
    code = (
        "import sys, genprm.engine\n"
        "heavy = [m for m in ('torch', 'vllm', 'transformers', 'httpx') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_registry_lists_backends_and_suggests_closest() -> None:
    assert backend_names() == ["hf", "openai", "vllm", "world-teacher"]
    with pytest.raises(ValueError, match=r"unknown generation backend 'vlm'.*known: hf, openai, vllm, world-teacher.*did you mean 'vllm'"):
        create_generator("vlm", model="x")


def test_unknown_setting_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"tensor_parallel.*Extra inputs.*did you mean 'tensor_parallel_size'"):
        create_generator("vllm", model="x", tensor_parallel=2)
    with pytest.raises(ValueError, match=r"batch_size"):
        create_generator("hf", model="x", batch_size=0)
    assert settings_model("openai") is OpenAISettings


def test_request_validation() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        GenerationRequest()
    with pytest.raises(ValueError, match="exactly one"):
        GenerationRequest(prompt="a", messages=[{"role": "user", "content": "b"}])
    with pytest.raises(ValueError, match="assistant_prefix"):
        GenerationRequest(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
    with pytest.raises(ValueError, match="n must be"):
        GenerationRequest(prompt="a", n=0)
    with pytest.raises(ValueError, match="empty string"):
        GenerationRequest(prompt="a", stop=("",))
    assert GenerationRequest(prompt="a", stop="\n").stop == ("\n",)  # type: ignore[arg-type]
    assert GenerationRequest(prompt="a", temperature=0).greedy


def test_cut_at_stop_earliest_end_then_list_order() -> None:
    assert cut_at_stop("a + b\nc", ["\n"], include=False) == ("a + b", "\n")
    assert cut_at_stop("a + b\nc", ["\n"], include=True) == ("a + b\n", "\n")
    assert cut_at_stop("xx STOP yy", ["yy", "STOP"], include=False) == ("xx ", "STOP")
    assert cut_at_stop("abc", ["bc", "abc"], include=True) == ("abc", "bc")  # same end: list order
    assert cut_at_stop("abc", ["z"], include=True) == ("abc", None)


def test_context_policy() -> None:
    reqs = [GenerationRequest(prompt="a", max_tokens=10), GenerationRequest(prompt="b", max_tokens=10)]
    assert fit_to_context([5, 95], reqs, 100) == [10, 5]
    with pytest.raises(ValueError, match=r"request 1: prompt is 100 tokens, the context is 100"):
        fit_to_context([5, 100], reqs, 100)
    with pytest.raises(ValueError, match=r"candidate 0: 101 tokens"):
        check_fits([101], 100, "candidate")


# -- openai backend against broken servers ------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    mode = "malformed"
    calls = 0

    def do_POST(self) -> None:  # noqa: N802
        type(self).calls += 1
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        if self.mode == "malformed":
            self._send(200, b"{not json")
        elif self.mode == "no_choices":
            self._send(200, b'{"object": "text_completion"}')
        elif self.mode == "flaky" and type(self).calls < 3:
            self._send(503, b'{"error": "overloaded"}')
        elif self.mode == "bad_request":
            self._send(400, b'{"error": "prompt too long"}')
        else:
            body = {"choices": [{"index": 0, "text": " 7", "finish_reason": "length", "stop_reason": None}]}
            self._send(200, json.dumps(body).encode())

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def fake_server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"calls": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", handler
    server.shutdown()
    server.server_close()


def _client(base_url: str, **kw: object) -> object:
    return create_generator("openai", model="m", base_url=base_url, backoff_s=0.05, **kw)


def test_openai_nothing_listening_fails_fast_and_clearly(free_port: int) -> None:
    gen = _client(f"http://127.0.0.1:{free_port}/v1", max_retries=2)
    start = time.monotonic()
    with pytest.raises(EngineError, match=r"request 0: .*/completions: no valid answer after 3 attempts.*ConnectError"):
        gen.generate([GenerationRequest(prompt="3 + 4 =", max_tokens=2)])
    assert time.monotonic() - start < 10


def test_openai_malformed_json_is_a_clear_error(fake_server: tuple[str, type[_Handler]]) -> None:
    url, handler = fake_server
    handler.mode = "malformed"
    with pytest.raises(EngineError, match=r"malformed JSON: '\{not json'"):
        _client(url).generate([GenerationRequest(prompt="3 + 4 =", max_tokens=2)])
    assert handler.calls == 1  # not retried
    handler.mode = "no_choices"
    with pytest.raises(EngineError, match=r"malformed answer: expected 1 choices"):
        _client(url).generate([GenerationRequest(prompt="3 + 4 =", max_tokens=2)])


def test_openai_retries_5xx_then_succeeds(fake_server: tuple[str, type[_Handler]]) -> None:
    url, handler = fake_server
    handler.mode = "flaky"
    [[c]] = _client(url, max_retries=3).generate([GenerationRequest(prompt="3 + 4 =", max_tokens=2)])
    assert (c.text, c.finish_reason) == (" 7", "length")
    assert handler.calls == 3


def test_openai_4xx_is_not_retried(fake_server: tuple[str, type[_Handler]]) -> None:
    url, handler = fake_server
    handler.mode = "bad_request"
    with pytest.raises(EngineError, match=r"HTTP 400: .*prompt too long"):
        _client(url, max_retries=3).generate([GenerationRequest(prompt="3 + 4 =", max_tokens=2)])
    assert handler.calls == 1


def test_openai_base_url_from_environment(monkeypatch: pytest.MonkeyPatch, fake_server: tuple[str, type[_Handler]]) -> None:
    url, handler = fake_server
    handler.mode = "ok"
    monkeypatch.setenv("MY_TEACHER_URL", url)
    gen = create_generator("openai", model="m", base_url_env="MY_TEACHER_URL")
    assert gen.generate([GenerationRequest(prompt="x", max_tokens=1)])[0][0].text == " 7"
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="OPENAI_BASE_URL"):
        create_generator("openai", model="m")


def test_openai_without_tokenizer_cannot_score(fake_server: tuple[str, type[_Handler]]) -> None:
    url, _ = fake_server
    with pytest.raises(NotImplementedError, match="needs a local `tokenizer`"):
        _client(url).score_continuations("3 + 4 =", [" 7"])
