"""Benchmark 2: microseconds per ``webhooks.verify()`` against the naive (and wrong) check.

The naive check is what a hand-rolled receiver usually writes, and it is wrong (Python's
``json.dumps`` is not JavaScript's ``JSON.stringify``: separators, number formats, non-ASCII
text, nested key order), even on the documented example::

    hashlib.md5((json.dumps(json.loads(body), sort_keys=True) + ":" + secret).encode()).hexdigest()

``verify`` does more: it parses like ``JSON.parse``, rebuilds ``JSON.stringify`` of the
top-level-sorted body byte for byte, compares in constant time, and parses the body into a
typed ``WebhookEvent`` (exact ``Decimal`` amounts, aware datetimes). The parts are timed too,
to show where the time goes: ``sign`` (JS parse + signing string + md5), ``signing_string``
alone on an already parsed body, and ``parse`` (the typed model, no signature).

Payloads: the documented example (``tests/vectors/signatures.json``, ``documented_completed``)
and a generated, realistic ~64 KiB webhook (nested objects, line items, many strings and
numbers, some non-ASCII text and satoshi-sized amounts), written as the sender's
``JSON.stringify`` writes it.

Timing: ``timeit`` with a loop count chosen per function, repeats interleaved across the
functions (the order reversed every other repeat); reported are the median and the best µs
per call, and verify / naive as the median of the ratios paired by repeat, with their range.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import timeit
from collections.abc import Callable
from typing import Any

from instax_async import jsjson, webhooks

from ._util import REPO_ROOT, median

NAME = "webhook_verify"
TITLE = "Webhook verification (µs per call)"
#: verify() may cost at most this many times the naive check, per payload (issue 15).
TARGETS = {"documented": 2.0, "64 KiB": 1.5}

SECRET = "test-webhook-secret"


def documented_payload() -> tuple[bytes, str, str]:
    """The documented example body, its signature and secret, from the Node.js vectors."""
    vectors = json.loads((REPO_ROOT / "tests" / "vectors" / "signatures.json").read_text())
    vector = next(v for v in vectors if v["name"] == "documented_completed")
    return vector["body"].encode("utf-8"), vector["signature"], vector["secret"]


_NAMES = ["Ada Lovelace", "José Müller", "Zoë Ünal", "Łukasz Żak", "王小明", "Åsa Ørsted", "Renée"]
_CITIES = ["Zürich", "São Paulo", "Kraków", "Málaga", "Reykjavík", "Toronto", "Tokyo"]


def large_payload(size: int = 64 * 1024, seed: int = 6, *, python_numbers: bool = False) -> bytes:
    """A realistic webhook body of about ``size`` bytes (just over), the same on every run.

    The documented event, whose ``data.additionalData`` carries line items, a customer and
    risk checks, as a compact JSON body like the sender's ``JSON.stringify`` writes: its
    numbers are JavaScript's text (``0.0000123``, ``1e-7``, ``120``). With ``python_numbers``,
    the same body as Python's ``json.dumps`` writes it (``1.23e-05``, ``1e-07``, ``120.0``),
    which the sender never sends.
    """
    rng = random.Random(seed)
    base = json.loads(documented_payload()[0])
    items: list[dict[str, Any]] = []
    extra: dict[str, Any] = {
        "wdId": "wd_8f3e2c1d",
        "customer": {
            "name": rng.choice(_NAMES),
            "email": "customer@example.com",
            "address": {"city": rng.choice(_CITIES), "zip": "8001", "country": "CH"},
            "ip": "203.0.113.7",
        },
        "riskChecks": [
            {"name": f"check_{i}", "score": round(rng.random(), 4), "passed": rng.random() > 0.1}
            for i in range(20)
        ],
        "lineItems": items,
    }
    base["data"]["additionalData"] = extra
    while True:
        n = len(items)
        price = round(rng.uniform(1, 500), 2)
        items.append(
            {
                "sku": f"SKU-{n:05d}",
                "name": f"{rng.choice(['Café', 'Thé', 'Crème', 'Widget', 'Gadget'])} #{n}",
                "buyer": rng.choice(_NAMES),
                "city": rng.choice(_CITIES),
                "quantity": rng.randint(1, 20),
                "unitPrice": price,
                "amountInCrypto": round(price / 67_000.0, 8),  # BTC: often below 1e-4
                "rate": rng.random() * 1e-5,
                "fee": round(rng.uniform(0, 3), 2),
                "refunded": False,
                "tags": ["promo", "eu"] if n % 3 == 0 else [],
                "meta": {"line": n, "warehouse": f"WH-{n % 7}", "note": None},
                "createdAt": f"2024-05-22T19:{n % 60:02d}:{(n * 7) % 60:02d}.097Z",
            }
        )
        body = json.dumps(base, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if len(body) >= size:
            return body if python_numbers else jsjson.stringify(base).encode("utf-8")


def naive_signature(body: bytes, secret: str) -> str:
    """The usual (wrong) check: Python's json.dumps with sorted keys, then md5."""
    return hashlib.md5(
        (json.dumps(json.loads(body), sort_keys=True) + ":" + secret).encode()
    ).hexdigest()


