"""The human form of list results (`models`, `models --loaded`, `warm`, `metrics`,
`requests`): tables.

Pure functions of the RPC result, ``now`` (epoch seconds) and a
:class:`~n3d.ctl.fmt.Style`; columns as ``ollama list``/``ollama ps`` name them
where an equivalent exists, so the tables read like what users already know.

A list that covers several servers (the result's ``servers``, else the servers its
rows name) gets a first column, SERVER, as ``kubectl get -A`` adds NAMESPACE: the
server of the row, or, for an installed model, every server that has it. A list of
one server's models is the table it always was.
"""

from __future__ import annotations

from collections.abc import Mapping

from n3d.ctl.fmt import Style, ago, epoch, human_bytes, human_duration, table

# typing costs n3ctl status ~2 ms to import; the hints need it only for checking.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["render_loaded", "render_metrics", "render_models", "render_requests", "render_warm"]

_FOREVER_S = 10 * 365 * 86400  # keep_alive -1 shows as an expiry centuries away


def _rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    models = result.get("models")
    if not isinstance(models, list):
        return []
    return [m if isinstance(m, dict) else {"name": str(m)} for m in models]


def _row_servers(row: Mapping[str, Any]) -> list[str]:
    """The servers a row names: ``server`` (loaded, warm), or ``servers`` (installed)."""
    found = row.get("servers")
    if isinstance(found, list):
        return [str(name) for name in found]
    return [str(row["server"])] if row.get("server") is not None else []


def _servers_table(
    headers: tuple[str, ...],
    cells: list[list[str]],
    result: Mapping[str, Any],
    rows: list[dict[str, Any]],
    style: Style,
) -> str:
    """``table``, with a SERVER column first when the list covers several servers."""
    found = result.get("servers")
    covered = {str(n) for n in found} if isinstance(found, list) else set()
    for row in rows:
        covered.update(_row_servers(row))
    if len(covered) < 2:
        return table(headers, cells, style)
    where = [",".join(_row_servers(row)) or "-" for row in rows]
    return table(("SERVER", *headers), [[w, *c] for w, c in zip(where, cells, strict=True)], style)


def _size(value: Any) -> str:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return human_bytes(value) if ok else "-"


def _until(value: Any, now: float) -> str:
    then = epoch(value)
    if then is None:
        return "-"
    if then - now > _FOREVER_S:
        return "forever"
    if then <= now:
        return "expired"
    return ago(then, now).removeprefix("in ")


def _short_digest(digest: Any) -> str:
    if not isinstance(digest, str) or not digest:
        return "-"
    return digest.removeprefix("sha256:")[:12]


def render_models(result: Mapping[str, Any], *, now: float, style: Style) -> str:
    """``NAME  ID  SIZE  PARAMS  QUANT  MODIFIED`` (header alone when nothing is installed)."""
    listed, rows = _rows(result), []
    for m in listed:
        found = m.get("details")
        details: dict[str, Any] = found if isinstance(found, dict) else {}
        rows.append(
            [
                str(m.get("name", "-")),
                _short_digest(m.get("digest")),
                _size(m.get("size")),
                str(details.get("parameter_size") or "-"),
                str(details.get("quantization_level") or "-"),
                ago(epoch(m.get("modified_at")), now),
            ]
        )
    headers = ("NAME", "ID", "SIZE", "PARAMS", "QUANT", "MODIFIED")
    return _servers_table(headers, rows, result, listed, style)


def render_loaded(result: Mapping[str, Any], *, now: float, style: Style) -> str:
    """``NAME  SIZE  VRAM  UNTIL  WARM``: what ``ollama ps`` shows, plus n3d's warm flag."""
    listed = _rows(result)
    rows = [
        [
            str(m.get("name", "-")),
            _size(m.get("size")),
            _size(m.get("size_vram")),
            _until(m.get("expires_at"), now),
            "yes" if m.get("warm") else "no",
        ]
        for m in listed
    ]
    return _servers_table(("NAME", "SIZE", "VRAM", "UNTIL", "WARM"), rows, result, listed, style)


