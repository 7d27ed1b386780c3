"""The drill's fixed numbers and configs: time bounds, tolerances, models and config files.

Every bound an invariant is judged by lives here (a reply within ``REQUEST_BOUND_S``,
running and warm again within ``RECOVERY_BOUND_S``, the fd and RSS tolerances), with
what the fault injectors need to match n3d's limits (the partial-frame timeout, the
message size, the burst size), the models the simulator offers, and the configs the
daemon starts from and the SIGHUP drill alternates between.
"""

from __future__ import annotations

from typing import Any

REQUEST_BOUND_S = 10.0  # a reply (result or documented error) must come within this
RECOVERY_BOUND_S = 30.0  # running again, warm model loaded, after a disruption
FRAME_TIMEOUT_S = 10.0  # n3d's partial-frame limit (n3d.rpc.bounds.Limits)
BURST = 300
MAX_MESSAGE_BYTES = 65_536
WARM_MODEL = "tinyllama"
WEDGE_MODEL = "llama3"  # installed, never warm nor pulled by the drill: its unload wedges
PULLABLE = ("llama3.2:1b", "qwen2.5:0.5b", "all-minilm", "nomic-embed-text", "phi3", "mistral")
DOCUMENTED_CODES = frozenset(
    {-32700, -32600, -32601, -32602, -32603, -32800, -32000, *range(1001, 1011)}
)
# Proxied streams: held through a restart (hold_timeout), then answered; a few tokens each.
STREAM_BOUND_S = 45.0
STREAM_TOKENS = 8
PROXY_HOLD_S = 30
FD_TOLERANCE = 10
RSS_TOLERANCE_BYTES = 12 * 1_048_576
RSS_TOLERANCE_FRACTION = 0.15

# Every fault kind, the order a round starts from before it is shuffled (faults.FAULTS
# maps each to its injector); the warm-up runs before the leak baseline, n3d's SIGKILL first.
FAULT_KINDS = (
    "n3d_kill",
    "serve_kill",
    "sigstop",
    "sim_hang",
    "fail_pulls",
    "pulls",
    "burst",
    "bad_frames",
    "sighup",
    "poisoned_json",
    "hang_inference",
    "hang_runner",
    "wedge_unload",
    "slow",
)
WARMUP_KINDS = ("n3d_kill", "burst", "pulls")
WARMUP_KINDS_SHORT = ("n3d_kill", "burst")
ROUND_KINDS = tuple(k for k in FAULT_KINDS if k != "n3d_kill")

# Config A and B differ in keys a reload applies at once; the invalid one has a wrong type.
CONFIG_A = {"ollama": {"health_check_interval": 1, "model_cache_ttl": 60}}
CONFIG_B = {"ollama": {"health_check_interval": 1.25, "model_cache_ttl": 30}}
BASE_CONFIG: dict[str, dict[str, Any]] = {
    "server": {"stop_timeout": 2, "health_timeout": 2, "start_timeout": 15},
    "restart": {"backoff_initial": 0.05, "backoff_max": 2},
    "warm": {"models": [WARM_MODEL]},
    "socket": {"max_message_bytes": MAX_MESSAGE_BYTES},
    # Liveness compressed to the drill's pace: a probe a second, judged within 3 s.
    "liveness": {"probe_interval": 1, "probe_timeout": 3, "stuck_unload_after": 2},
}
INVALID_CONFIG_LINE = '\n[server]\nstop_timeout = "soon"\n'
