"""Fixed RPC results shaped like DESIGN.md's method table, for renderer and CLI tests."""

from __future__ import annotations

from typing import Any

NOW = 1_717_500_000.0  # Tue 2024-06-04 11:20:00 UTC

STATUS: dict[str, Any] = {
    "daemon": {"version": "0.1.0", "pid": 1234, "uptime_s": 7500.0, "socket": "/run/n3/n3d.sock"},
    "server": {
        "state": "running",
        "mode": "managed",
        "pid": 4242,
        "base_url": "http://127.0.0.1:11434",
        "version": "0.5.7",
        "restarts": 1,
        "since": NOW - 7380.0,
        "last_exit": "signal SIGKILL",
        "reason": "health check passed",
    },
    "health": {
        "ok": True,
        "latency_ms": 12.4,
        "checked_at": NOW - 4.0,
        "age_s": 4.0,
        "cached": True,
        "version": "0.5.7",
    },
    "resources": {"rss_bytes": 1_234_000_000, "cpu_percent": 1.5, "processes": 3},
    "models": {
        "installed": ["llama3:8b", "qwen2:0.5b", "all-minilm:latest"],
        "loaded": ["llama3:8b"],
        "warm": ["llama3:8b", "qwen2:0.5b"],
    },
}

MODELS: dict[str, Any] = {
    "models": [
        {
            "name": "llama3:8b",
            "size": 4_661_224_676,
            "digest": "sha256:365c0bd3c000a25d28ddbf732fe1c6add414de7275464c4e4d1c3b5fcb5d8ad1",
            "modified_at": "2024-05-21T11:20:00Z",
            "details": {"family": "llama", "parameter_size": "8.0B", "quantization_level": "Q4_0"},
        },
        {
            "name": "qwen2:0.5b",
            "size": 352_164_041,
            "digest": "6f48b936a09f7743c7ffee2b2ecd1fdf4f4d1bf1b8c8d0f2f1d5b5a8a0a1b2c3",
            "modified_at": "2024-06-04T11:17:00Z",
            "details": {"parameter_size": "494.03M", "quantization_level": "Q4_0"},
        },
    ],
    "cached": True,
    "age_s": 3.2,
}

LOADED: dict[str, Any] = {
    "models": [
        {
            "name": "llama3:8b",
            "size": 6_654_289_920,
            "size_vram": 6_654_289_920,
            "expires_at": "2318-09-12T11:20:00Z",
            "warm": True,
        },
        {
            "name": "qwen2:0.5b",
            "size": 700_000_000,
            "size_vram": 0,
            "expires_at": "2024-06-04T11:24:00Z",
            "warm": False,
        },
    ]
}

WARM: dict[str, Any] = {
    "models": [
        {
            "name": "llama3:8b",
            "keep_alive": -1,
            "loaded": True,
            "expires_at": "2318-09-12T11:20:00Z",
            "last_warmed_at": NOW - 600,
        },
        {
            "name": "qwen2:0.5b",
            "keep_alive": "10m",
            "loaded": False,
            "expires_at": None,
            "last_warmed_at": None,
        },
    ]
}

METRICS: dict[str, Any] = {
    "counters": {"ollama.server.started": 2.0, "ollama.tokens.total": 1500.0},
    "gauges": {"ollama.process.rss_bytes": 1_234_000_000.0, "ollama.models.count": 3.0},
    "histograms": {
        "n3d.rpc.duration": {
            "count": 3,
            "sum": 0.0123,
            "min": 0.001,
            "max": 0.01,
            "p50": 0.0012,
            "p99": 0.01,
        },
        "ollama.throughput.tokens_per_second": {"count": 1, "sum": 42.5, "p50": 42.5, "p99": 42.5},
    },
    "units": {
        "ollama.server.started": "{start}",
        "ollama.tokens.total": "{token}",
        "ollama.process.rss_bytes": "By",
        "ollama.models.count": "{model}",
        "n3d.rpc.duration": "s",
        "ollama.throughput.tokens_per_second": "{token}/s",
    },
}

HEALTH: dict[str, Any] = STATUS["health"]

# What Ollama's pull stream looks like once n3d has wrapped it in $/progress values.
PULL_PROGRESS: list[dict[str, Any]] = [
    {"kind": "begin", "message": "pulling manifest", "status": "pulling manifest"},
    {
        "kind": "report",
        "status": "pulling 6a0746a1ec1a",
        "digest": "sha256:6a0746a1ec1a",
        "total": 1000,
        "completed": 0,
    },
    {
        "kind": "report",
        "status": "pulling 6a0746a1ec1a",
        "digest": "sha256:6a0746a1ec1a",
        "total": 1000,
        "completed": 500,
    },
    {
        "kind": "report",
        "status": "pulling 6a0746a1ec1a",
        "digest": "sha256:6a0746a1ec1a",
        "total": 1000,
        "completed": 1000,
    },
    {
        "kind": "report",
        "status": "pulling 4fa551d4f938",
        "digest": "sha256:4fa551d4f938",
        "total": 200,
        "completed": 200,
    },
    {"kind": "report", "status": "verifying sha256 digest"},
    {"kind": "report", "status": "writing manifest"},
    {"kind": "end", "status": "success"},
]

# `metrics.prometheus`: the daemon renders the text; n3ctl prints it as it came.
PROMETHEUS = {
    "content_type": "text/plain; version=0.0.4; charset=utf-8",
    "text": (
        "# HELP n3d_rpc_duration_seconds n3d metric n3d.rpc.duration (s)\n"
        "# TYPE n3d_rpc_duration_seconds histogram\n"
        'n3d_rpc_duration_seconds_bucket{le="0.005",method="status"} 2.0\n'
        'n3d_rpc_duration_seconds_bucket{le="+Inf",method="status"} 3.0\n'
        'n3d_rpc_duration_seconds_count{method="status"} 3.0\n'
        'n3d_rpc_duration_seconds_sum{method="status"} 0.0123\n'
        "# HELP ollama_tokens_total n3d metric ollama.tokens.total ({token})\n"
        "# TYPE ollama_tokens_total counter\n"
        "ollama_tokens_total 1500.0\n"
    ),
}