def render_warm(result: Mapping[str, Any], *, now: float, style: Style) -> str:
    """``NAME  KEEP ALIVE  LOADED  UNTIL  LAST WARMED``."""
    listed, rows = _rows(result), []
    for m in listed:
        keep = m.get("keep_alive")
        rows.append(
            [
                str(m.get("name", "-")),
                "-" if keep is None else "forever" if keep in (-1, "-1") else str(keep),
                "yes" if m.get("loaded") else "no",
                _until(m.get("expires_at"), now) if m.get("loaded") else "-",
                ago(epoch(m.get("last_warmed_at")), now),
            ]
        )
    headers = ("NAME", "KEEP ALIVE", "LOADED", "UNTIL", "LAST WARMED")
    return _servers_table(headers, rows, result, listed, style)


def _value(value: Any, unit: str) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if abs(value) < 1 else f"{value:.2f} s"
    if unit == "By":
        return human_bytes(value)
    text = f"{value:g}" if isinstance(value, float) else str(value)
    label = unit.replace("{", "").replace("}", "")  # UCUM annotations: {token}/s → token/s
    return f"{text} {label}".rstrip()


def _tagged(result: Mapping[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The result's series that carry tags, by (kind, name), in the daemon's order."""
    found = result.get("series")
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entry in found if isinstance(found, list) else ():
        if isinstance(entry, dict) and isinstance(entry.get("tags"), dict) and entry["tags"]:
            grouped.setdefault((str(entry.get("kind")), str(entry.get("name"))), []).append(entry)
    return grouped


def _tag_label(tags: dict[str, Any]) -> str:
    return "  " + " ".join(f"{k}={v}" for k, v in sorted(tags.items(), key=str))


def _histogram_row(label: str, entry: Any, unit: str) -> list[str]:
    h: dict[str, Any] = entry if isinstance(entry, dict) else {}
    count, total = h.get("count"), h.get("sum")
    mean = total / count if isinstance(total, int | float) and count else None
    return [
        label,
        "histogram",
        _value(mean, unit),
        _value(h.get("p50"), unit),
        _value(h.get("p99"), unit),
        str(h.get("count", "-")),
    ]


def render_metrics(result: Mapping[str, Any], *, style: Style) -> str:
    """``NAME  TYPE  VALUE  P50  P99  COUNT``, sorted by name within each type.

    VALUE is a counter's total, a gauge's last value, a histogram's mean. Under a
    name's row (its total over every tag set), one indented row per tag set, as
    ``key=value`` pairs, when the daemon sends them.
    """
    found = result.get("units")
    units: dict[str, Any] = found if isinstance(found, dict) else {}
    tagged = _tagged(result)
    rows: list[list[str]] = []
    for kind in ("counter", "gauge"):
        group = result.get(f"{kind}s")
        if isinstance(group, dict):
            for name in sorted(group):
                unit = str(units.get(name, ""))
                rows.append([name, kind, _value(group[name], unit), "", "", ""])
                for entry in tagged.get((kind, name), ()):
                    value = _value(entry.get("value"), unit)
                    rows.append([_tag_label(entry["tags"]), kind, value, "", "", ""])
    histograms = result.get("histograms")
    if isinstance(histograms, dict):
        for name in sorted(histograms):
            unit = str(units.get(name, ""))
            rows.append(_histogram_row(name, histograms[name], unit))
            for entry in tagged.get(("histogram", name), ()):
                rows.append(_histogram_row(_tag_label(entry["tags"]), entry, unit))
    return table(("NAME", "TYPE", "VALUE", "P50", "P99", "COUNT"), rows, style)


def _span(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "-"
    return f"{seconds:.1f}s" if seconds < 60 else human_duration(seconds)


def render_requests(result: Mapping[str, Any], *, style: Style) -> str:
    """``ID  METHOD  ROUTE  MODEL  STATE  AGE  TTFT  CHUNKS  TOKENS``: the proxy's requests.

    TOKENS is prompt+completion once the final object said so, else the
    completion tokens streamed so far.
    """
    found = result.get("requests")
    rows = []
    for r in found if isinstance(found, list) else []:
        if not isinstance(r, dict):
            continue
        tokens = r.get("tokens")
        total = tokens.get("total") if isinstance(tokens, dict) else None
        rows.append(
            [
                str(r.get("id", "-")),
                str(r.get("method", "-")),
                str(r.get("route", "-")),
                str(r.get("model") or "-"),
                str(r.get("state", "-")),
                _span(r.get("age_s")),
                _span(r.get("ttft_s")),
                str(r.get("chunks", 0)),
                "-" if total is None else str(total),
            ]
        )
    headers = ("ID", "METHOD", "ROUTE", "MODEL", "STATE", "AGE", "TTFT", "CHUNKS", "TOKENS")
    return table(headers, rows, style)
