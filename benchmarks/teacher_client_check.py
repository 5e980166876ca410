"""Why the teacher's OpenAI-compatible client is not `huggingface_hub.InferenceClient`: what
`InferenceClient(base_url=...).chat_completion` does against real servers on 127.0.0.1 (no network needed).

    python benchmarks/teacher_client_check.py

Prints, for the installed huggingface_hub: which Authorization header goes to the server when no API key is given
(a fake HF_TOKEN is set), how much of a 50 MB reply is read, what happens on a 307 redirect, and whether a local
server is reached under HF_HUB_OFFLINE=1. `embsum_hf.teacher.backend_http.OpenAIChatBackend` sends no key unless
given one, reads at most `max_reply_bytes`, follows no redirect and ignores the Hub's offline switch (tested in
tests/teacher/test_http_backend.py and tests/reliability/test_teacher_settings.py).
"""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

seen = []


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        self.answer()

    def do_GET(self):
        self.answer()

    def answer(self):
        seen.append((self.server.server_port, self.command, self.path, self.headers.get("Authorization")))
        if self.server.mode == "redirect":
            self.send_response(307)
            self.send_header("Location", self.server.target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        content = "x" * (self.server.size or 5)
        body = json.dumps(
            {"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def server(mode="ok", size=0, target=None):
    s = ThreadingHTTPServer(("127.0.0.1", 0), H)
    s.mode, s.size, s.target = mode, size, target
    threading.Thread(target=s.serve_forever, daemon=True).start()
    return s


os.environ.pop("HF_HUB_OFFLINE", None)
os.environ["HF_TOKEN"] = "hf_USER_HUB_TOKEN"
from huggingface_hub import InferenceClient, constants  # noqa: E402 (after the environment it reads)

ok = server()
url = f"http://127.0.0.1:{ok.server_port}/v1"
msgs = [{"role": "user", "content": "hi"}]
out = InferenceClient(base_url=url).chat_completion(msgs, model="m", max_tokens=5)
print("1. no api_key given: Authorization sent =", seen[-1][3])
big = server(size=50_000_000)
out = InferenceClient(base_url=f"http://127.0.0.1:{big.server_port}/v1", api_key="k").chat_completion(msgs, model="m")
print("2. a 50 MB reply: read whole, content length =", len(out.choices[0].message.content))
same = server()
target_same = f"http://127.0.0.1:{same.server_port}/v1/chat/completions"
red = server("redirect", target=target_same)
seen.clear()
InferenceClient(base_url=f"http://127.0.0.1:{red.server_port}/v1", api_key="SECRET").chat_completion(msgs, model="m")
print("3. 307 redirect (same host, other port): followed ->", [(m, p, a) for _, m, p, a in seen])
seen.clear()
red2 = server("redirect", target=target_same.replace("127.0.0.1", "localhost"))
InferenceClient(base_url=f"http://127.0.0.1:{red2.server_port}/v1", api_key="SECRET").chat_completion(msgs, model="m")
print("   307 redirect to another host name: followed ->", [(m, p, a) for _, m, p, a in seen])
constants.HF_HUB_OFFLINE = True
try:
    InferenceClient(base_url=url, api_key="k").chat_completion(msgs, model="m")
    print("4. HF_HUB_OFFLINE=1: local server reached")
except Exception as e:
    print("4. HF_HUB_OFFLINE=1 against 127.0.0.1:", type(e).__name__, str(e)[:100])