def _functions(body: bytes, signature: str, secret: str) -> dict[str, Callable[[], object]]:
    parsed = jsjson.loads(body)
    return {
        "verify": lambda: webhooks.verify(body, signature, secret),
        "naive": lambda: naive_signature(body, secret),
        "sign (parse + signing string + md5)": lambda: webhooks.sign(body, secret),
        "signing_string only": lambda: jsjson.signing_string(parsed),
        "parse (typed model only)": lambda: webhooks.parse(body),
    }


def _time_all(
    functions: dict[str, Callable[[], object]], repeats: int, min_seconds: float
) -> dict[str, dict[str, Any]]:
    loops: dict[str, int] = {}
    for name, function in functions.items():
        function()  # warm (and fail early if it raises)
        timer = timeit.Timer(function)
        number = 1
        while True:  # like Timer.autorange, bounded: 1, 2, 5, 10, 20, 50, ... loops
            if timer.timeit(number) >= min_seconds or number >= 1_000_000:
                break
            number *= 5 if str(number)[0] == "2" else 2
        loops[name] = number
    samples: dict[str, list[float]] = {name: [] for name in functions}
    order = list(functions.items())
    for repeat in range(repeats):  # interleaved, the order reversed every other repeat, so
        # drift hits every function alike and verify and naive always run next to each other
        for name, function in order if repeat % 2 == 0 else reversed(order):
            seconds = timeit.Timer(function).timeit(loops[name])
            samples[name].append(seconds / loops[name] * 1e6)
    return {
        name: {
            "loops": loops[name],
            "us_per_call": [round(x, 3) for x in values],
            "median_us": round(median(values), 3),
            "best_us": round(min(values), 3),
        }
        for name, values in samples.items()
    }


def run(quick: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run benchmark 2 and return its results."""
    started = time.perf_counter()
    repeats, min_seconds = (2, 0.002) if quick else (15, 0.04)
    documented, documented_signature, documented_secret = documented_payload()
    large = large_payload()
    large_signature = webhooks.sign(large, SECRET)
    payloads = {
        "documented": (documented, documented_signature, documented_secret),
        "64 KiB": (large, large_signature, SECRET),
    }
    results: dict[str, Any] = {}
    for label, (body, signature, secret) in payloads.items():
        webhooks.verify(body, signature, secret)  # the benchmark checks what it times
        timings = _time_all(_functions(body, signature, secret), repeats, min_seconds)
        # Paired by repeat: verify and naive ran next to each other, at the machine's same speed.
        paired = [
            v / n
            for v, n in zip(
                timings["verify"]["us_per_call"], timings["naive"]["us_per_call"], strict=True
            )
        ]
        ratio = median(paired)
        results[label] = {
            "body_bytes": len(body),
            "naive_signature_matches": naive_signature(body, secret) == signature,
            "timings": timings,
            "ratio_verify_over_naive": round(ratio, 3),
            "ratio_range": [round(min(paired), 3), round(max(paired), 3)],
            "ratio_sign_over_naive": round(
                timings["sign (parse + signing string + md5)"]["median_us"]
                / timings["naive"]["median_us"],
                3,
            ),
            "target": TARGETS[label],
            "meets_target": ratio <= TARGETS[label],
        }
        log(f"  {NAME}: {label} done")
    return {
        "name": NAME,
        "title": TITLE,
        "quick": quick,
        "parameters": {"repeats": repeats, "min_seconds_per_repeat": min_seconds},
        "payloads": results,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def markdown(result: dict[str, Any]) -> str:
    """The Markdown table of a :func:`run` result."""
    labels = list(result["payloads"])
    header = " | ".join(
        f"{label} ({result['payloads'][label]['body_bytes']:,} B) µs" for label in labels
    )
    lines = [
        f"### {TITLE}",
        "",
        f"Median of {result['parameters']['repeats']} interleaved repeats (best in brackets); "
        "verify / naive is the median of the ratios paired by repeat (the two run next to each "
        "other), with their range. "
        "`naive` = `md5(json.dumps(json.loads(body), sort_keys=True) + ':' + secret)`: the "
        "cost floor of a hand-rolled check, which computes the wrong key (Python's separators, "
        "nested keys sorted, non-ASCII escaped, other number formats).",
        "",
        f"| function | {header} |",
        "|---|" + "---:|" * len(labels),
    ]
    names = list(result["payloads"][labels[0]]["timings"])
    for name in names:
        cells = []
        for label in labels:
            timing = result["payloads"][label]["timings"][name]
            cells.append(f"{timing['median_us']:,.1f} ({timing['best_us']:,.1f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    ratios = []
    for label in labels:
        payload = result["payloads"][label]
        verdict = "meets" if payload["meets_target"] else "misses"
        low, high = payload["ratio_range"]
        ratios.append(
            f"{payload['ratio_verify_over_naive']:.2f} [{low:.2f}..{high:.2f}] "
            f"({verdict} ≤ {payload['target']:.1f})"
        )
    lines.append("| **verify / naive** | " + " | ".join(ratios) + " |")
    matches = [
        "yes" if result["payloads"][label]["naive_signature_matches"] else "**no**"
        for label in labels
    ]
    lines.append("| naive gets the signature right? | " + " | ".join(matches) + " |")
    return "\n".join(lines)
