"""``reasonkit serve``'s flags and the limits they set (docs/backends.md, "Limits")."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from reasonkit.backends.options import BackendOptions


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServeConfig(BackendOptions):
    """Serve a model over an OpenAI-compatible HTTP API (/v1/models, /v1/completions, /v1/chat/completions)."""

    host: str = field(
        default="127.0.0.1",
        metadata={
            "help": "address to bind; anything but loopback (e.g. 0.0.0.0) needs --api-key, or "
            "--insecure-no-api-key to expose the model to everyone who can reach the port"
        },
    )
    port: int = field(default=8000, metadata={"help": "port to listen on (0 picks a free one)"})
    served_model_name: str | None = field(
        default=None,
        metadata={"help": "model id reported by /v1/models and accepted in requests; unset: --model"},
    )
    api_key: str | None = field(
        default=None,
        metadata={
            "help": "if set, requests must send 'Authorization: Bearer <key>' (REASONKIT_SERVE_API_KEY in the "
            "environment does the same and keeps the key out of the process list)"
        },
    )
    insecure_no_api_key: bool = field(
        default=False,
        metadata={
            "help": "allow a non-loopback --host without --api-key (anyone who can reach it may use it)"
        },
    )
    device: str | None = field(
        default=None,
        metadata={"help": "device for a local model, e.g. cuda:0 or cpu; unset: all GPUs, else CPU"},
    )
    dtype: str = field(default="auto", metadata={"help": "'auto', 'float32', 'bfloat16' or 'float16'"})
    batch_size: int = field(default=32, metadata={"help": "most sequences per forward pass of a local model"})
    max_batch_wait_ms: float = field(
        default=5.0, metadata={"help": "how long an idle server waits for more requests to batch together"}
    )
    default_max_tokens: int = field(
        default=256, metadata={"help": "max_tokens of chat requests that do not set it (completions: 16)"}
    )
    max_tokens_limit: int = field(
        default=4096,
        metadata={"help": "the largest max_tokens a request may ask for (the model's context also applies)"},
    )
    max_prompts: int = field(
        default=256, metadata={"help": "most sequences (prompts x n) one request may ask for"}
    )
    max_body_mb: float = field(default=8.0, metadata={"help": "largest request body, in MiB"})
    request_deadline: float = field(
        default=600.0,
        metadata={"help": "seconds a request may wait for the model before it is cancelled (504)"},
    )
    workers: int = field(default=32, metadata={"help": "threads that read and answer requests"})
    read_timeout: float = field(
        default=10.0, metadata={"help": "seconds a client has to send a whole request once it starts"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.batch_size < 1 or self.default_max_tokens < 1 or self.max_batch_wait_ms < 0:
            raise ValueError("batch_size and default_max_tokens must be >= 1, max_batch_wait_ms >= 0")
        for name in ("max_tokens_limit", "max_prompts", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("max_body_mb", "request_deadline", "read_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
